"""gradcheck itself: integer inputs, regularizer penalties, argument checks, nested buffers."""

from __future__ import annotations

import math

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.layers import BatchNorm, Dense, Tanh
from portable_nn.layers.base import Layer
from portable_nn.regularizers import L1, L2
from tests.conftest import to_np


class _GcLookup(Layer):
    """An embedding written as ``onehot(ids) @ W``: integer input, one parameter.
    ``factor`` scales the weight gradient (1: right; 2: the bug a zero ``R`` would hide)."""

    def __init__(self, vocab, dim, factor=1.0):
        super().__init__()
        self.vocab, self.dim, self.factor = vocab, dim, factor

    def _build(self, rng):
        self.add_parameter("weight", rng.normal(size=(self.vocab, self.dim)))

    def forward(self, x, training=False):
        xp = self.xp
        classes = xp.arange(self.vocab, device=pnn.backends.backend_of(x).device)
        self._cache_onehot = xp.astype(x[:, None] == classes[None, :], self.dtype)
        return self._cache_onehot @ self.weight.value

    def backward(self, grad_out, need_input_grad=True):
        self.weight.grad = self.factor * (self._cache_onehot.T @ grad_out)


def test_integer_input_checks_parameters_with_a_floating_projection(backend):
    ids = np.array([0, 3, 1, 3, 2])
    good = _GcLookup(4, 3).build(backend, "float64", seed=0)
    bad = _GcLookup(4, 3, factor=2.0).build(backend, "float64", seed=0)
    for x in (ids, ids.tolist(), backend.asarray(ids)):
        result = pnn.gradcheck(good, x)
        assert result and set(result.errors) == {"weight"}, result  # no input check for ids
        wrong = pnn.gradcheck(bad, x)
        assert not wrong and wrong.max_error == pytest.approx(0.5, rel=1e-6), wrong


class _GcForgetsPenalty(Dense):
    """A Dense whose backward leaves the regularizer's gradient out."""

    def backward(self, grad_out, need_input_grad=True):
        gx = super().backward(grad_out, need_input_grad)
        self.weight.grad = self.weight.grad - self.regularizer.gradient(self.weight.value)
        return gx


@pytest.mark.parametrize("reg", [L2(0.1), L1(0.05)])
def test_the_penalty_is_part_of_the_checked_scalar(backend, rng, reg):
    x = rng.normal(size=(4, 3))
    layer = Dense(3, 2, regularizer=reg).build(backend, "float64", seed=0)
    assert pnn.gradcheck(layer, x), pnn.gradcheck(layer, x)
    model = pnn.Sequential(Dense(3, 4, regularizer=reg), Tanh(), Dense(4, 2, regularizer=reg),
                           device=backend, dtype="float64", seed=1)
    assert pnn.gradcheck(model, x)
    assert pnn.gradcheck(model, x, target=np.array([0, 1, 1, 0]), loss=pnn.losses.CrossEntropy())
    forgets = _GcForgetsPenalty(3, 2, regularizer=reg).build(backend, "float64", seed=0)
    result = pnn.gradcheck(forgets, x)
    assert not result and result.worst == "weight", result


@pytest.mark.parametrize("name", ["eps", "tol"])
def test_eps_and_tol_are_checked(name):
    layer = Tanh().build("cpu", "float64")
    x = np.ones((2, 2))
    for bad in (0, 0.0, -1e-6, math.nan, math.inf):
        with pytest.raises(ValueError, match=f"{name} must be a finite number > 0, got"):
            pnn.gradcheck(layer, x, **{name: bad})
    for bad in ("1e-6", None, True, [1e-6]):
        with pytest.raises(TypeError, match=f"{name} must be a number > 0"):
            pnn.gradcheck(layer, x, **{name: bad})


def test_what_obj_must_be():
    for bad in (5, "dense", np.ones(3), object()):
        with pytest.raises(TypeError, match="a built Layer, a Sequential .* or a Loss; got"):
            pnn.gradcheck(bad, np.ones((2, 3)))
    with pytest.raises(RuntimeError, match="needs a built layer: Dense is not built"):
        pnn.gradcheck(Dense(3, 2), np.ones((2, 3)))
    with pytest.raises(ValueError, match="sample_weight= needs a loss"):
        pnn.gradcheck(Tanh().build("cpu", "float64"), np.ones((2, 3)), sample_weight=[1, 1])


class _GcWrap(Layer):
    """A one-child container that lists its nested layers with ``modules()``."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def _build(self, rng):
        self.inner.build(self.backend, self.dtype, rng)

    def forward(self, x, training=False):
        return self.inner.forward(x, training=training)

    def backward(self, grad_out, need_input_grad=True):
        return self.inner.backward(grad_out, need_input_grad)

    def named_parameters(self):
        return {f"inner.{k}": p for k, p in self.inner.named_parameters().items()}

    def modules(self):
        yield self
        yield from (self.inner.modules() if hasattr(self.inner, "modules") else [self.inner])


def test_buffers_of_nested_layers_are_restored(backend, rng):
    bn = BatchNorm(3)
    obj = _GcWrap(_GcWrap(bn)).build(backend, "float64", seed=0)
    before = {k: to_np(v).copy() for k, v in bn.buffers().items()}
    x = rng.normal(size=(6, 3)) * 3 + 2
    result = pnn.gradcheck(obj, x, training=True)
    assert result and set(result.errors) == {"input", "inner.inner.gamma", "inner.inner.beta"}
    for k, v in bn.buffers().items():
        np.testing.assert_array_equal(to_np(v), before[k])
    obj.forward(backend.asarray(x, dtype="float64"), training=True)  # does move them
    assert not np.array_equal(to_np(bn.buffers()["running_mean"]), before["running_mean"])
