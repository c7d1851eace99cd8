"""Training speed: portable_nn against a hand-written NumPy/CuPy MLP, PyTorch and the GEMM floor.

    python -m benchmarks.run --device cpu --quick          # ~2 minutes on 2 cores
    python -m benchmarks.run --device cuda --out "$OUT"    # on a GPU machine (CuPy + torch)
    python -m benchmarks.run --quick --threads 1           # every library on one thread
    python -m benchmarks.run --only cnn --threads 1        # the CNN case alone (~3 minutes)

Workloads: an MLP 784-256-128-10 (ReLU, softmax cross-entropy from logits, float32) on a seeded
synthetic 60,000 x 784 set, with SGD and Adam at batch 32, 128, 512 (and 4096 on a GPU); and a
tiny 2-8-1 net (ReLU, MSE) at batch 4 whose step time is almost all per-call overhead; and a
LeNet-5-style CNN on the same rows seen as 28x28 images (``cnn-sgd-b128``; ``-b1024`` on a GPU):

    Reshape (1, 28, 28) → Conv2D(1, 6, 5, padding=2) → ReLU → MaxPool2D(2) → Conv2D(6, 16, 5)
    → ReLU → MaxPool2D(2) → Flatten → Dense(400, 120) → ReLU → Dense(120, 84) → ReLU → Dense(84, 10)

(float32, SGD), against PyTorch running the same net (``nn.Unflatten`` first) in the same run; the
hand-written reference and the GEMM floor are MLP-only.

Contenders, interleaved in the same process (every round runs each once, in a rotating order;
samples/s come from the median round, ratios are the median over rounds of the ratio within a
round, so bursts of load and the machine's changes of speed fall out):

- ``pnn.fit``:  ``model.fit(X, y, epochs=4, batch_size=B, shuffle=False)`` on host data, one call
  per round (consecutive batches, like the other contenders)
  (its per-call data validation and each epoch's shuffled gather are included);
- ``pnn.loop``: portable_nn's low-level loop (forward, loss, backward(need_input_grad=False),
  optimizer.step) on device batches;
- ``reference``: ``benchmarks/reference.py``, the same math written by hand in NumPy (CuPy);
- ``torch``: ``nn.Sequential`` + ``torch.optim``;
- ``gemm``: only the step's matrix products (``reference.GemmBound``): the floor.

Threads: ``--threads N`` (default: the machine's cores) sets OMP/OpenBLAS/MKL threads (the process
re-executes itself so that BLAS reads them) and ``torch.set_num_threads``. With several threads,
the torch round starts 0.2 s after the previous round: OpenBLAS's workers spin for ~0.1 s after a
NumPy call and would take torch's cores (measured: torch at less than half its speed otherwise).
On a small machine shared with other work, multi-threaded BLAS also waits for descheduled
threads and round times swing tenfold; ``--threads 1`` measures the code rather than the
scheduler.

Memory ("peak MiB"), measured after the timing, in one fresh subprocess per contender: the growth
of the process's peak resident set (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``)
from just before the model and optimizer are built to the end of the training steps, after a
throw-away run of the same contender (so one-time library buffers such as BLAS workspaces and
thread pools are already resident) and ``malloc_trim``. It counts parameters (0.9 MiB for the
MLP), gradients, optimizer state, activations, temporaries and preallocated buffers; not the data.
On a GPU it is the growth of the device memory pool (CuPy's pool, torch's caching allocator:
reserved bytes), the copied data subtracted.

Writes ``<out>/<device>-<date>.json`` (``-<N>thread`` added when ``--threads`` differs from the
cores, ``-<only>`` with ``--only``) with the machine, library versions, settings, every round's time and the targets of issue
7. On the CPU the table shows samples/s and ratios; absolute step times only on a GPU.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import numpy as np

from .reference import GemmBound, ReferenceMLP

MLP = [784, 256, 128, 10]
TINY = [2, 8, 1]
LR = {"sgd": 0.01, "adam": 1e-3}
CONTENDERS = ("pnn.fit", "pnn.loop", "reference", "torch", "gemm")
CNN_CONTENDERS = ("pnn.fit", "pnn.loop", "torch")  # no hand-written reference for the CNN
# After a NumPy call, OpenBLAS's worker threads spin for ~0.1 s before they sleep; a torch round
# started right away shares its cores with them and runs at less than half its speed. So with
# several threads on the CPU the torch round starts SETTLE_S after the previous one.
SETTLE_BEFORE = {"torch"}
SETTLE_S = 0.2
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# ---------------------------------------------------------------------------------------------
# environment
def cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions():
    out = {"python": platform.python_version()}
    for mod in ("numpy", "array_api_compat", "torch", "cupy", "portable_nn"):
        try:
            out[mod] = importlib.import_module(mod).__version__
        except ImportError:
            out[mod] = None
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        out["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001 - only descriptive
        out["numpy_blas"] = None
    return out


def machine(device):
    info = {
        "cpu": cpu_model(),
        "cores": cpu_count(),
        "platform": platform.platform(),
        "versions": versions(),
        "device": device,
    }
    if device == "cuda":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"]
        info["gpu"] = name.decode() if isinstance(name, bytes) else name
        info["gpu_memory_gib"] = round(props["totalGlobalMem"] / 2**30, 1)
        info["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def have(module):
    try:
        importlib.import_module(module)
        return True
    except ImportError:
        return False


# ---------------------------------------------------------------------------------------------
# workloads
def configs(device, quick):
    """The benchmark cases. ``samples``: rows trained per round (MLP); ``steps``: per round (tiny)."""
    batches = [32, 128, 512] + ([4096] if device == "cuda" else [])
    # short rounds and many of them: the median then shrugs off bursts of load from elsewhere
    per_round = (4096 if quick else 16384) if device == "cpu" else (32768 if quick else 131072)
    out = []
    for opt in ("sgd", "adam"):
        for b in batches:
            out.append({"name": f"mlp-{opt}-b{b}", "sizes": MLP, "loss": "cross_entropy",
                        "optimizer": opt, "batch": b, "steps": max(2, per_round // b)})
    for opt in ("sgd", "adam"):
        out.append({"name": f"tiny-{opt}-b4", "sizes": TINY, "loss": "mse", "optimizer": opt,
                    "batch": 4, "steps": 200 if quick else 1000})
    b = 128 if device == "cpu" else 1024
    cnn_round = (1024 if quick else 4096) if device == "cpu" else (8192 if quick else 32768)
    out.append({"name": f"cnn-sgd-b{b}", "model": "lenet", "sizes": None, "loss": "cross_entropy",
                "optimizer": "sgd", "batch": b, "steps": max(2, cnn_round // b),
                "contenders": CNN_CONTENDERS})
    return out


def _contenders(cfg, names):
    """The contenders of ``names`` that can run case ``cfg``."""
    return [n for n in names if n in cfg.get("contenders", CONTENDERS)]


class Data:
    """The synthetic sets on the host: ``mlp`` (a noisy linear teacher's labels) and ``tiny``."""

    def __init__(self, n, seed=0):
        rng = np.random.default_rng(seed)
        self.X = rng.standard_normal((n, MLP[0]), dtype=np.float32)
        teacher = rng.standard_normal((MLP[0], MLP[-1]), dtype=np.float32)
        logits = self.X @ teacher + rng.standard_normal((n, MLP[-1]), dtype=np.float32)
        self.y = np.argmax(logits, axis=1).astype(np.int64)
        self.Xt = rng.uniform(-1.0, 1.0, size=(4096, 2)).astype(np.float32)
        self.yt = (self.Xt[:, :1] * self.Xt[:, 1:]).astype(np.float32)

    def host(self, cfg, rows):
        X, y = (self.Xt, self.yt) if cfg["sizes"] is TINY else (self.X, self.y)
        rows = min(rows, X.shape[0] - X.shape[0] % cfg["batch"])
        return X[:rows], y[:rows]


# ---------------------------------------------------------------------------------------------
# contenders: each runs `steps` training steps per call of run()
class _Batched:
    """Walks through ``n_batches`` consecutive device batches, wrapping around."""

    def __init__(self, cfg, X, y):
        self.cfg, self.X, self.y = cfg, X, y
        self.b = cfg["batch"]
        self.nb = X.shape[0] // self.b
        self.pos = 0

    def batches(self, steps):
        b = self.b
        for _ in range(steps):
            s = self.pos * b
            self.pos = (self.pos + 1) % self.nb
            yield self.X[s:s + b], self.y[s:s + b]


def _lenet(L, torch=False):
    """LeNet-5's layers (``L``: ``pnn.layers`` or ``torch.nn``) on flat rows of 784 pixels."""
    conv, pool, dense = ((L.Conv2d, L.MaxPool2d, L.Linear) if torch
                         else (L.Conv2D, L.MaxPool2D, L.Dense))
    return [L.Unflatten(1, (1, 28, 28)) if torch else L.Reshape((1, 28, 28)),
            conv(1, 6, 5, padding=2), L.ReLU(), pool(2), conv(6, 16, 5), L.ReLU(), pool(2),
            L.Flatten(), dense(400, 120), L.ReLU(), dense(120, 84), L.ReLU(), dense(84, 10)]


def _pnn_model(cfg, device):
    import portable_nn as pnn

    L = pnn.layers
    sizes = cfg["sizes"]
    layers = []
    if cfg.get("model") == "lenet":
        layers = _lenet(L)
    else:
        for i, (k, m) in enumerate(pairwise(sizes)):
            layers.append(L.Dense(k, m))
            if i < len(sizes) - 2:
                layers.append(L.ReLU())
    model = pnn.Sequential(*layers, device=device, dtype="float32", seed=0)
    loss = pnn.losses.CrossEntropy() if cfg["loss"] == "cross_entropy" else pnn.losses.MSE()
    opt = (pnn.optimizers.SGD if cfg["optimizer"] == "sgd" else pnn.optimizers.Adam)(
        learning_rate=LR[cfg["optimizer"]])
    return model, loss, opt


class PnnLoop(_Batched):
    def __init__(self, cfg, X, y, device):
        import portable_nn as pnn

        self.backend = pnn.get_backend(device)
        super().__init__(cfg, self.backend.asarray(X), self.backend.asarray(y))
        self.model, self.loss, self.opt = _pnn_model(cfg, device)

    def run(self, steps):
        model, loss, opt = self.model, self.loss, self.opt
        params = model.parameters()
        for xb, yb in self.batches(steps):
            pred = model.forward(xb, training=True)
            loss.forward(pred, yb)
            model.backward(loss.backward(), need_input_grad=False)
            opt.step(params)

    def sync(self):
        self.backend.synchronize()


class PnnFit:
    def __init__(self, cfg, X, y, device):
        import portable_nn as pnn

        self.backend = pnn.get_backend(device)
        self.cfg, self.X, self.y = cfg, X, y
        self.model, self.loss, self.opt = _pnn_model(cfg, device)
        self.b = cfg["batch"]

    def run(self, steps):
        # four epochs per call where the steps divide, so the per-call checks of the data are
        # amortised a little as in real use (fit is called once for many epochs)
        epochs = 4 if steps % 4 == 0 else 1
        rows = steps // epochs * self.b
        if rows > self.X.shape[0]:
            raise ValueError(f"pnn.fit needs {rows} rows, the data has {self.X.shape[0]}")
        # shuffle=False: the other contenders walk consecutive batches (views, no gather), so fit
        # does the same work; shuffling adds one gather of each batch (about 8% at batch 512)
        self.model.fit(self.X[:rows], self.y[:rows], loss=self.loss, optimizer=self.opt,
                       epochs=epochs, batch_size=self.b, verbose=0, shuffle=False)

    def sync(self):
        self.backend.synchronize()


class Reference(_Batched):
    def __init__(self, cfg, X, y, device):
        xp = np
        if device == "cuda":
            import cupy as xp
        super().__init__(cfg, xp.asarray(X), xp.asarray(y))
        self.xp = xp
        self.net = ReferenceMLP(cfg["sizes"], xp=xp, loss=cfg["loss"], optimizer=cfg["optimizer"],
                                lr=LR[cfg["optimizer"]])

    def run(self, steps):
        step = self.net.step
        for xb, yb in self.batches(steps):
            step(xb, yb)

    def sync(self):
        if self.xp is not np:
            self.xp.cuda.Device().synchronize()


class Torch(_Batched):
    def __init__(self, cfg, X, y, device):
        import torch

        self.torch = torch
        self.dev = torch.device("cuda" if device == "cuda" else "cpu")
        super().__init__(cfg, torch.as_tensor(X).to(self.dev), torch.as_tensor(y).to(self.dev))
        sizes = cfg["sizes"]
        mods = []
        if cfg.get("model") == "lenet":
            mods = _lenet(torch.nn, torch=True)
        else:
            for i, (k, m) in enumerate(pairwise(sizes)):
                mods.append(torch.nn.Linear(k, m))
                if i < len(sizes) - 2:
                    mods.append(torch.nn.ReLU())
        self.model = torch.nn.Sequential(*mods).to(self.dev)
        self.crit = (torch.nn.CrossEntropyLoss() if cfg["loss"] == "cross_entropy"
                     else torch.nn.MSELoss())
        cls = torch.optim.SGD if cfg["optimizer"] == "sgd" else torch.optim.Adam
        self.opt = cls(self.model.parameters(), lr=LR[cfg["optimizer"]])

    def run(self, steps):
        model, crit, opt = self.model, self.crit, self.opt
        for xb, yb in self.batches(steps):
            opt.zero_grad(set_to_none=True)
            crit(model(xb), yb).backward()
            opt.step()

    def sync(self):
        if self.dev.type == "cuda":
            self.torch.cuda.synchronize()


class Gemm:
    def __init__(self, cfg, X, y, device):
        xp = np
        if device == "cuda":
            import cupy as xp
        self.xp = xp
        self.bound = GemmBound(cfg["sizes"], cfg["batch"], xp=xp)

    def run(self, steps):
        step = self.bound.step
        for _ in range(steps):
            step()

    def sync(self):
        if self.xp is not np:
            self.xp.cuda.Device().synchronize()


FACTORIES = {"pnn.fit": PnnFit, "pnn.loop": PnnLoop, "reference": Reference, "torch": Torch,
             "gemm": Gemm}


def available(device):
    """{contender: None if it can run here, else the reason it cannot}."""
    out = {name: None for name in CONTENDERS}
    if not have("portable_nn.training"):
        out["pnn.fit"] = "portable_nn.training is not available"
    if not have("torch"):
        out["torch"] = "PyTorch is not installed"
    elif device == "cuda":
        import torch

        if not torch.cuda.is_available():
            out["torch"] = "torch.cuda.is_available() is False"
    return out


# ---------------------------------------------------------------------------------------------
# timing
def time_config(cfg, data, device, names, rounds, settle=0.0):
    """Median seconds per round (``cfg['steps']`` steps) for each contender, interleaved."""
    X, y = data.host(cfg, cfg["steps"] * cfg["batch"])
    names = _contenders(cfg, names)
    runners = {n: FACTORIES[n](cfg, X, y, device) for n in names}
    for r in runners.values():  # warm-up: caches, BLAS threads, optimizer state, allocator
        r.run(min(cfg["steps"], 20))
        r.sync()
    times = {n: [] for n in names}
    cpu = {n: [] for n in names}
    order = list(names)
    for i in range(rounds):
        for n in order[i % len(order):] + order[:i % len(order)]:
            r = runners[n]
            r.sync()
            if settle and n in SETTLE_BEFORE:
                time.sleep(settle)
            c0, t0 = time.process_time(), time.perf_counter()
            r.run(cfg["steps"])
            r.sync()
            times[n].append(time.perf_counter() - t0)
            cpu[n].append(time.process_time() - c0)
    return times, cpu


def summarize(cfg, times, cpu):
    """Per contender: samples/s from the median wall time of a round, and ratios to the others
    as the median over rounds of the ratio within the round. The contenders of one round run
    back to back, so they share the machine's state; this machine's speed changes between
    phases (other tenants, clocks), and independent medians can land in different phases."""
    samples = cfg["steps"] * cfg["batch"]
    res = {}
    for n, ts in times.items():
        med = statistics.median(ts)
        res[n] = {"median_round_s": med, "round_s": ts, "samples_per_s": samples / med,
                  "step_s": med / cfg["steps"],
                  # CPU seconds of the whole process (all threads, spinning included)
                  "cpu_round_s": cpu[n], "median_cpu_round_s": statistics.median(cpu[n])}
    for n, r in res.items():
        for key, other in (("vs_reference", "reference"), ("vs_torch", "torch"),
                           ("gemm_fraction", "gemm")):
            r[key] = (statistics.median(a / b for a, b in zip(times[other], times[n]))
                      if other in times else None)
            if other in times:
                # the same ratio from the two medians, for comparison
                r[key + "_from_medians"] = r["samples_per_s"] / res[other]["samples_per_s"]
    return res


# ---------------------------------------------------------------------------------------------
# memory (in a subprocess per contender)
def _rss_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _trim():
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class _HostMemory:
    def start(self):
        _trim()
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        self.base = _rss_kib("VmRSS")

    def peak_mib(self):
        return (_rss_kib("VmHWM") - self.base) / 1024


class _DeviceMemory:
    def __init__(self, name):
        self.torch = name == "torch"

    def start(self):
        gc.collect()
        if self.torch:
            import torch

            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_reserved()
        else:
            import cupy

            cupy.cuda.Device().synchronize()
            pool = cupy.get_default_memory_pool()
            pool.free_all_blocks()
            self.base = pool.total_bytes()

    def peak_mib(self):
        if self.torch:
            import torch

            torch.cuda.synchronize()
            return (torch.cuda.max_memory_reserved() - self.base) / 2**20
        import cupy

        cupy.cuda.Device().synchronize()
        return (cupy.get_default_memory_pool().total_bytes() - self.base) / 2**20


def memory_child(name, device, quick, only=None):
    """Runs in the subprocess: one JSON line ``{config: peak MiB}`` on stdout."""
    data = Data(8192 if quick else 16384)
    out = {}
    for cfg in configs(device, quick):
        if name not in _contenders(cfg, [name]) or (only and only not in cfg["name"]):
            continue
        steps = min(cfg["steps"], 50)
        X, y = data.host(cfg, steps * cfg["batch"])
        throwaway = FACTORIES[name](cfg, X, y, device)
        throwaway.run(4)
        throwaway.sync()
        del throwaway
        meter = _HostMemory() if device == "cpu" else _DeviceMemory(name)
        meter.start()
        runner = FACTORIES[name](cfg, X, y, device)
        runner.run(steps)
        runner.sync()
        # a GPU contender copies the data to the device: that is not training memory
        copied = 0.0 if device == "cpu" else (X.nbytes + y.nbytes) / 2**20
        out[cfg["name"]] = round(meter.peak_mib() - copied, 2)
        del runner
    print(json.dumps(out))


def measure_memory(names, device, quick, threads, only=None):
    """{contender: {config: MiB}}, or {contender: {"error": ...}} where measuring failed."""
    out = {}
    for name in names:
        cmd = [sys.executable, "-m", "benchmarks.run", "--device", device, "--memory-child", name,
               "--threads", str(threads)]
        if quick:
            cmd.append("--quick")
        if only:
            cmd += ["--only", only]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              cwd=Path(__file__).resolve().parent.parent)
        if proc.returncode != 0:
            out[name] = {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
            continue
        out[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# ---------------------------------------------------------------------------------------------
# targets and report
def targets(results, device, memory=None, threads=None):
    """The issue's targets, checked for the low-level loop and for fit: speed on the CPU (NumPy
    backend) or the GPU (CuPy at batch 4096 against torch CUDA), and peak memory against the
    reference's wherever both were measured (the MLP cases; the tiny net's is below a page).
    The CNN (issue 12): samples/s >= 1.0x torch's, on the CPU with one thread (``threads`` 1 or
    not given), on a GPU at batch 1024.
    ``memory``: ``{contender: {config: MiB}}`` from `measure_memory`."""
    memory = memory or {}
    checks = []
    for cfg_name, res in results.items():
        b = int(cfg_name.rsplit("-b", 1)[1])
        for lib in ("pnn.loop", "pnn.fit"):
            r = res.get(lib)
            if r is None:
                continue
            if cfg_name.startswith("cnn"):
                if r.get("vs_torch") is not None and (device != "cpu" or threads in (None, 1)):
                    label = "samples/s >= 1.0x torch" + (" (1 thread)" if device == "cpu" else "")
                    checks.append((cfg_name, lib, label, r["vs_torch"], 1.0,
                                   r["vs_torch"] >= 1.0))
                continue
            mine, ref = memory.get(lib, {}).get(cfg_name), memory.get("reference", {}).get(cfg_name)
            if lib == "pnn.fit" and not cfg_name.startswith("tiny") and mine is not None \
                    and ref:
                checks.append((cfg_name, lib, "peak memory <= 1.2x reference", mine / ref, 1.2,
                               mine / ref <= 1.2))
            if device != "cpu":
                if b == 4096 and r.get("vs_torch") is not None:
                    checks.append((cfg_name, lib, "samples/s >= 1.0x torch", r["vs_torch"], 1.0,
                                   r["vs_torch"] >= 1.0))
                continue
            if cfg_name.startswith("tiny"):
                checks.append((cfg_name, lib, "time per step <= 1.5x reference",
                               1.0 / r["vs_reference"], 1.5, 1.0 / r["vs_reference"] <= 1.5))
                continue
            need = 0.9 if b == 32 else 1.0
            checks.append((cfg_name, lib, f"samples/s >= {need}x reference",
                           r["vs_reference"], need, r["vs_reference"] >= need))
            if b == 128 and r.get("vs_torch") is not None:
                checks.append((cfg_name, lib, "samples/s >= 1.25x torch", r["vs_torch"], 1.25,
                               r["vs_torch"] >= 1.25))
            if b == 512:
                checks.append((cfg_name, lib, ">= 80% of the GEMM bound", r["gemm_fraction"], 0.8,
                               r["gemm_fraction"] >= 0.8))
    return [{"config": c, "contender": n, "target": t, "value": round(v, 3), "threshold": th,
             "met": bool(ok)} for c, n, t, v, th, ok in checks]


def table(results, memory, device):
    head = ["config", "contender", "samples/s", "x ref", "x torch", "GEMM frac", "peak MiB"]
    if device != "cpu":
        head.insert(3, "ms/step")
    rows = [head]

    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    for cfg_name, res in results.items():
        for n, r in res.items():
            mem = memory.get(n, {}).get(cfg_name) if memory else None
            row = [cfg_name, n, fmt(r["samples_per_s"], ",.0f"), fmt(r["vs_reference"], ".2f"),
                   fmt(r["vs_torch"], ".2f"), fmt(r["gemm_fraction"], ".2f"),
                   fmt(mem if isinstance(mem, (int, float)) else None, ".1f")]
            if device != "cpu":
                row.insert(3, fmt(r["step_s"] * 1e3, ".3f"))
            rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))))
        if j == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--quick", action="store_true", help="fewer samples, rounds and steps")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"),
                    help="folder for the JSON results (default benchmarks/results)")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per case (median)")
    ap.add_argument("--only", default=None, help="run only the cases whose name contains this")
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS/OpenMP/torch threads (default: the machine's cores)")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.device == "cuda":
        import portable_nn as pnn

        pnn.get_backend("cuda")  # the registry's clear error when CuPy or the GPU is missing
    threads = args.threads or cpu_count()
    if have("torch"):
        import torch

        torch.set_num_threads(threads)
    if args.memory_child:
        memory_child(args.memory_child, args.device, args.quick, args.only)
        return 0

    rounds = args.rounds or (15 if args.quick else 21)
    settle = SETTLE_S if args.device == "cpu" and threads > 1 else 0.0
    avail = available(args.device)
    names = [n for n in CONTENDERS if avail[n] is None]
    cases = [c for c in configs(args.device, args.quick) if not args.only or args.only in c["name"]]
    load_before = os.getloadavg()
    print(f"machine: {cpu_model()}, {cpu_count()} cores; device {args.device}; "
          f"threads {threads}; contenders {', '.join(names)}; rounds {rounds}; "
          f"load average {load_before[0]:.2f}", flush=True)
    for n, why in avail.items():
        if why:
            print(f"  skipped {n}: {why}")
    data = Data(16384 if args.quick else 60000)
    t_start = time.perf_counter()
    results = {}
    for cfg in cases:
        results[cfg["name"]] = summarize(
            cfg, *time_config(cfg, data, args.device, names, rounds, settle))
        r = results[cfg["name"]]
        versus = "reference" if "reference" in r else "torch"
        print(f"  {cfg['name']:<16} " + "  ".join(
            f"{n} {r[n]['vs_' + versus]:.2f}x {versus}" for n in r if n != versus), flush=True)
    memory = {} if args.no_memory else measure_memory(names, args.device, args.quick, threads,
                                                       args.only)
    load_after = os.getloadavg()
    checks = targets(results, args.device, memory, threads)

    print()
    print(table(results, memory, args.device))
    if checks:
        print(f"\ntargets ({'CPU, NumPy' if args.device == 'cpu' else 'GPU, CuPy'} backend):")
        for c in checks:
            print(f"  {'MET ' if c['met'] else 'MISS'} {c['config']:<14} {c['contender']:<9} "
                  f"{c['target']:<34} {c['value']:.2f} (need {c['threshold']})")
    report = {
        "schema": 1,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.run", *(argv if argv is not None
                                                            else sys.argv[1:])]),
        "machine": machine(args.device),
        "settings": {"quick": args.quick, "rounds": rounds, "threads": threads,
                     "thread_env": {k: os.environ.get(k) for k in THREAD_VARS},
                     "learning_rates": LR,
                     "data_rows": data.X.shape[0], "skipped": {k: v for k, v in avail.items() if v},
                     "timing": ("interleaved rounds of `steps` steps; samples/s from the median "
                                "round; ratios (vs_*, gemm_fraction) = median over rounds of the "
                                "ratio within the round (*_from_medians: from the two medians)"),
                     "settle_before_torch_s": settle,
                     "load_average_1min": {"before": load_before[0], "after": load_after[0]}},
        "memory_method": ("peak RSS growth (Linux VmHWM) from just before the model and "
                          "optimizer are built to the end of the steps, after a throw-away run "
                          "of the same contender and malloc_trim; data not included"
                          if args.device == "cpu" else
                          "growth of the device memory pool's reserved bytes (CuPy pool / torch "
                          "caching allocator) over building and training, copied data "
                          "subtracted"),
        "cases": [{**cfg, "results": results[cfg["name"]],
                   "peak_mib": {n: memory.get(n, {}).get(cfg["name"]) for n in names}}
                  for cfg in cases],
        "memory_errors": {n: m["error"] for n, m in memory.items() if "error" in m},
        "targets": checks,
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "" if threads == cpu_count() else f"-{threads}thread"
    if args.only:  # a partial run must not overwrite the full run's file of the day
        suffix = "-" + "".join(c if c.isalnum() else "_" for c in args.only) + suffix
    path = out_dir / f"{args.device}-{datetime.date.today().isoformat()}{suffix}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    if max(load_before[0], load_after[0]) > 0.5 * cpu_count():
        print(f"note: the load average was {load_before[0]:.1f} / {load_after[0]:.1f} on "
              f"{cpu_count()} cores: other processes competed for the CPU")
    print(f"\nwrote {path}")
    return 0


def pin_threads(argv):
    """Re-run this process with the thread variables set (BLAS reads them once, at import)."""
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--threads", type=int, default=None)
    threads = str(ap.parse_known_args(argv)[0].threads or cpu_count())
    if all(os.environ.get(k) == threads for k in THREAD_VARS):
        return
    os.environ.update({k: threads for k in THREAD_VARS})
    os.execv(sys.executable, [sys.executable, "-m", "benchmarks.run", *argv])


if __name__ == "__main__":
    pin_threads(sys.argv[1:])
    raise SystemExit(main())
