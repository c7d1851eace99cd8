"""Max, average and global average pooling: gradient checks, PyTorch's values and gradients (ties,
-inf, NaN and padding included), errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.layers import (
    AvgPool1D,
    AvgPool2D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    MaxPool1D,
    MaxPool2D,
    ReLU,
    Sequential,
)
from tests.conftest import to_np

# (class, arguments, input shape): stride = kernel, stride != kernel (overlapping and gapped),
# padding, odd sizes that leave cells out, rectangular kernels
WINDOWED = [
    (MaxPool2D, {"kernel_size": 2}, (2, 2, 5, 4)),
    (MaxPool2D, {"kernel_size": 3, "stride": 2, "padding": 1}, (1, 1, 5, 6)),
    (MaxPool2D, {"kernel_size": (2, 3), "stride": (1, 3)}, (2, 1, 4, 7)),
    (MaxPool1D, {"kernel_size": 3, "stride": 1, "padding": 1}, (2, 2, 6)),
    (MaxPool1D, {"kernel_size": 2, "stride": 3}, (2, 3, 8)),
    (AvgPool2D, {"kernel_size": 2}, (2, 2, 5, 4)),
    (AvgPool2D, {"kernel_size": 3, "stride": 2, "padding": 1}, (1, 1, 5, 6)),
    (AvgPool2D, {"kernel_size": (3, 2), "stride": (1, 2), "padding": (1, 0)}, (2, 1, 4, 5)),
    (AvgPool1D, {"kernel_size": 4, "stride": 1, "padding": 2}, (2, 2, 5)),
    (AvgPool1D, {"kernel_size": 2, "stride": 3}, (2, 3, 8)),
]


def _id(case):
    cls, kw, _ = case
    return cls.__name__ + "-" + "-".join(f"{k}={v}" for k, v in kw.items())


def _distinct(rng, shape):
    """Values at least 0.01 apart (a shuffled grid), so no window has a tie within eps."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) * 0.01


@pytest.mark.parametrize("case", WINDOWED, ids=[_id(c) for c in WINDOWED])
def test_pool_gradcheck_float64(backend, rng, case):
    cls, kw, shape = case
    layer = cls(**kw).build(backend, "float64")
    result = pnn.gradcheck(layer, backend.asarray(_distinct(rng, shape), dtype="float64"))
    assert set(result.errors) == {"input"}
    assert result.max_error < 1e-7, result


@pytest.mark.parametrize("cls, shape", [(GlobalAvgPool1D, (2, 3, 5)),
                                        (GlobalAvgPool2D, (2, 3, 4, 5))])
def test_global_pool_gradcheck_float64(backend, rng, cls, shape):
    layer = cls().build(backend, "float64")
    result = pnn.gradcheck(layer, backend.asarray(rng.normal(size=shape), dtype="float64"))
    assert result.max_error < 1e-7, result


def _torch_pool(cls):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    return torch, {MaxPool1D: F.max_pool1d, MaxPool2D: F.max_pool2d, AvgPool1D: F.avg_pool1d,
                   AvgPool2D: F.avg_pool2d}[cls]


