"""LayerNorm, and BatchNorm on (n, C, L) and (n, C, H, W) input: gradient checks, agreement with
PyTorch, running statistics, frozen parameters, errors. (2-D BatchNorm: tests/test_batchnorm.py.)"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.layers import BatchNorm, LayerNorm, Sequential, layer_from_config
from tests.conftest import to_np


def _x(backend, shape, seed=1, dtype="float64", loc=2.0, scale=3.0):
    rng = np.random.default_rng(seed)
    return backend.asarray(rng.normal(loc, scale, size=shape), dtype=dtype)


def _ln(backend, normalized_shape, dtype="float64"):
    """A LayerNorm with non-trivial weight and bias (ones/zeros would hide mistakes)."""
    layer = LayerNorm(normalized_shape).build(backend, dtype, seed=0)
    rng = np.random.default_rng(9)
    shape = layer.normalized_shape
    layer.weight.value = backend.asarray(rng.uniform(0.5, 2.0, size=shape), dtype=dtype)
    layer.bias.value = backend.asarray(rng.normal(size=shape), dtype=dtype)
    return layer


def _bn(backend, features=3, dtype="float64", **kwargs):
    layer = BatchNorm(features, **kwargs).build(backend, dtype, seed=0)
    rng = np.random.default_rng(9)
    layer.gamma.value = backend.asarray(rng.uniform(0.5, 2.0, size=features), dtype=dtype)
    layer.beta.value = backend.asarray(rng.normal(size=features), dtype=dtype)
    layer.set_buffer("running_mean", backend.asarray(rng.normal(size=features), dtype=dtype))
    layer.set_buffer("running_var", backend.asarray(rng.uniform(0.5, 3.0, size=features),
                                                    dtype=dtype))
    return layer


# --- LayerNorm ----------------------------------------------------------------------------------
@pytest.mark.parametrize("normalized_shape,shape", [
    (5, (4, 5)), (5, (2, 3, 5)), ((3, 4), (2, 3, 4)), ((3, 4), (3, 4)),
], ids=["1-axis", "1-axis-3d", "2-axes", "no-batch-axis"])
def test_layernorm_gradcheck_float64(backend, normalized_shape, shape):
    layer = _ln(backend, normalized_shape)
    result = pnn.gradcheck(layer, _x(backend, shape))
    assert set(result.errors) == {"input", "weight", "bias"}
    assert result.max_error < 1e-6, result


@pytest.mark.parametrize("normalized_shape,shape", [(6, (4, 6)), ((3, 4), (2, 5, 3, 4))])
def test_layernorm_equals_torch(backend, normalized_shape, shape):
    torch = pytest.importorskip("torch")
    layer = _ln(backend, normalized_shape)
    layer.eps = 1e-3
    x = to_np(_x(backend, shape))
    g = np.random.default_rng(2).normal(size=shape)
    y = to_np(layer.forward(backend.asarray(x, dtype="float64")))
    dx = to_np(layer.backward(backend.asarray(g, dtype="float64")))
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(to_np(layer.weight.value), requires_grad=True)
    tb = torch.tensor(to_np(layer.bias.value), requires_grad=True)
    ty = torch.nn.functional.layer_norm(tx, layer.normalized_shape, tw, tb, eps=1e-3)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_np(layer.weight.grad), tw.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(to_np(layer.bias.grad), tb.grad.numpy(), rtol=1e-10)


def test_layernorm_is_stable_for_large_offsets_in_float32(backend):
    """Two passes (mean, then the mean of squared deviations): E[x²] − E[x]² would cancel
    catastrophically for data at 1e4 ± 1 in float32."""
    layer = LayerNorm(256).build(backend, "float32")
    x = _x(backend, (4, 256), loc=1e4, scale=1.0, dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = to_np(layer.forward(x))
        g = to_np(layer.backward(backend.asarray(np.ones((4, 256)), dtype="float32")))
    assert y.dtype == g.dtype == np.float32
    np.testing.assert_allclose(y.mean(axis=1), 0.0, atol=1e-3)
    np.testing.assert_allclose(y.std(axis=1), 1.0, atol=1e-2)
    # a constant gradient is normalised away, up to the float32 resolution of the data at 1e4
    np.testing.assert_allclose(g, 0.0, atol=1e-2)
    big = backend.asarray(np.array([[-1e4, 1e4, 0.0, 5.0]]), dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.all(np.isfinite(to_np(LayerNorm(4).build(backend, "float32").forward(big))))


def test_layernorm_errors(backend):
    layer = _ln(backend, (3, 4))
    with pytest.raises(ValueError, match=r"LayerNorm\(\(3, 4\)\) expects input of shape "
                                         r"\(\.\.\., 3, 4\), got \(2, 4, 3\)"):
        layer.forward(_x(backend, (2, 4, 3)))
    with pytest.raises(ValueError, match=r"got \(4,\)"):
        layer.forward(_x(backend, (4,)))
    with pytest.raises(TypeError, match="LayerNorm.forward expects an array.*got list"):
        layer.forward([[1.0] * 4] * 3)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(_x(backend, (2, 3, 4)))
    layer.forward(_x(backend, (2, 3, 4)))
    with pytest.raises(ValueError, match="grad_out of shape"):
        layer.backward(_x(backend, (3, 3, 4)))
    with pytest.raises(RuntimeError, match="not built"):
        LayerNorm(4).forward(np.ones((2, 4)))


@pytest.mark.parametrize("args,exc,match", [
    ((0,), ValueError, "normalized_shape must be >= 1"),
    (((),), ValueError, "at least one axis"),
    (((2, 0),), ValueError, "normalized_shape must be >= 1"),
    ((2.0,), TypeError, "normalized_shape must be an int or a tuple"),
    (("3",), TypeError, "normalized_shape must be an int or a tuple"),
    (((2, 1.5),), TypeError, "normalized_shape must be an int"),
    ((True,), TypeError, "normalized_shape"),
    ((4, 0.0), ValueError, "eps must be a finite number > 0"),
    ((4, "1e-5"), TypeError, "eps must be a number"),
])
def test_layernorm_bad_arguments(args, exc, match):
    with pytest.raises(exc, match=match):
        LayerNorm(*args)


def test_layernorm_config_state_shapes_and_output_shape(backend):
    layer = LayerNorm([3, 4], eps=1e-3)
    assert layer.normalized_shape == (3, 4)
    clone = layer_from_config({"class": "LayerNorm", "config": layer.get_config()})
    assert clone.normalized_shape == (3, 4) and clone.eps == 1e-3
    built = clone.build(backend, "float64")
    assert built.state_shapes() == {k: tuple(p.value.shape)
                                    for k, p in built.named_parameters().items()}
    assert layer.output_shape((None, 7, 3, 4)) == (None, 7, 3, 4)
    np.testing.assert_array_equal(to_np(built.weight.value), np.ones((3, 4)))
    np.testing.assert_array_equal(to_np(built.bias.value), np.zeros((3, 4)))


# --- BatchNorm on 3-D and 4-D input -------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 3, 4), (2, 3, 2, 3)], ids=["NCL", "NCHW"])
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_batchnorm_nd_gradcheck_float64(backend, shape, training):
    layer = _bn(backend)
    result = pnn.gradcheck(layer, _x(backend, shape), training=training)
    assert set(result.errors) == {"input", "gamma", "beta"}
    assert result.max_error < 1e-6, result


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 5), (3, 3, 2, 4)], ids=["NC", "NCL", "NCHW"])
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_batchnorm_equals_torch(backend, shape, training):
    """Values, all three gradients and the running statistics equal torch's batch_norm
    (PyTorch's momentum is 1 − ours)."""
    torch = pytest.importorskip("torch")
    layer = _bn(backend, momentum=0.7, eps=1e-3)
    x = to_np(_x(backend, shape))
    g = np.random.default_rng(2).normal(size=shape)
    rm, rv = (to_np(layer.buffers()[k]).copy() for k in ("running_mean", "running_var"))
    y = to_np(layer.forward(backend.asarray(x, dtype="float64"), training=training))
    dx = to_np(layer.backward(backend.asarray(g, dtype="float64")))
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(to_np(layer.gamma.value), requires_grad=True)
    tb = torch.tensor(to_np(layer.beta.value), requires_grad=True)
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, training=training, momentum=0.3,
                                        eps=1e-3)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_np(layer.gamma.grad), tw.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(to_np(layer.beta.grad), tb.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(to_np(layer.buffers()["running_mean"]), trm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(to_np(layer.buffers()["running_var"]), trv.numpy(), rtol=1e-12)
    if not training:
        np.testing.assert_array_equal(to_np(layer.buffers()["running_var"]), rv)


def test_batchnorm_nd_normalises_each_channel_over_batch_and_positions(backend):
    layer = BatchNorm(2, momentum=0.0).build(backend, "float64")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2, 4, 5)) * np.array([1.0, 10.0])[None, :, None, None] + \
        np.array([5.0, -3.0])[None, :, None, None]
    y = to_np(layer.forward(backend.asarray(x, dtype="float64"), training=True))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    v = x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), v / (v + 1e-5), rtol=1e-12)
    # momentum 0: the running variance is the batch's, unbiased over n·H·W = 60 values
    np.testing.assert_allclose(to_np(layer.buffers()["running_var"]),
                               x.var(axis=(0, 2, 3), ddof=1), rtol=1e-12)


