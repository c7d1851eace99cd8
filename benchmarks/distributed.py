"""Data-parallel scaling: the MLP 784-256-128-10 on 1 rank against N ranks (default 2).

    python -m benchmarks.distributed                      # 1 vs 2 ranks on this machine's CPU
    python -m benchmarks.distributed --ranks 4 --device cuda --out "$OUT"   # 4 GPUs, NCCL

Each rank trains the float32 MLP (ReLU, softmax cross-entropy, Adam) at ``--batch`` rows per rank
and step (default 512), one BLAS/OpenMP thread per rank, through `DistributedOptimizer`; the ranks
are started by the ``mpiexec`` beside this Python. Interleaved rounds (1 rank, N ranks, 1 rank,
...) of ``--steps`` steps each; per round the script records the wall time of the steps and, per
step, the time spent in the gradient allreduce (packing, host staging, the MPI/NCCL call and the
unpacking; it includes waiting for the slowest rank) and in the rest (forward, backward, the
optimizer's update). Then, with nothing else running, the same allreduce alone, timed over
``--steps`` calls ("allreduce alone": the transport's cost without waiting).

Reports, from the median round: samples/s over all ranks for 1 and N ranks and their ratio (the
ideal is N when each rank has a core of its own), milliseconds per step of compute and of
allreduce, and the gradient bytes per step. Writes ``<out>/distributed-<device>-<date>.json`` with
the machine as ``benchmarks/run.py`` describes it. On a machine shared with other work the ratio
says as much about the neighbours as about the code: the load average is recorded.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .run import MLP, THREAD_VARS, cpu_count, cpu_model, machine

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# one rank's work (run under mpiexec)
def worker(args):
    """Train ``args.steps`` steps after ``args.warmup``; rank 0 prints one JSON line."""
    import portable_nn as pnn
    from portable_nn import distributed

    comm = distributed.init(args.backend)
    device = f"{args.device}:{comm.local_rank}" if args.device == "cuda" else args.device
    model = pnn.Sequential(
        pnn.layers.Dense(MLP[0], MLP[1], init="he"), pnn.layers.ReLU(),
        pnn.layers.Dense(MLP[1], MLP[2], init="he"), pnn.layers.ReLU(),
        pnn.layers.Dense(MLP[2], MLP[3]), device=device, dtype="float32", seed=0)
    backend = model.backend
    rng = np.random.default_rng(comm.rank)
    batches = 8  # a few distinct device batches per rank, reused in turn
    X = [backend.asarray(rng.standard_normal((args.batch, MLP[0]), dtype=np.float32))
         for _ in range(batches)]
    T = [backend.asarray(np.eye(MLP[-1], dtype=np.float32)[rng.integers(0, MLP[-1], args.batch)])
         for _ in range(batches)]
    loss = pnn.losses.CrossEntropy()
    opt = distributed.DistributedOptimizer(pnn.optimizers.Adam(1e-3), comm)
    params = model.parameters()

    # time the transport inside the optimizer's step: wrap this communicator's allreduce
    spent = []
    inner = comm._allreduce_sum

    def timed(b, flat):
        backend.synchronize()
        t = time.perf_counter()
        out = inner(b, flat)
        backend.synchronize()
        spent.append(time.perf_counter() - t)
        return out

    comm._allreduce_sum = timed

    def step(i):
        pred = model.forward(X[i % batches], training=True)
        loss.forward(pred, T[i % batches])
        model.backward(loss.backward(), need_input_grad=False)
        opt.step(params)

    for i in range(args.warmup):
        step(i)
    comm.barrier()
    spent.clear()
    start = time.perf_counter()
    for i in range(args.steps):
        step(i)
    backend.synchronize()
    comm.barrier()
    wall = time.perf_counter() - start
    in_step = sum(spent)

    # the allreduce alone, the ranks in step with each other
    comm._allreduce_sum = inner
    grads = [p.grad for p in params]
    alone = []
    for _ in range(args.steps):
        comm.barrier()
        t = time.perf_counter()
        comm.allreduce_mean(grads)
        backend.synchronize()
        alone.append(time.perf_counter() - t)
    walls = comm._allgather_objects(wall)  # the slowest rank sets the pace
    comm_times = comm._allgather_objects(in_step)
    if comm.is_root:
        nbytes = sum(p.size for p in params) * 4
        print(json.dumps({
            "ranks": comm.size, "kind": comm.kind, "device": str(model.device),
            "steps": args.steps, "wall_s": max(walls),
            "samples_per_s": comm.size * args.batch * args.steps / max(walls),
            "allreduce_in_step_ms": 1e3 * max(comm_times) / args.steps,
            "allreduce_alone_ms": 1e3 * statistics.median(alone) if comm.size > 1 else 0.0,
            "gradient_bytes": nbytes}), flush=True)


# ---------------------------------------------------------------------------------------------
# the driver
def launch(ranks, args):
    mpiexec = Path(sys.executable).parent / "mpiexec"
    cmd = [str(mpiexec), "-n", str(ranks), sys.executable, "-m", "benchmarks.distributed",
           "--worker", "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--batch", str(args.batch), "--device", args.device, "--backend", args.backend]
    env = dict(os.environ, **{k: "1" for k in THREAD_VARS})
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.distributed",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--ranks", type=int, default=2, help="N, compared with 1 rank")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (cuda:<local rank> per rank)")
    ap.add_argument("--backend", default="auto", choices=("auto", "mpi", "nccl"))
    ap.add_argument("--batch", type=int, default=512, help="rows per rank and step")
    ap.add_argument("--steps", type=int, default=40, help="timed steps per round")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5, help="rounds of each (median)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0

    load_before = os.getloadavg()
    print(f"machine: {cpu_model()}, {cpu_count()} cores; device {args.device}; 1 vs "
          f"{args.ranks} ranks, 1 thread each; batch {args.batch} per rank; {args.rounds} rounds "
          f"of {args.steps} steps; load average {load_before[0]:.2f}", flush=True)
    rounds = {1: [], args.ranks: []}
    for r in range(args.rounds):
        for n in (1, args.ranks) if r % 2 == 0 else (args.ranks, 1):
            rounds[n].append(launch(n, args))
            got = rounds[n][-1]
            print(f"  round {r + 1}, {n} rank(s): {got['samples_per_s']:9.0f} samples/s, "
                  f"allreduce {got['allreduce_in_step_ms']:.2f} ms/step in the step, "
                  f"{got['allreduce_alone_ms']:.2f} ms alone", flush=True)
    load_after = os.getloadavg()

    def med(n, key):
        return statistics.median(x[key] for x in rounds[n])

    one, many = med(1, "samples_per_s"), med(args.ranks, "samples_per_s")
    step_ms = 1e3 * args.ranks * args.batch / many
    in_step = med(args.ranks, "allreduce_in_step_ms")
    summary = {
        "samples_per_s_1_rank": round(one), f"samples_per_s_{args.ranks}_ranks": round(many),
        "throughput_ratio": round(many / one, 3), "ideal_ratio": args.ranks,
        "step_ms_1_rank": round(1e3 * args.batch / one, 2),
        f"step_ms_{args.ranks}_ranks": round(step_ms, 2),
        "allreduce_in_step_ms": round(in_step, 3),
        "allreduce_alone_ms": round(med(args.ranks, "allreduce_alone_ms"), 3),
        "compute_ms_per_step": round(step_ms - in_step, 2),
        "gradient_bytes_per_step": rounds[1][0]["gradient_bytes"],
        "communicator": rounds[args.ranks][0]["kind"],
    }
    print("\n" + "\n".join(f"  {k:<26} {v}" for k, v in summary.items()))
    report = {
        "schema": 1,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.distributed",
                             *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine("cuda" if args.device.startswith("cuda") else "cpu"),
        "settings": {"model": MLP, "dtype": "float32", "optimizer": "Adam",
                     "batch_per_rank": args.batch, "steps": args.steps, "warmup": args.warmup,
                     "rounds": args.rounds, "threads_per_rank": 1,
                     "timing": ("interleaved rounds; wall time of the slowest rank; allreduce "
                                "in the step includes waiting for the other ranks, alone does "
                                "not (median of single calls after a barrier)"),
                     "load_average_1min": {"before": load_before[0], "after": load_after[0]}},
        "summary": summary,
        "rounds": {str(k): v for k, v in rounds.items()},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"distributed-{args.device.split(':')[0]}-{datetime.date.today().isoformat()}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    if max(load_before[0], load_after[0]) > 0.5 * cpu_count():
        print(f"note: the load average was {load_before[0]:.1f} / {load_after[0]:.1f} on "
              f"{cpu_count()} cores: other processes competed for the CPU")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
