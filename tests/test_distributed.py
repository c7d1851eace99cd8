"""portable_nn.distributed: communicators, DistributedOptimizer, and real 2-rank runs.

In-process: the one-rank communicator, every argument check, ``init``'s choices and errors, and
DistributedOptimizer's packing, buckets and checksum through ``TwinCommunicator`` (a fake rank 0
of 2 whose partner holds the same arrays), on every backend. Then the helper scripts under
``tests/distributed/`` run with ``mpiexec -n 2`` (the one beside this Python first, as a venv with
``pip install "portable-nn[mpi]"`` has it): values and call counts of the collectives, the
hand-written loop against one process on all rows, one rank failing, aborting or freezing other
parameters, and the example. They skip only when mpi4py or mpiexec is missing.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import distributed
from portable_nn.backends import BackendUnavailableError, host_array
from portable_nn.distributed.base import Communicator

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent / "distributed"


def _find_mpiexec():
    """The ``mpiexec`` of this Python's environment first (it matches its mpi4py), then PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


MPIEXEC = _find_mpiexec()
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
REQUIRE_MPI = os.environ.get("PORTABLE_NN_REQUIRE_MPI") == "1"  # CI: never skip them


@pytest.fixture
def mpi_available():
    """Skip (fail with ``PORTABLE_NN_REQUIRE_MPI=1``) unless mpi4py and mpiexec are here."""
    if MPIEXEC is None or not HAVE_MPI4PY:
        why = ('2-rank tests need mpi4py and mpiexec: pip install "portable-nn[mpi]" (mpi4py '
               f"{'found' if HAVE_MPI4PY else 'missing'}, mpiexec "
               f"{'found' if MPIEXEC else 'missing'})")
        if REQUIRE_MPI:
            pytest.fail(f"PORTABLE_NN_REQUIRE_MPI=1 but {why}")
        pytest.skip(why)


needs_mpi = pytest.mark.usefixtures("mpi_available")


