"""Dropout: mask statistics, scaling, inference identity, gradient routing, MC dropout."""

from __future__ import annotations

import math

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.layers import BatchNorm, Dense, Dropout, ReLU, Sequential, mc_dropout_predict
from tests.conftest import to_np


def _x(backend, shape=(200, 500), dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    return backend.asarray(rng.uniform(0.5, 1.5, size=shape), dtype=dtype)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_kept_fraction_and_scale(backend, p):
    layer = Dropout(p).build(backend, "float64", seed=1)
    x = _x(backend)
    y = to_np(layer.forward(x, training=True))
    xs = to_np(x)
    kept = y != 0.0
    n = kept.size
    assert abs(kept.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    # kept units are scaled by exactly 1/(1-p), dropped ones are 0
    np.testing.assert_allclose(y[kept], xs[kept] / (1 - p), rtol=1e-15)
    # so the expected activation is preserved: E[y] = x, Var[y] = x² p/(1-p) per unit
    assert abs(y.mean() - xs.mean()) < 5 * math.sqrt(np.mean(xs**2) * p / (1 - p) / n)


def test_masks_are_fresh_and_reproducible(backend):
    a = Dropout(0.5).build(backend, "float32", seed=3)
    b = Dropout(0.5).build(backend, "float32", seed=3)
    x = _x(backend, (4, 50), "float32")
    first, second = to_np(a.forward(x, training=True)), to_np(a.forward(x, training=True))
    assert not np.array_equal(first, second)  # a new mask on each call
    np.testing.assert_array_equal(first, to_np(b.forward(x, training=True)))  # same seed, same
    assert a.forward(x, training=True).dtype == backend.dtype("float32")


def test_identity_at_inference_and_for_p_zero(backend):
    x = _x(backend, (6, 7))
    g = _x(backend, (6, 7), seed=1)
    layer = Dropout(0.5).build(backend, "float64", seed=0)
    np.testing.assert_array_equal(to_np(layer.forward(x)), to_np(x))
    np.testing.assert_array_equal(to_np(layer.backward(g)), to_np(g))
    zero = Dropout(0.0).build(backend, "float64", seed=0)
    np.testing.assert_array_equal(to_np(zero.forward(x, training=True)), to_np(x))
    np.testing.assert_array_equal(to_np(zero.backward(g)), to_np(g))


def test_gradient_flows_only_through_kept_units(backend):
    layer = Dropout(0.3).build(backend, "float64", seed=2)
    x = _x(backend, (20, 30))
    y = to_np(layer.forward(x, training=True))
    g = _x(backend, (20, 30), seed=5)
    dx = to_np(layer.backward(g))
    kept = y != 0.0
    assert 0 < kept.sum() < kept.size
    np.testing.assert_array_equal(dx[~kept], 0.0)
    np.testing.assert_allclose(dx[kept], to_np(g)[kept] / 0.7, rtol=1e-15)
    # for the fixed mask, y is linear in x: dL/dx of L = Σ y ⊙ g equals y/x ⊙ g
    np.testing.assert_allclose(dx, y / to_np(x) * to_np(g), rtol=1e-13)
    assert layer.backward(g, need_input_grad=False) is None


def test_gradcheck_float64_with_the_mask_held_fixed(backend):
    """Training-mode Dropout draws a new mask every forward, which central differences cannot
    follow; with the generator replaced by one that repeats a single mask, the layer is a fixed
    function and gradcheck must pass (and a mask applied without the 1/(1-p) scale must not)."""
    layer = Dropout(0.4).build(backend, "float64", seed=1)
    mask = backend.rng(1).bernoulli((3, 5), 0.6, dtype="float64")
    assert 0.0 < float(backend.xp.sum(mask)) < 15.0

    def frozen(shape, keep, dtype):
        return mask

    layer._draw = frozen
    x = np.random.default_rng(3).normal(size=(3, 5))
    result = pnn.gradcheck(layer, x, training=True)
    assert result and result.max_error < 1e-6, result

    broken = Dropout(0.4).build(backend, "float64", seed=1)
    broken._draw = frozen
    broken.backward = lambda g, need_input_grad=True: g * mask  # forgets the 1/(1-p) scale
    assert not pnn.gradcheck(broken, x, training=True)


def test_any_rank_drops_each_element_on_its_own(backend):
    """4-D input (one shape only: JAX compiles its generator once per shape, for seconds)."""
    shape, p = (12, 3, 10, 10), 0.3
    layer = Dropout(p).build(backend, "float64", seed=4)
    x = _x(backend, shape)
    y = to_np(layer.forward(x, training=True))
    assert y.shape == shape
    kept = y != 0.0
    assert abs(kept.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / kept.size)
    np.testing.assert_allclose(y[kept], to_np(x)[kept] / (1 - p), rtol=1e-15)
    # one mask element per input element: no axis shares a mask (as spatial dropout would)
    for axis in range(len(shape)):
        assert not np.all(kept == kept.take([0], axis=axis)), axis
    g = _x(backend, shape, seed=1)
    np.testing.assert_allclose(to_np(layer.backward(g)), y / to_np(x) * to_np(g), rtol=1e-13)


@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 2, 3, 2)], ids=["3-D", "4-D"])
def test_gradcheck_any_rank_with_the_mask_held_fixed(backend, shape):
    layer = Dropout(0.4).build(backend, "float64", seed=1)
    keep = np.random.default_rng(0).random(shape) < 0.6
    assert 0 < keep.sum() < keep.size
    mask = backend.asarray(keep, dtype="float64")

    layer._draw = lambda shape, keep, dtype: mask
    result = pnn.gradcheck(layer, np.random.default_rng(3).normal(size=shape), training=True)
    assert result and result.max_error < 1e-6, result


