"""BatchNorm: gradient checks, the forward formula, running statistics, buffers, errors."""

from __future__ import annotations

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.layers import BatchNorm, Dense, ReLU, Sequential
from tests.conftest import to_np


def _bn(backend, features=4, dtype="float64", **kwargs):
    """A BatchNorm with non-trivial gamma and beta (ones/zeros would hide mistakes)."""
    layer = BatchNorm(features, **kwargs).build(backend, dtype, seed=0)
    rng = np.random.default_rng(9)
    layer.gamma.value = backend.asarray(rng.uniform(0.5, 2.0, size=features), dtype=dtype)
    layer.beta.value = backend.asarray(rng.normal(size=features), dtype=dtype)
    return layer


def _x(backend, shape=(6, 4), seed=1, dtype="float64"):
    rng = np.random.default_rng(seed)
    return backend.asarray(rng.normal(2.0, 3.0, size=shape), dtype=dtype)


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_gradcheck_float64(backend, training):
    layer = _bn(backend)
    layer.set_buffer("running_mean", backend.asarray(np.array([1.0, -1.0, 0.5, 2.0]),
                                                     dtype="float64"))
    layer.set_buffer("running_var", backend.asarray(np.array([4.0, 0.5, 1.0, 9.0]),
                                                    dtype="float64"))
    result = pnn.gradcheck(layer, _x(backend), training=training)
    assert set(result.errors) == {"input", "gamma", "beta"}
    assert result.max_error < 1e-6, result


def test_gradcheck_inside_a_model_with_a_loss(backend):
    model = Sequential(Dense(3, 5), BatchNorm(5), ReLU(), Dense(5, 2), device=backend,
                       dtype="float64", seed=2)
    x = _x(backend, (8, 3))
    t = backend.asarray(np.array([0, 1, 1, 0, 1, 0, 0, 1]))
    result = pnn.gradcheck(model, x, target=t, loss=pnn.losses.CrossEntropy(), training=True)
    # a bias right before BatchNorm is subtracted out again: its true gradient is exactly 0, so
    # a relative error compares rounding noise with rounding noise; check it is ~0 instead
    del result.errors["0.bias"]
    assert max(result.errors.values()) < 1e-6, result
    assert np.abs(to_np(model[0].bias.grad)).max() < 1e-12 * np.abs(
        to_np(model[0].weight.grad)).max()


def test_training_forward_and_running_update_follow_the_formulas(backend):
    layer = _bn(backend, momentum=0.8, eps=1e-3)
    x = _x(backend)
    xs, g, b = to_np(x), to_np(layer.gamma.value), to_np(layer.beta.value)
    y = to_np(layer.forward(x, training=True))
    mu, var = xs.mean(axis=0), xs.var(axis=0)
    np.testing.assert_allclose(y, g * (xs - mu) / np.sqrt(var + 1e-3) + b, rtol=1e-12)
    np.testing.assert_allclose(y.mean(axis=0), b, atol=1e-12)  # normalised: batch mean β
    buffers = layer.buffers()
    np.testing.assert_allclose(to_np(buffers["running_mean"]), 0.2 * mu, rtol=1e-13)
    np.testing.assert_allclose(to_np(buffers["running_var"]),
                               0.8 * 1.0 + 0.2 * xs.var(axis=0, ddof=1), rtol=1e-13)


def test_inference_uses_running_stats_and_leaves_them(backend):
    layer = _bn(backend)
    mean, var = np.array([1.0, -2.0, 0.0, 3.0]), np.array([0.25, 4.0, 1.0, 2.0])
    layer.set_buffer("running_mean", backend.asarray(mean, dtype="float64"))
    layer.set_buffer("running_var", backend.asarray(var, dtype="float64"))
    x = _x(backend)
    y = to_np(layer.forward(x, training=False))
    g, b = to_np(layer.gamma.value), to_np(layer.beta.value)
    np.testing.assert_allclose(y, g * (to_np(x) - mean) / np.sqrt(var + 1e-5) + b, rtol=1e-12)
    np.testing.assert_array_equal(to_np(layer.buffers()["running_mean"]), mean)
    np.testing.assert_array_equal(to_np(layer.buffers()["running_var"]), var)
    # a single sample is fine at inference
    assert tuple(layer.forward(_x(backend, (1, 4))).shape) == (1, 4)


def test_running_stats_converge_to_the_data(backend):
    mu, sigma = np.array([2.0, -1.0, 0.5]), np.array([1.0, 3.0, 0.5])
    layer = BatchNorm(3, momentum=0.99).build(backend, "float64", seed=0)
    rng = np.random.default_rng(5)
    for _ in range(1500):
        layer.forward(backend.asarray(rng.normal(mu, sigma, size=(64, 3)), dtype="float64"),
                      training=True)
    rm, rv = to_np(layer.buffers()["running_mean"]), to_np(layer.buffers()["running_var"])
    # the average runs over about 200 batches of 64: standard error about sigma / 113
    np.testing.assert_allclose(rm, mu, atol=0.05 * sigma.max())
    np.testing.assert_allclose(rv, sigma**2, rtol=0.1)
    # and then inference normalises that data to mean 0, variance 1 (γ = 1, β = 0)
    y = to_np(layer.forward(backend.asarray(rng.normal(mu, sigma, size=(4000, 3)),
                                            dtype="float64")))
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=0.1)
    np.testing.assert_allclose(y.std(axis=0), 1.0, atol=0.1)


