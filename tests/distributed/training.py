"""The hand-written loop on 2 ranks against one process on all rows, for one backend (argv[1]).

A small float64 MLP; each rank takes a disjoint shard of the rows (full batch of its shard) and
steps a DistributedOptimizer. After every step the weights must be bit-identical on both ranks,
and after the last equal (to 1e-10) to one process training on all rows with the plain optimizer
(each rank computes that reference itself). Equal shards without ``weight=``, unequal shards with
``weight = rows_here * size / rows_all``."""

from __future__ import annotations

import sys

import numpy as np
from _common import distributed, pnn, same_everywhere, world

from portable_nn.backends import get_backend, host_array

STEPS = 6


def make_model(backend):
    L = pnn.layers
    return pnn.Sequential(L.Dense(5, 8), L.Tanh(), L.Dense(8, 3), device=backend,
                          dtype="float64", seed=3)


def data(n):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(n, 5))
    T = np.stack([X[:, 0] * X[:, 1], np.sin(X[:, 2]), X[:, 3] - X[:, 4]], axis=1)
    return X, T


def grad_step(model, loss, backend, X, T):
    pred = model.forward(backend.asarray(X, dtype="float64"), training=True)
    loss.forward(pred, backend.asarray(T, dtype="float64"))
    model.backward(loss.backward(), need_input_grad=False)


def train(comm, backend, make_optimizer, n, rows, weight):
    X, T = data(n)
    model, loss = make_model(backend), pnn.losses.MSE()
    opt = distributed.DistributedOptimizer(make_optimizer(), comm)
    for step in range(STEPS):
        grad_step(model, loss, backend, X[rows], T[rows])
        opt.step(model.parameters(), weight=weight)
        same_everywhere(comm, [p.value for p in model.parameters()], f"after step {step}")
    assert opt.iterations == STEPS, opt.iterations
    return [host_array(p.value) for p in model.parameters()]


def reference(backend, make_optimizer, n):
    X, T = data(n)
    model, loss, opt = make_model(backend), pnn.losses.MSE(), make_optimizer()
    for _ in range(STEPS):
        grad_step(model, loss, backend, X, T)
        opt.step(model.parameters())
    return [host_array(p.value) for p in model.parameters()]


def main(device):
    comm = world()  # the same communicator on every call (init caches it)
    backend = get_backend(device)
    sgd = lambda: pnn.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    adam = lambda: pnn.optimizers.Adam(learning_rate=0.01)
    # equal shards (2 x 12 rows, plain average) with SGD + momentum; unequal shards (15 and 8
    # rows, each rank's gradient weighted by its share) with Adam
    for name, make, n, cut, weighted in (("SGD(momentum=0.9), equal shards", sgd, 24, 12, False),
                                         ("Adam, unequal shards", adam, 23, 15, True)):
        rows = range(cut) if comm.rank == 0 else range(cut, n)
        weight = len(rows) * comm.size / n if weighted else None
        got = train(comm, backend, make, n, rows, weight)
        want = reference(backend, make, n)
        start = [host_array(p.value) for p in make_model(backend).parameters()]
        moved = max(float(np.max(np.abs(g - s))) for g, s in zip(got, start))
        assert moved > 1e-3, f"{name}: the weights hardly moved ({moved})"
        err = max(float(np.max(np.abs(g - w))) for g, w in zip(got, want))
        assert err <= 1e-10, f"{name}: max difference {err} from one process on all rows"
    print(f"OK rank {comm.rank} {backend.device_string}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
