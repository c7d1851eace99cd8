"""``model.fit(..., distributed=comm)`` on 2 ranks, one scenario per run (argv[1]).

- ``equal``: full-batch gradient descent (each rank's batch is its whole shard of an odd number of
  rows, so the shards differ in size) for several epochs with SGD+momentum and with Adam gives the
  weights, to 1e-10 in float64, of one process training on all rows; the weights are bit-identical
  on both ranks after every epoch, the History is the same on both, and a ModelCheckpoint writes
  on rank 0 only. With ``sync`` in argv[2] the model has BatchNorm, synchronized across ranks.
- ``dropout``: a Dropout model trains on 2 ranks (each drawing its own masks) to the accuracy of
  one process.
- ``bad-data``: rank 1 gives fit data with NaN: both ranks raise with rank 1's message.
- ``crash``: a callback raises on rank 1 in the second epoch: both processes end (abort).
"""

from __future__ import annotations

import sys
import tempfile

import numpy as np
from _common import distributed, pnn, world

L = pnn.layers


def data(n, seed=7):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] * X[:, 1] + X[:, 2] > 0).astype(np.int64) + (X[:, 3] > 1.0)
    return X, y


def make(batchnorm=False, dropout=0.0):
    # before a BatchNorm a bias has no gradient (the mean is taken out): it would only hold noise
    layers = [L.Dense(4, 12, bias=not batchnorm)]
    if batchnorm:
        layers.append(L.BatchNorm(12))
    layers.append(L.Tanh())
    if dropout:
        layers.append(L.Dropout(dropout))
    layers.append(L.Dense(12, 3))
    return pnn.Sequential(*layers, dtype="float64", seed=5)


class Same(pnn.callbacks.Callback):
    """After every epoch: the weights (and BatchNorm's buffers) bit-identical on every rank."""

    def __init__(self, comm):
        self.comm, self.epochs = comm, 0

    def on_epoch_end(self, epoch, logs=None):
        arrays = [p.value for p in self.model.parameters()] + \
            list(self.model.named_buffers().values())
        means = self.comm.allreduce_mean(arrays)
        for a, m in zip(arrays, means):
            if not np.array_equal(np.asarray(a), np.asarray(m)):
                raise AssertionError(f"weights differ between ranks after epoch {epoch}")
        self.epochs += 1


class CountingCheckpoint(pnn.callbacks.ModelCheckpoint):
    writes_done = 0

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        CountingCheckpoint.writes_done += 1


def equal(comm, sync):
    X, y = data(31)
    for opt in ("sgd", "adam"):
        def optimizer(opt=opt):
            return pnn.optimizers.SGD(0.2, momentum=0.9) if opt == "sgd" else \
                pnn.optimizers.Adam(0.05)

        model = make(batchnorm=sync)
        if sync:
            distributed.sync_batchnorm(model, comm)
        same = Same(comm)
        with tempfile.TemporaryDirectory() as tmp:
            path = tmp + f"/rank{comm.rank}-{{epoch}}.ckpt"
            ckpt = CountingCheckpoint(path, monitor="loss")
            history = model.fit(X, y, loss="cross_entropy", optimizer=optimizer(), epochs=5,
                                batch_size=16, distributed=comm, callbacks=[same, ckpt],
                                metrics=["accuracy"], verbose=0, seed=1)
        assert same.epochs == 5, same.epochs
        writes = comm.allreduce_sum_host([float(CountingCheckpoint.writes_done)])[0]
        mine = CountingCheckpoint.writes_done
        CountingCheckpoint.writes_done = 0
        assert (mine == 5) if comm.rank == 0 else (mine == 0), (comm.rank, mine)
        assert writes == 5.0, writes
        losses = history.history["loss"]
        total = comm.allreduce_sum_host(list(losses))
        assert total == [2.0 * v for v in losses], "the History differs between ranks"
        ref = make(batchnorm=sync)
        ref_history = ref.fit(X, y, loss="cross_entropy", optimizer=optimizer(), epochs=5,
                              batch_size=31, metrics=["accuracy"], verbose=0, seed=1)
        got, want = model.state_dict(), ref.state_dict()
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-12, err_msg=k)
        np.testing.assert_allclose(losses, ref_history.history["loss"], rtol=1e-10)
        np.testing.assert_allclose(history.history["accuracy"],
                                   ref_history.history["accuracy"], rtol=1e-12)
    print(f"rank {comm.rank}: fit equals one process (sync={sync})", flush=True)


def dropout(comm):
    X, y = data(400, seed=3)
    Xt, yt = data(400, seed=4)
    kw = {"loss": "cross_entropy", "epochs": 30, "metrics": ["accuracy"], "verbose": 0}
    model = make(dropout=0.2)
    model.fit(X, y, optimizer=pnn.optimizers.Adam(0.02), batch_size=25, distributed=comm, **kw)
    ref = make(dropout=0.2)
    ref.fit(X, y, optimizer=pnn.optimizers.Adam(0.02), batch_size=50, **kw)
    acc, ref_acc = (m.evaluate(Xt, yt, metrics=["accuracy"])["accuracy"] for m in (model, ref))
    assert acc > 0.8 and abs(acc - ref_acc) < 0.05, (acc, ref_acc)
    print(f"rank {comm.rank}: dropout accuracy {acc:.3f} vs one process {ref_acc:.3f}", flush=True)


def bad_data(comm):
    X, y = data(20)
    if comm.rank == 1:
        X[3, 1] = np.nan
    model = make()
    try:
        model.fit(X, y, loss="cross_entropy", optimizer="sgd", distributed=comm, verbose=0)
    except (ValueError, RuntimeError) as exc:
        assert model.optimizer is None  # nothing changed, on either rank
        print(f"rank {comm.rank} raised: {exc}", flush=True)
        return
    raise AssertionError("no rank raised")


class CrashOnRank1(pnn.callbacks.Callback):
    def __init__(self, comm):
        self.comm = comm

    def on_epoch_end(self, epoch, logs=None):
        if self.comm.rank == 1 and epoch == 1:
            raise RuntimeError("disk full on rank 1")


def crash(comm):
    X, y = data(40)
    make().fit(X, y, loss="cross_entropy", optimizer="sgd", epochs=50, distributed=comm,
               callbacks=[CrashOnRank1(comm)], verbose=0)
    print(f"rank {comm.rank}: should not get here", flush=True)


if __name__ == "__main__":
    comm = world()
    scenario = sys.argv[1]
    if scenario == "equal":
        equal(comm, sync=len(sys.argv) > 2 and sys.argv[2] == "sync")
    elif scenario == "dropout":
        dropout(comm)
    elif scenario == "bad-data":
        bad_data(comm)
    elif scenario == "crash":
        crash(comm)
    else:
        sys.exit(f"unknown scenario {scenario!r}")