def test_buffers_are_not_parameters_and_optimizers_leave_them(backend):
    model = Sequential(Dense(3, 4), BatchNorm(4), device=backend, dtype="float64", seed=0)
    bn = model[1]
    assert [p.name for p in bn.parameters()] == ["gamma", "beta"]
    assert set(model.named_buffers()) == {"1.running_mean", "1.running_var"}
    x = _x(backend, (10, 3))
    out = model.forward(x, training=True)
    model.backward(out)
    snapshot = {k: to_np(v).copy() for k, v in model.named_buffers().items()}
    gamma = to_np(bn.gamma.value).copy()
    adam = pnn.optimizers.AdamW(0.1, weight_decay=0.5)
    adam.step(model.parameters())
    adam.step(model.parameters())
    for k, v in model.named_buffers().items():
        np.testing.assert_array_equal(to_np(v), snapshot[k])
    assert not np.array_equal(to_np(bn.gamma.value), gamma)
    assert len(adam.state_dict(model.parameters())["slots"]) == 4


def test_wrong_input_raises_before_any_change(backend):
    layer = _bn(backend)
    before = {k: to_np(v).copy() for k, v in layer.buffers().items()}
    with pytest.raises(ValueError, match=r"BatchNorm\(4\) expects input of shape \(batch, 4\)"):
        layer.forward(_x(backend, (6, 3)), training=True)
    with pytest.raises(ValueError, match="shape"):
        layer.forward(_x(backend, (6,)), training=True)
    with pytest.raises(ValueError, match="at least 2 samples"):
        layer.forward(_x(backend, (1, 4)), training=True)
    for k, v in layer.buffers().items():
        np.testing.assert_array_equal(to_np(v), before[k])
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(_x(backend))
    layer.forward(_x(backend), training=True)
    with pytest.raises(ValueError, match="grad_out"):
        layer.backward(_x(backend, (5, 4)))


@pytest.mark.parametrize("kwargs,argname,exc", [
    ({"features": 0}, "features", ValueError),
    ({"features": 2.0}, "features", TypeError),
    ({"features": 3, "momentum": 1.0}, "momentum", ValueError),
    ({"features": 3, "momentum": -0.5}, "momentum", ValueError),
    ({"features": 3, "eps": 0.0}, "eps", ValueError),
    ({"features": 3, "eps": "small"}, "eps", TypeError),
])
def test_bad_arguments_raise(kwargs, argname, exc):
    with pytest.raises(exc, match=argname):
        BatchNorm(**kwargs)


def test_state_dict_round_trip_and_config(backend):
    model = Sequential(Dense(3, 4), BatchNorm(4, momentum=0.5), Dense(4, 2), device=backend,
                       dtype="float64", seed=0)
    sgd = pnn.optimizers.SGD(0.1)
    for seed in range(3):
        out = model.forward(_x(backend, (8, 3), seed=seed), training=True)
        model.backward(out)
        sgd.step(model.parameters())
    state = model.state_dict()
    assert {"1.gamma", "1.beta", "1.running_mean", "1.running_var"} <= set(state)
    assert all(isinstance(v, np.ndarray) for v in state.values())
    clone = Sequential.from_config(model.get_config(), device=backend)
    assert clone[1].momentum == 0.5
    clone.load_state_dict(state)
    x = _x(backend, (5, 3), seed=7)
    np.testing.assert_array_equal(to_np(clone.forward(x)), to_np(model.forward(x)))
    for k, v in clone.named_buffers().items():
        np.testing.assert_array_equal(to_np(v), state[k])


def test_agrees_across_backends_and_moves(backend):
    reference = _bn(pnn.get_backend("cpu"))
    layer = _bn(backend)
    xs = np.random.default_rng(3).normal(size=(6, 4))
    g = np.random.default_rng(4).normal(size=(6, 4))
    for lay, b in ((reference, pnn.get_backend("cpu")), (layer, backend)):
        lay.forward(b.asarray(xs, dtype="float64"), training=True)
    dx_ref = reference.backward(g)
    dx = layer.backward(backend.asarray(g, dtype="float64"))
    np.testing.assert_allclose(to_np(dx), dx_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(to_np(layer.gamma.grad), reference.gamma.grad, rtol=1e-12)
    np.testing.assert_allclose(to_np(layer.buffers()["running_var"]),
                               reference.buffers()["running_var"], rtol=1e-13)
    other = pnn.get_backend("array_api_strict:device1" if backend.name != "array_api_strict"
                            else "cpu")
    layer.to(other)
    assert all(other.owns(v) for v in layer.buffers().values())
    assert other.owns(layer.forward(other.asarray(xs, dtype="float64"), training=True))