def mpirun(*args, timeout=180):
    """``mpiexec -n 2 <this python> <args>`` from the repository root; the finished process."""
    # JAX's 64-bit mode is on in the tests (conftest.py), so in the ranks too
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               JAX_PLATFORMS="cpu", JAX_ENABLE_X64="1", PYTHONPATH=os.pathsep.join(
                   [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.run([MPIEXEC, "-n", "2", sys.executable, *map(str, args)], cwd=ROOT, check=False,
                          env=env, capture_output=True, text=True, timeout=timeout)


def assert_ok(proc, *needles):
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out[-4000:]}"
    for needle in needles:
        assert needle in proc.stdout, f"{needle!r} not printed\n{out[-4000:]}"


class TwinCommunicator(Communicator):
    """Rank 0 of a job of 2 whose other rank holds the same arrays: a sum is twice the array.
    Counts the transport calls; runs DistributedOptimizer's multi-rank path in-process."""

    kind = "twin"

    def __init__(self):
        super().__init__(rank=0, size=2, local_rank=0, local_size=1)
        self.calls = 0

    def _allreduce_sum(self, backend, flat):
        self.calls += 1
        return flat + flat

    def _broadcast_flat(self, backend, flat, root):
        self.calls += 1
        return flat


def mlp(backend, seed=0):
    L = pnn.layers
    return pnn.Sequential(L.Dense(4, 6), L.Tanh(), L.Dense(6, 2), device=backend,
                          dtype="float64", seed=seed)


def backprop(model, rows=5):
    rng = np.random.default_rng(1)
    x = model.backend.asarray(rng.normal(size=(rows, 4)), dtype="float64")
    t = model.backend.asarray(rng.normal(size=(rows, 2)), dtype="float64")
    loss = pnn.losses.MSE()
    loss.forward(model.forward(x, training=True), t)
    model.backward(loss.backward(), need_input_grad=False)


def values(model):
    return [host_array(p.value).copy() for p in model.parameters()]


def _has_float64(backend):
    try:
        return backend.dtype_name(backend.asarray(np.zeros(1), dtype="float64").dtype) == "float64"
    except ValueError:  # JAX without its 64-bit mode
        return False


def _skip_without_float64(backend):
    if not _has_float64(backend):
        pytest.skip(f"{backend.device_string} computes no float64 here (JAX without x64)")


# the one-rank communicator -------------------------------------------------------------------
def test_single_communicator_returns_copies(backend):
    comm = distributed.SingleCommunicator()
    assert (comm.rank, comm.size, comm.local_rank, comm.is_root) == (0, 1, 0, True)
    a = backend.asarray(np.arange(6.0).reshape(2, 3), dtype="float32")
    b = backend.asarray(np.array(2.5), dtype="float32")
    for out in (comm.allreduce_mean([a, b]), comm.broadcast([a, b], root=0)):
        assert len(out) == 2 and all(backend.owns(o) for o in out)
        np.testing.assert_array_equal(host_array(out[0]), np.arange(6.0).reshape(2, 3))
        np.testing.assert_array_equal(host_array(out[1]), 2.5)
        if backend.ops.writeable(out[0]):  # a result never aliases its argument
            out[0][...] = -1.0
            np.testing.assert_array_equal(host_array(a), np.arange(6.0).reshape(2, 3))
    comm.barrier()
    assert comm.allreduce_sum_host([1, 2.5]) == [1.0, 2.5]
    assert comm.shard(7) == range(7)


def test_shards_are_disjoint_and_balanced():
    for size in (1, 2, 3, 5):
        parts = [Communicator(r, size, 0, 1).shard(17) for r in range(size)]
        assert [i for p in parts for i in p] == list(range(17))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(ValueError, match="n must be an int >= 0"):
        Communicator(0, 2, 0, 1).shard(-1)


def test_arguments_are_checked(backend):
    comm = distributed.SingleCommunicator()
    a = backend.asarray(np.ones(3), dtype="float32")
    with pytest.raises(TypeError, match="arrays must be a list of arrays"):
        comm.allreduce_mean(a)
    with pytest.raises(TypeError, match=r"arrays\[1\] must be an array of a portable_nn backend"):
        comm.allreduce_mean([a, [1.0, 2.0]])
    ints = backend.asarray(np.arange(3))
    with pytest.raises(TypeError, match=r"arrays\[0\] has dtype .*int.*floating-point"):
        comm.allreduce_mean([ints])
    assert host_array(comm.broadcast([ints])[0]).tolist() == [0, 1, 2]  # any dtype broadcasts
    with pytest.raises(ValueError, match=r"root must be a rank in 0..0, got 1"):
        comm.broadcast([a], root=1)
    with pytest.raises(TypeError, match="root must be an int rank"):
        comm.broadcast([a], root=True)
    with pytest.raises(TypeError, match=r"values\[1\] must be an int or float, got bool"):
        comm.allreduce_sum_host([1.0, True])


def test_agree_raises_the_failing_ranks_error():
    comm = distributed.SingleCommunicator()
    assert comm.agree(None) is None
    with pytest.raises(ValueError, match=r"^rank 0: bad shard$"):
        comm.agree(ValueError("bad shard"))
    with pytest.raises(TypeError, match=r"^rank 0: wrong type$"):
        comm.agree(TypeError("wrong type"))
    with pytest.raises(RuntimeError, match=r"^rank 0: disk full$") as info:
        comm.agree(OSError("disk full"))
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(TypeError, match="agree.. takes None or an exception, got builtins.str"):
        comm.agree("oops")


def test_single_abort_exits_with_the_message(capsys):
    with pytest.raises(SystemExit) as info:
        distributed.SingleCommunicator().abort("boom")
    assert info.value.code == 1
    assert capsys.readouterr().err == "rank 0: boom\n"


# init ----------------------------------------------------------------------------------------
@pytest.fixture
def fresh_init(monkeypatch):
    """``init`` without the communicators this process made before."""
    monkeypatch.setattr(distributed, "_made", {})
    return distributed.init


def test_init_without_mpi4py(fresh_init, monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
    comm = fresh_init("auto")
    assert isinstance(comm, distributed.SingleCommunicator) and fresh_init() is comm
    with pytest.raises(RuntimeError, match=r'needs mpi4py.*pip install "portable-nn\[mpi\]"'):
        fresh_init("mpi")
    with pytest.raises(ValueError, match="backend must be one of 'auto', 'mpi', 'nccl'"):
        fresh_init("gloo")


@needs_mpi
def test_init_outside_mpiexec_is_one_rank():
    """A plain ``python script.py`` (an MPI world of one) gets the one-rank communicator."""
    code = ("from portable_nn import distributed as d\n"
            "a, m = d.init(), d.init('mpi')\n"
            "print(type(a).__name__, type(m).__name__, a.size, m.size)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          timeout=120, cwd=ROOT)
    assert proc.stdout.split() == ["SingleCommunicator", "SingleCommunicator", "1", "1"], \
        proc.stdout + proc.stderr


def _fake_cupy(gpu=True, nccl=True):
    nccl_mod = types.SimpleNamespace(available=nccl)
    cuda = types.SimpleNamespace(is_available=lambda: gpu, nccl=nccl_mod)
    return types.SimpleNamespace(__version__="13.9", cuda=cuda), nccl_mod


def test_init_nccl_says_what_is_missing(fresh_init, monkeypatch):
    monkeypatch.setattr(distributed, "import_mpi", lambda required=True: None)
    if importlib.util.find_spec("cupy") is None:
        with pytest.raises(BackendUnavailableError, match=r"needs CuPy.*portable-nn\[cuda12\]"):
            fresh_init("nccl")
    for gpu, nccl, message in [(False, True, "no usable CUDA GPU"),
                               (True, False, "cannot load the NCCL library.*nvidia-nccl-cu12")]:
        cupy, nccl_mod = _fake_cupy(gpu, nccl)
        monkeypatch.setitem(sys.modules, "cupy", cupy)
        monkeypatch.setitem(sys.modules, "cupy.cuda", cupy.cuda)
        monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", nccl_mod)
        monkeypatch.setattr(distributed, "_made", {})
        with pytest.raises(BackendUnavailableError, match=message):
            fresh_init("nccl")
    # everything present, one rank: the one-rank communicator
    cupy, nccl_mod = _fake_cupy()
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", nccl_mod)
    monkeypatch.setattr(distributed, "_made", {})
    assert isinstance(fresh_init("nccl"), distributed.SingleCommunicator)


def test_nccl_gpu_choice():
    from portable_nn.distributed.nccl import _gpu_for

    assert [_gpu_for(r, 4, 4) for r in range(4)] == [0, 1, 2, 3]
    assert _gpu_for(1, 2, 1) == 0  # a scheduler gave each rank its own single visible GPU
    with pytest.raises(BackendUnavailableError, match="3 ranks share this node and it has 2"):
        _gpu_for(2, 3, 2)


@needs_mpi
def test_nccl_communicator_on_one_gpu():
    """The GPU lane: NCCL calls (pointers, datatypes, CuPy's stream) in a job of one rank."""
    from portable_nn.backends import get_backend
    from portable_nn.distributed.nccl import nccl_problem

    problem = nccl_problem()
    if problem is not None:
        pytest.skip(problem)
    comm = distributed.NcclCommunicator()
    backend = get_backend(comm.device)
    a = backend.asarray(np.arange(6.0).reshape(2, 3), dtype="float32")
    b = backend.asarray(np.array([0.5, -2.0]), dtype="float64")
    ints = backend.asarray(np.arange(4))
    out = comm.allreduce_mean([a, b])
    got = comm.broadcast([ints, a], root=0)
    assert all(backend.owns(x) for x in (*out, *got)) and out[0] is not a
    np.testing.assert_array_equal(host_array(out[0]), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(host_array(out[1]), [0.5, -2.0])
    np.testing.assert_array_equal(host_array(got[0]), np.arange(4))
    np.testing.assert_array_equal(host_array(got[1]), host_array(a))


# DistributedOptimizer in-process -------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: pnn.optimizers.SGD(0.1, momentum=0.9),
                                  lambda: pnn.optimizers.Adam(0.01)], ids=["sgd", "adam"])
@pytest.mark.parametrize("comm_kind", ["single", "twin"])
def test_distributed_optimizer_equals_plain_optimizer(backend, make, comm_kind):
    """One rank, or two ranks with equal gradients: bit for bit the plain optimizer's steps
    ((g + g) / 2 is g exactly)."""
    _skip_without_float64(backend)
    comm = distributed.SingleCommunicator() if comm_kind == "single" else TwinCommunicator()
    a, b = mlp(backend), mlp(backend)
    plain, wrapped = make(), distributed.DistributedOptimizer(make(), comm)
    for _ in range(4):
        for model, opt in ((a, plain), (b, wrapped)):
            backprop(model)
            opt.step(model.parameters())
    for x, y in zip(values(a), values(b)):
        np.testing.assert_array_equal(x, y)
    assert values(a)[0].tolist() != values(mlp(backend))[0].tolist()  # they did train
    assert wrapped.iterations == plain.iterations == 4
    if comm_kind == "twin":
        assert comm.calls == 4  # one packed call per step for 4 parameters


def test_weight_scales_this_ranks_gradient(backend):
    _skip_without_float64(backend)
    for comm in (distributed.SingleCommunicator(), TwinCommunicator()):
        a, b = mlp(backend), mlp(backend)
        backprop(a)
        backprop(b)
        for p in a.parameters():
            p.grad = p.grad * 0.25
        pnn.optimizers.SGD(0.5).step(a.parameters())
        distributed.DistributedOptimizer(pnn.optimizers.SGD(0.5), comm).step(
            b.parameters(), weight=0.25)
        for x, y in zip(values(a), values(b)):
            np.testing.assert_array_equal(x, y)


def test_buckets_split_large_models(backend):
    _skip_without_float64(backend)
    comm = TwinCommunicator()
    a, b = mlp(backend), mlp(backend)
    # weights of 4x6 and 6x2 float64: 192 and 96 bytes; biases 48 and 16
    opt = distributed.DistributedOptimizer(pnn.optimizers.SGD(0.1), comm, bucket_bytes=150)
    assert [[p.shape for p in run] for _, run in opt._buckets(b.parameters())] == \
        [[(4, 6)], [(6,), (6, 2)], [(2,)]]
    backprop(a)
    backprop(b)
    pnn.optimizers.SGD(0.1).step(a.parameters())
    opt.step(b.parameters())
    assert comm.calls == 3
    for x, y in zip(values(a), values(b)):
        np.testing.assert_array_equal(x, y)


def test_frozen_and_gradless_parameters_are_left_alone(backend):
    _skip_without_float64(backend)
    comm = TwinCommunicator()
    model = mlp(backend)
    backprop(model)
    params = model.parameters()
    params[0].trainable = False
    params[3].grad = None
    before = values(model)
    opt = distributed.DistributedOptimizer(pnn.optimizers.SGD(0.1), comm)
    opt.step(params)
    after = values(model)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[3], before[3])
    assert not np.array_equal(after[1], before[1]) and not np.array_equal(after[2], before[2])
    assert params[3].grad is None


def test_checksum_catches_ranks_with_other_models():
    """A partner whose buffer has the same size but another layout: ValueError, no change."""

    class Other(TwinCommunicator):
        def _allreduce_sum(self, backend, flat):
            out = flat + flat
            out[-2:] = out[-2:] + 2.0  # the other rank's checksum differs by one
            return out

    model = mlp("cpu")
    backprop(model)
    before = values(model)
    opt = distributed.DistributedOptimizer(pnn.optimizers.SGD(0.1), Other())
    with pytest.raises(ValueError, match="the ranks disagree on which parameters are trainable"):
        opt.step(model.parameters())
    for x, y in zip(values(model), before):
        np.testing.assert_array_equal(x, y)
    assert opt.iterations == 0


def test_distributed_optimizer_forwards_to_the_wrapped_one():
    inner = pnn.optimizers.Adam(learning_rate=0.01)
    opt = distributed.DistributedOptimizer(inner, distributed.SingleCommunicator())
    assert isinstance(opt, pnn.optimizers.Optimizer)
    assert pnn.optimizers.get(opt) is opt
    opt.learning_rate = 0.2
    assert inner.learning_rate == 0.2 and opt.current_lr() == 0.2
    assert opt.get_config() == inner.get_config()
    model = mlp("cpu")
    backprop(model)
    opt.step(model.parameters())
    assert inner.iterations == opt.iterations == 1
    state = opt.state_dict(model.parameters())
    assert state["class"] == "Adam" and state["iterations"] == 1
    assert "DistributedOptimizer(Adam(" in repr(opt)


def test_distributed_optimizer_checks_its_arguments():
    comm = distributed.SingleCommunicator()
    sgd = pnn.optimizers.SGD(0.1)
    with pytest.raises(TypeError, match="already a DistributedOptimizer"):
        distributed.DistributedOptimizer(distributed.DistributedOptimizer(sgd, comm), comm)
    with pytest.raises(TypeError, match="optimizer must be a portable_nn Optimizer"):
        distributed.DistributedOptimizer("sgd", comm)
    with pytest.raises(TypeError, match="comm must be a communicator"):
        distributed.DistributedOptimizer(sgd, object())
    with pytest.raises(ValueError, match="bucket_bytes must be an int >= 1"):
        distributed.DistributedOptimizer(sgd, comm, bucket_bytes=0)
    opt = distributed.DistributedOptimizer(sgd, TwinCommunicator())
    model = mlp("cpu")
    backprop(model)
    before = values(model)
    with pytest.raises(ValueError, match=r"weight must be a finite number >= 0, got -1.0"):
        opt.step(model.parameters(), weight=-1)
    with pytest.raises(TypeError, match="weight must be a number, got str"):
        opt.step(model.parameters(), weight="1")
    with pytest.raises(TypeError, match="parameters must be a list of Parameter"):
        opt.step(model)
    model.parameters()[0].grad = model.parameters()[0].grad[:1]
    with pytest.raises(ValueError, match="grad has shape"):
        opt.step(model.parameters())
    for x, y in zip(values(model), before):
        np.testing.assert_array_equal(x, y)
    assert opt.iterations == 0 and opt.comm.calls == 0


def test_broadcast_parameters(backend):
    comm = TwinCommunicator()
    model = mlp(backend)
    old = [p.value for p in model.parameters()]
    distributed.broadcast_parameters(model.parameters(), comm)
    assert comm.calls == 1
    for p, o in zip(model.parameters(), old):
        assert p.value is not o
        np.testing.assert_array_equal(host_array(p.value), host_array(o))
    with pytest.raises(TypeError, match="parameters must be a list of Parameter"):
        distributed.broadcast_parameters(model, comm)


# two ranks -----------------------------------------------------------------------------------
@needs_mpi
def test_two_ranks_collectives_and_hand_written_loop(backend):
    """On each backend, in one launch: allreduce_mean / broadcast values, results and MPI call
    counts (tests/distributed/collectives.py); then the float64 hand-written loop with SGD
    (momentum 0.9) and Adam on equal and unequal shards: weights bit-identical on both ranks
    after every step and within 1e-10 of one process on all rows (training.py)."""
    name = backend.device_string
    extra = [] if _has_float64(backend) else ["--no-float64"]
    proc = mpirun(SCRIPTS / "backend_checks.py", name, *extra)
    assert_ok(proc, f"OK rank 0 {name}", f"OK rank 1 {name}")
    if not extra:  # both scripts reported on both ranks
        assert proc.stdout.count(f"OK rank 0 {name}") == 2, proc.stdout


@needs_mpi
def test_agree_raises_rank_ones_error_on_both_ranks():
    proc = mpirun(SCRIPTS / "failures.py", "agree", timeout=60)
    assert_ok(proc, "RAISED rank 0: rank 1: shard 3 is empty on this rank",
              "RAISED rank 1: rank 1: shard 3 is empty on this rank")


@needs_mpi
def test_abort_ends_every_rank_within_seconds():
    start = time.monotonic()
    proc = mpirun(SCRIPTS / "failures.py", "abort", timeout=30)  # rank 0 would sleep 300 s
    assert time.monotonic() - start < 30
    assert proc.returncode != 0
    assert "rank 1: boom" in proc.stderr, proc.stderr[-2000:]


@needs_mpi
def test_gradient_missing_on_one_rank_counts_as_zero():
    assert_ok(mpirun(SCRIPTS / "failures.py", "missing", timeout=60), "OK rank 0", "OK rank 1")


@needs_mpi
def test_ranks_stepping_different_models_raise_on_both():
    proc = mpirun(SCRIPTS / "failures.py", "mismatch", timeout=60)
    assert_ok(proc, "RAISED rank 0: DistributedOptimizer.step: the ranks disagree",
              "RAISED rank 1: DistributedOptimizer.step: the ranks disagree")


@needs_mpi
@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                    reason="the example's digits are bundled with scikit-learn")
def test_example_learns_the_digits_on_two_ranks(tmp_path):
    """With fit(distributed=comm); test_example_hand_written_loop checks the other path."""
    proc = mpirun(ROOT / "examples" / "distributed.py", "--epochs", "6", "--batch-size", "64",
                  "--save", "--out", tmp_path)
    assert_ok(proc, "ranks: 2 (mpi)", f"saved {tmp_path / 'distributed.safetensors'}")
    assert pnn.load(tmp_path / "distributed.safetensors").parameters()[0].shape == (64, 128)
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("test accuracy") for line in lines) == 1  # rank 0 reports
    # fit's lines, printed by rank 0 only: "epoch 3/6 - 0.02s - loss: 0.1234 - ..."
    losses = [float(line.split("loss: ")[1].split()[0]) for line in lines
              if line.startswith("epoch")]
    assert len(losses) == 6 and losses[-1] < losses[0] / 3
    accuracy = float(next(ln for ln in lines if ln.startswith("test accuracy")).split()[-1])
    assert accuracy > 0.9 and math.isfinite(losses[-1])


@needs_mpi
@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                    reason="the example's digits are bundled with scikit-learn")
def test_example_hand_written_loop():
    proc = mpirun(ROOT / "examples" / "distributed.py", "--epochs", "6", "--batch-size", "64",
                  "--hand-written")
    assert_ok(proc, "ranks: 2 (mpi)")
    lines = proc.stdout.splitlines()
    losses = [float(line.split()[-1]) for line in lines if line.startswith("epoch")]
    assert len(losses) == 6 and losses[-1] < losses[0] / 3
    accuracy = float(next(ln for ln in lines if ln.startswith("test accuracy")).split()[-1])
    assert accuracy > 0.9
