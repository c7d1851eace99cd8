"""The "dask" backend: lazy arrays whose graphs the optimizers' materialize hook keeps small, and
generic code that never relies on ``+=`` mutating an array (dask arrays have ``__setitem__`` but
no in-place operators)."""

from __future__ import annotations

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.backends import backend_of, get_backend, host_array
from portable_nn.backends.base import Backend
from portable_nn.backends.ops import Ops
from portable_nn.parameter import Parameter

da = pytest.importorskip("dask.array")

OPTIMIZERS = {
    "sgd_momentum": lambda: pnn.optimizers.SGD(0.1, momentum=0.9),
    "sgd_nesterov": lambda: pnn.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "adagrad": lambda: pnn.optimizers.AdaGrad(0.1, initial_accumulator=0.1),
    "adam": lambda: pnn.optimizers.Adam(0.01),
    "adamw": lambda: pnn.optimizers.AdamW(0.01, weight_decay=0.1),
    "rmsprop_momentum": lambda: pnn.optimizers.RMSprop(0.01, momentum=0.5),
}


@pytest.fixture
def dask_backend():
    # dask's synchronous scheduler: the same graphs and results, without thread hand-offs that
    # cost more than these small arrays' arithmetic on a two-core machine
    import dask

    with dask.config.set(scheduler="sync"):
        yield get_backend("dask")


def _params(backend, shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [Parameter(backend.asarray(rng.normal(size=s), dtype="float64"), name=f"p{i}")
            for i, s in enumerate(shapes)]


def test_the_dask_backend_converts_and_is_found(dask_backend):
    host = np.arange(6.0).reshape(2, 3)
    x = dask_backend.asarray(host, dtype="float32")
    assert isinstance(x, da.Array) and dask_backend.owns(x) and x.dtype == np.float32
    assert backend_of(x) == dask_backend and backend_of(x + 1) == dask_backend
    back = host_array(x * 2)
    assert isinstance(back, np.ndarray) and back.flags.writeable
    np.testing.assert_array_equal(back, host * 2)
    assert get_backend("cpu").asarray(x).dtype == np.float32  # through dask's to_numpy
    assert "dask" in pnn.available_devices()


def test_dask_arrays_are_never_updated_in_place(dask_backend):
    x = dask_backend.asarray(np.ones(3), dtype="float64")
    assert not hasattr(type(x), "__iadd__") and hasattr(type(x), "__setitem__")
    assert not dask_backend.ops.writeable(x) and type(dask_backend.ops) is Ops
    # the generic Adam on dask returns new arrays and leaves its arguments as they were
    v0, g = dask_backend.asarray(np.full(3, 2.0)), dask_backend.asarray(np.full(3, 0.5))
    m0, s0 = dask_backend.xp.zeros_like(v0), dask_backend.xp.zeros_like(v0)
    out = dask_backend.ops.adam_update(v0, g, m0, s0, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
                                       t=1)
    assert all(o is not i for o, i in zip(out, (v0, m0, s0)))
    np.testing.assert_array_equal(host_array(v0), 2.0)
    np.testing.assert_array_equal(host_array(m0), 0.0)
    np.testing.assert_allclose(host_array(out[0]), 2.0 - 0.1, rtol=1e-7)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizers_on_dask_agree_with_numpy(dask_backend, name):
    shapes = [(4, 3), (3,)]
    cpu = get_backend("cpu")
    ref, lazy = _params(cpu, shapes), _params(dask_backend, shapes)
    opt_ref, opt_lazy = OPTIMIZERS[name](), OPTIMIZERS[name]()
    rng = np.random.default_rng(1)
    for _ in range(4):
        for p, q in zip(ref, lazy):
            g = rng.normal(size=p.shape)
            p.grad, q.grad = cpu.asarray(g), dask_backend.asarray(g, dtype="float64")
        opt_ref.step(ref)
        opt_lazy.step(lazy)
    for p, q in zip(ref, lazy):
        assert isinstance(q.value, da.Array)
        np.testing.assert_allclose(host_array(q.value), p.value, rtol=1e-12, atol=1e-14)
    for a, b in zip(opt_ref.state_dict(ref)["slots"], opt_lazy.state_dict(lazy)["slots"]):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_allclose(b[k], a[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["sgd_momentum", "adagrad", "adam"])
def test_graphs_do_not_grow_with_the_number_of_steps(dask_backend, name):
    """Each step's work is the same: the values and state that the next step builds on are
    persisted (a fixed number of tasks), not the whole run's history."""
    (p,) = _params(dask_backend, [(6, 5)])
    opt = OPTIMIZERS[name]()
    g = dask_backend.asarray(np.random.default_rng(2).normal(size=p.shape), dtype="float64")

    def graph_sizes():
        arrays = [p.value, *opt._state[p].values()]
        return [len(a.__dask_graph__()) for a in arrays]

    sizes = {}
    for step in range(1, 51):
        p.grad = g
        opt.step([p])
        if step in (5, 50):
            sizes[step] = graph_sizes()
    assert sizes[50] == sizes[5]
    assert max(sizes[50]) <= p.value.npartitions  # one task per chunk: nothing left to compute


def test_fit_on_dask_matches_numpy(dask_backend):
    """The whole loop (layers, loss, optimizer) on dask: a lost ``+=`` anywhere would show."""
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(24, 5)), rng.integers(0, 3, size=24)
    models = {}
    for device in ("cpu", "dask"):
        model = pnn.Sequential(pnn.layers.Dense(5, 7), pnn.layers.ReLU(), pnn.layers.Dense(7, 3),
                               device=device, dtype="float64", seed=0)
        model.fit(X, y, loss=pnn.losses.CrossEntropy(), optimizer=pnn.optimizers.Adam(0.05),
                  epochs=2, batch_size=8, shuffle=False, verbose=0)
        models[device] = model
    for p, q in zip(models["cpu"].parameters(), models["dask"].parameters()):
        assert isinstance(q.value, da.Array)
        np.testing.assert_allclose(dask_backend.to_numpy(q.value), p.value, rtol=1e-12,
                                   atol=1e-14)
    np.testing.assert_allclose(models["dask"].predict(X), models["cpu"].predict(X), rtol=1e-12)


def test_materialize_persists_and_keeps_values(dask_backend):
    x = dask_backend.asarray(np.arange(4.0))
    y = ((x + 1) * 2) - 3
    assert len(y.__dask_graph__()) > 1
    (z,) = dask_backend.materialize([y])
    assert len(z.__dask_graph__()) == 1
    np.testing.assert_array_equal(host_array(z), (np.arange(4.0) + 1) * 2 - 3)
    assert dask_backend.materialize([]) == []
    assert Backend.materialize(get_backend("cpu"), [x]) == [x]