def test_batchnorm_one_sample_with_positions_is_enough_in_training(backend):
    """torch counts values per channel, not samples: (1, C, L) with L > 1 trains."""
    layer = _bn(backend)
    y = layer.forward(_x(backend, (1, 3, 4)), training=True)
    assert tuple(y.shape) == (1, 3, 4)
    with pytest.raises(ValueError, match="at least 2 samples per channel"):
        layer.forward(_x(backend, (1, 3, 1)), training=True)


def test_batchnorm_nd_errors_leave_the_layer_as_it_was(backend):
    layer = _bn(backend)
    before = {k: to_np(v).copy() for k, v in layer.buffers().items()}
    layer.forward(_x(backend, (2, 3, 4)), training=True)
    good = {k: to_np(v).copy() for k, v in layer.buffers().items()}
    for bad, match in [((2, 4, 5), (r"BatchNorm\(3\) expects input of shape \(batch, 3\), "
                                   r"\(batch, 3, length\) or \(batch, 3, height, width\), "
                                   r"got \(2, 4, 5\)")),
                       ((2, 3, 2, 2, 2), r"got \(2, 3, 2, 2, 2\)"),
                       ((3,), r"got \(3,\)")]:
        with pytest.raises(ValueError, match=match):
            layer.forward(_x(backend, bad), training=True)
    with pytest.raises(TypeError, match="BatchNorm.forward expects an array.*got list"):
        layer.forward([[1.0, 2.0, 3.0]] * 4, training=True)
    for k, v in layer.buffers().items():
        np.testing.assert_array_equal(to_np(v), good[k])
        assert not np.array_equal(good[k], before[k])
    # the cache of the last good call is intact: backward still works on it
    assert tuple(layer.backward(_x(backend, (2, 3, 4))).shape) == (2, 3, 4)
    with pytest.raises(ValueError, match="grad_out of shape"):
        layer.backward(_x(backend, (2, 3, 5)))


