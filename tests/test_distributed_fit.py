"""``fit(..., distributed=comm)``: 2-rank runs of ``tests/distributed/fit_runs.py`` under
``mpiexec -n 2`` (skipped only without mpi4py/mpiexec, failing instead in CI), and the one-rank
communicator in this process, which must train exactly as plain fit does."""

from __future__ import annotations

import time

import numpy as np
import pytest

import portable_nn as pnn
from tests.test_distributed import SCRIPTS, mpi_available, mpirun, needs_mpi  # noqa: F401 (fixture)


def _out(proc):
    return proc.stdout + proc.stderr


@needs_mpi
@pytest.mark.parametrize("variant", [[], ["sync"]], ids=["local-batchnorm", "sync-batchnorm"])
def test_two_ranks_full_batch_equal_one_process(variant):
    """SGD+momentum and Adam, unequal shards (31 rows), float64: the weights of one process to
    1e-10, bit-identical on both ranks after every epoch, the same History on both, the
    checkpoint written by rank 0 only; with a synchronized BatchNorm in the second case."""
    proc = mpirun(SCRIPTS / "fit_runs.py", "equal", *variant, timeout=300)
    assert proc.returncode == 0, _out(proc)[-4000:]
    for rank in (0, 1):
        assert f"rank {rank}: fit equals one process" in proc.stdout, _out(proc)[-4000:]


@needs_mpi
def test_two_ranks_with_dropout_train_as_one_process():
    proc = mpirun(SCRIPTS / "fit_runs.py", "dropout", timeout=300)
    assert proc.returncode == 0, _out(proc)[-4000:]
    assert proc.stdout.count("dropout accuracy") == 2


@needs_mpi
def test_bad_data_on_rank_1_raises_on_both_ranks_before_training():
    proc = mpirun(SCRIPTS / "fit_runs.py", "bad-data", timeout=120)
    assert proc.returncode == 0, _out(proc)[-4000:]
    for rank in (0, 1):
        assert f"rank {rank} raised: rank 1: X contains NaN" in proc.stdout, _out(proc)


@needs_mpi
def test_an_error_during_training_on_one_rank_ends_both():
    start = time.monotonic()
    proc = mpirun(SCRIPTS / "fit_runs.py", "crash", timeout=120)
    assert proc.returncode != 0
    assert "rank 1: RuntimeError: disk full on rank 1" in _out(proc)
    assert "should not get here" not in proc.stdout
    assert time.monotonic() - start < 60


def test_a_one_rank_communicator_trains_as_plain_fit(backend):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    comm = pnn.distributed.init()
    assert comm.size == 1

    def run(**kw):
        model = pnn.Sequential(pnn.layers.Dense(3, 6), pnn.layers.Tanh(), pnn.layers.Dropout(0.2),
                               pnn.layers.Dense(6, 2), device=backend, dtype="float64", seed=1)
        h = model.fit(X, y, loss="cross_entropy", optimizer="adam", epochs=2, batch_size=8,
                      verbose=0, **kw)
        return model.state_dict(), h.history

    (a, ha), (b, hb) = run(), run(distributed=comm)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert ha == {k: v for k, v in hb.items() if k != "time"} | {"time": ha["time"]}


def test_distributed_argument_errors():
    model = pnn.Sequential(pnn.layers.Dense(2, 1))
    with pytest.raises(TypeError, match="communicator"):
        model.fit(np.ones((4, 2)), np.ones(4), loss="mse", optimizer="sgd", distributed="mpi")
    with pytest.raises(TypeError, match="communicator"):
        pnn.distributed.sync_batchnorm(model, "mpi")