def test_a_list_is_a_type_error(backend):
    layer = Dropout(0.5).build(backend, "float64", seed=0)
    with pytest.raises(TypeError, match="Dropout.forward expects an array.*got list"):
        layer.forward([[1.0, 2.0]], training=True)
    with pytest.raises(RuntimeError, match="not built"):
        Dropout(0.5).forward(np.ones((2, 2)))


def test_backward_errors(backend):
    layer = Dropout(0.5).build(backend, "float64", seed=0)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(_x(backend, (2, 2)))
    layer.forward(_x(backend, (2, 3)), training=True)
    with pytest.raises(ValueError, match="shape"):
        layer.backward(_x(backend, (3, 2)))


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, "0.5", True, None])
def test_bad_p_raises(p):
    with pytest.raises(ValueError, match="p "):
        Dropout(p)


def test_config_and_move(backend):
    model = Sequential(Dense(3, 4), Dropout(0.25), Dense(4, 2), device=backend, seed=0)
    clone = Sequential.from_config(model.get_config())
    assert isinstance(clone[1], Dropout) and clone[1].p == 0.25
    other = pnn.get_backend("array_api_strict:device1" if backend.name != "array_api_strict"
                            else "cpu")
    model.to(other)
    out = model.forward(other.asarray(np.ones((5, 3)), dtype="float32"), training=True)
    assert other.owns(out)


def _mc_model(backend, p, with_batchnorm=False):
    layers = [Dense(3, 16), ReLU()]
    if with_batchnorm:
        layers.append(BatchNorm(16))
    layers += [Dropout(p), Dense(16, 2)]
    return Sequential(*layers, device=backend, dtype="float64", seed=0)


def test_mc_dropout_shapes_and_spread(backend):
    model = _mc_model(backend, 0.5)
    X = np.random.default_rng(0).normal(size=(7, 3))
    mean, std = mc_dropout_predict(model, X, n_samples=20, batch_size=3)
    assert isinstance(mean, np.ndarray) and isinstance(std, np.ndarray)
    assert mean.shape == std.shape == (7, 2)
    assert (std > 0).all()
    # host data in, host data out; device data in, device data out
    Xd = backend.asarray(X, dtype="float64")
    dmean, dstd = mc_dropout_predict(model, Xd, n_samples=20)
    assert backend.owns(dmean) and backend.owns(dstd)
    # Dropout sits between ReLU and a linear layer, so the expected output is exactly the
    # inference output: the MC mean converges to it at the rate std / sqrt(n_samples)
    mean, std = mc_dropout_predict(model, X, n_samples=400)
    exact = to_np(model.forward(Xd))
    assert (np.abs(mean - exact) < 5 * std / math.sqrt(400) + 1e-12).all()


def test_mc_dropout_with_p_zero_is_deterministic_and_uses_running_stats(backend):
    """Only Dropout layers are stochastic: BatchNorm runs in inference mode, so with p = 0 every
    sample equals forward(training=False) and the running statistics do not move."""
    model = _mc_model(backend, 0.0, with_batchnorm=True)
    rng = np.random.default_rng(1)
    for _ in range(3):  # give the running statistics non-trivial values
        model.forward(backend.asarray(rng.normal(size=(8, 3)), dtype="float64"), training=True)
    before = {k: to_np(v).copy() for k, v in model.named_buffers().items()}
    X = rng.normal(size=(5, 3))
    mean, std = mc_dropout_predict(model, X, n_samples=4)
    np.testing.assert_array_equal(std, 0.0)
    expected = to_np(model.forward(backend.asarray(X, dtype="float64")))
    np.testing.assert_allclose(mean, expected, rtol=1e-13, atol=1e-15)
    for k, v in model.named_buffers().items():
        np.testing.assert_array_equal(to_np(v), before[k])


def test_mc_dropout_bad_input(backend):
    model = _mc_model(backend, 0.5)
    X = np.ones((2, 3))
    with pytest.raises(ValueError, match="n_samples"):
        mc_dropout_predict(model, X, n_samples=0)
    with pytest.raises(TypeError, match="batch_size"):
        mc_dropout_predict(model, X, batch_size=2.5)
    no_dropout = Sequential(Dense(3, 2), device=backend, seed=0)
    with pytest.raises(ValueError, match="no Dropout"):
        mc_dropout_predict(no_dropout, X)
    elsewhere = pnn.get_backend("array_api_strict:device1")
    with pytest.raises(ValueError, match="X"):
        mc_dropout_predict(model, elsewhere.asarray(X, dtype="float64"))
    with pytest.raises(TypeError, match="Sequential"):
        mc_dropout_predict("model", X)