def _compare_with_torch(backend, rng, cls, kw, xh):
    torch, pool = _torch_pool(cls)
    layer = cls(**kw).build(backend, "float64")
    y = layer.forward(backend.asarray(xh, dtype="float64"))
    gh = rng.normal(size=tuple(y.shape))
    dx = layer.backward(backend.asarray(gh, dtype="float64"))
    xt = torch.tensor(xh, requires_grad=True)
    yt = pool(xt, kw["kernel_size"], kw.get("stride"), kw.get("padding", 0))
    yt.backward(torch.tensor(gh))
    np.testing.assert_allclose(to_np(y), yt.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(to_np(dx), xt.grad.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", WINDOWED, ids=[_id(c) for c in WINDOWED])
def test_pool_equals_torch(backend, rng, case):
    cls, kw, shape = case
    _compare_with_torch(backend, rng, cls, kw, rng.normal(size=shape))


@pytest.mark.parametrize("case", [c for c in WINDOWED if c[0] in (MaxPool1D, MaxPool2D)],
                         ids=[_id(c) for c in WINDOWED if c[0] in (MaxPool1D, MaxPool2D)])
def test_max_pool_ties_and_infinities_go_where_torch_sends_them(backend, rng, case):
    """Few distinct values, so windows hold ties: the gradient goes to the first maximum in window
    order, as in PyTorch. A border of -inf next to the -inf padding: a window whose real cells
    are all -inf still sends its gradient to its first real cell."""
    cls, kw, shape = case
    xh = rng.integers(-2, 2, size=shape).astype(np.float64)
    xh[..., :2] = -np.inf
    _compare_with_torch(backend, rng, cls, kw, xh)


def test_max_pool_propagates_nan(backend):
    xh = np.arange(16.0).reshape(1, 1, 4, 4)
    xh[0, 0, 1, 0] = np.nan
    y = to_np(MaxPool2D(2).build(backend, "float64").forward(backend.asarray(xh,
                                                                            dtype="float64")))
    assert np.isnan(y[0, 0, 0, 0]) and np.isfinite(y[0, 0, 0, 1]) and np.isfinite(y[0, 0, 1]).all()


@pytest.mark.parametrize("cls, shape", [(GlobalAvgPool1D, (2, 3, 5)),
                                        (GlobalAvgPool2D, (2, 3, 4, 5))])
def test_global_pool_equals_torch(backend, rng, cls, shape):
    torch = pytest.importorskip("torch")
    layer = cls().build(backend, "float64")
    xh, gh = rng.normal(size=shape), rng.normal(size=shape[:2])
    y = layer.forward(backend.asarray(xh, dtype="float64"))
    dx = layer.backward(backend.asarray(gh, dtype="float64"))
    xt = torch.tensor(xh, requires_grad=True)
    F = torch.nn.functional
    yt = (F.adaptive_avg_pool1d(xt, 1) if cls is GlobalAvgPool1D
          else F.adaptive_avg_pool2d(xt, 1)).reshape(shape[:2])
    yt.backward(torch.tensor(gh))
    assert tuple(y.shape) == shape[:2]
    np.testing.assert_allclose(to_np(y), yt.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(to_np(dx), xt.grad.numpy(), rtol=0, atol=1e-12)


def test_outputs_are_new_arrays_that_a_model_may_write_over(backend, rng):
    """Pools declare owns_output, so a ReLU after them works in place: the caller's x must not
    change, even with a 1-cell window whose output equals a slice of x."""
    xh = rng.normal(size=(2, 2, 3, 3))
    for pool in (MaxPool2D(1), AvgPool2D(1), MaxPool2D(2, stride=1)):
        model = Sequential(pool, ReLU(), device=backend, dtype="float64")
        x = backend.asarray(xh, dtype="float64")
        model.forward(x)
        np.testing.assert_array_equal(to_np(x), xh)


def test_backward_skips_the_input_gradient_when_not_needed(backend, rng):
    layer = MaxPool2D(2).build(backend, "float64")
    layer.forward(backend.asarray(rng.normal(size=(1, 1, 4, 4)), dtype="float64"))
    assert layer.backward(backend.asarray(np.ones((1, 1, 2, 2)), dtype="float64"),
                          need_input_grad=False) is None


# --- configuration and errors -----------------------------------------------------------------
@pytest.mark.parametrize("case", WINDOWED, ids=[_id(c) for c in WINDOWED])
def test_config_round_trip_and_output_shape(case):
    cls, kw, shape = case
    layer = cls(**kw)
    cfg = json.loads(json.dumps(layer.get_config()))
    rebuilt = pnn.layers.layer_from_config({"class": cls.__name__, "config": cfg})
    assert rebuilt.get_config() == cfg
    assert layer.state_shapes() == {}
    rebuilt.build("cpu", "float64")
    y = rebuilt.forward(rebuilt.backend.asarray(np.zeros(shape), dtype="float64"))
    assert rebuilt.output_shape((None, *shape[1:])) == (None, *y.shape[1:])


def test_stride_defaults_to_the_kernel():
    assert MaxPool2D((2, 3)).get_config() == {"kernel_size": [2, 3], "stride": [2, 3],
                                              "padding": [0, 0]}
    assert AvgPool1D(4, padding=1).output_shape((None, 3, 10)) == (None, 3, 3)
    assert GlobalAvgPool2D().output_shape((None, 5, 7, 7)) == (None, 5)


@pytest.mark.parametrize("make, error, message", [
    (lambda: MaxPool2D(0), ValueError, "kernel_size must be >= 1"),
    (lambda: MaxPool2D(2, stride=0), ValueError, "stride must be >= 1"),
    (lambda: AvgPool1D(2.0), TypeError, "kernel_size must be an int"),
    (lambda: AvgPool2D(3, padding=2), ValueError, "padding must be at most half of kernel_size"),
    (lambda: MaxPool1D(4, padding=3), ValueError, "padding must be at most half of kernel_size"),
    (lambda: MaxPool2D(2, padding=-1), ValueError, "padding must be >= 0"),
    (lambda: MaxPool2D((2, 2, 2)), ValueError, "kernel_size must be an int or a sequence of 2"),
])
def test_bad_constructor_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_bad_input_at_forward(backend):
    pool = MaxPool2D(3).build(backend, "float64")
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, channels, height, "
                                         r"width\), got \(2, 3, 4\)"):
        pool.forward(backend.asarray(np.ones((2, 3, 4)), dtype="float64"))
    with pytest.raises(ValueError, match=r"the kernel spans 3 cells along spatial axis 1, more "
                                         r"than the padded input's 2"):
        pool.forward(backend.asarray(np.ones((2, 3, 4, 2)), dtype="float64"))
    assert pool._cache_shape is None and pool._cache_index is None
    with pytest.raises(RuntimeError, match="MaxPool2D.backward called before forward"):
        pool.backward(backend.asarray(np.ones((2, 3, 1, 1)), dtype="float64"))
    pool.forward(backend.asarray(np.ones((2, 3, 4, 4)), dtype="float64"))
    with pytest.raises(ValueError, match=r"expects grad_out of shape \(2, 3, 1, 1\), got"):
        pool.backward(backend.asarray(np.ones((2, 3, 2, 2)), dtype="float64"))
    with pytest.raises(ValueError, match=r"GlobalAvgPool1D expects input of shape \(batch, "
                                         r"channels, length\), got \(2, 3\)"):
        GlobalAvgPool1D().build(backend).forward(backend.asarray(np.ones((2, 3))))
    with pytest.raises(TypeError, match="expects an array of the layer's backend"):
        AvgPool1D(2).build(backend).forward([[[1.0, 2.0]]])