def test_frozen_parameters_get_no_gradient(backend):
    bn = _bn(backend)
    bn.gamma.trainable = False
    x = _x(backend, (4, 3, 5))
    g = _x(backend, (4, 3, 5), seed=2)
    bn.forward(x, training=True)
    dx = to_np(bn.backward(g))
    assert bn.gamma.grad is None and bn.beta.grad is not None
    ref = _bn(backend)
    ref.forward(x, training=True)
    np.testing.assert_allclose(dx, to_np(ref.backward(g)), rtol=1e-13)  # dx still exact
    np.testing.assert_allclose(to_np(bn.beta.grad), to_np(ref.beta.grad), rtol=1e-13)
    ln = _ln(backend, 5)
    ln.bias.trainable = False
    ln.forward(x)
    ln.backward(g)
    assert ln.bias.grad is None and ln.weight.grad is not None
    ln.weight.trainable = False
    ln.forward(x)
    assert ln.backward(g, need_input_grad=False) is None and ln.weight.grad is None


def test_batchnorm_declares_its_nonnegative_state():
    assert BatchNorm.nonnegative_state == ("running_var",)
    assert set(BatchNorm.nonnegative_state) <= set(BatchNorm(2).state_shapes())
    assert "nonnegative_state" in BatchNorm.__doc__


def test_models_with_both_norms_round_trip(backend):
    model = Sequential(pnn.layers.Dense(4, 6), LayerNorm(6), pnn.layers.GELU(),
                       pnn.layers.Dense(6, 6), BatchNorm(6), device=backend, dtype="float64",
                       seed=0)
    x = _x(backend, (5, 4))
    model.forward(x, training=True)
    clone = Sequential.from_config(model.get_config(), device=backend)
    clone.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(to_np(clone.forward(x)), to_np(model.forward(x)))
    for a, b in zip(model.layers, clone.layers):
        assert a.get_config() == b.get_config()
