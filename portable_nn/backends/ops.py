"""Hot-path operations, chosen per array namespace: generic Array API code, or a backend's fast path.

`Ops` is written in the standard only; it is the reference that every fast path is tested against
(``tests/test_fast_paths.py``). A backend overrides a method only where its library can do the same
math measurably faster (see ``NumpyOps`` in ``numpy_backend.py``). Layers reach their ops through
``self.backend.ops``; losses, which only see arrays, through ``ops_for(xp)``.
"""

from __future__ import annotations

import math

from array_api_compat import array_namespace, is_writeable_array
from array_api_compat import device as device_of

__all__ = ["Ops", "namespace_of", "ops_for"]


# Namespaces whose arrays are known to be updated by ``a += b`` in place. Elsewhere an augmented
# assignment may rebind a local name and leave the array as it was (dask and ndonnx arrays accept
# ``__setitem__`` but have no ``__iadd__``), or the array is immutable (JAX): the generic code then
# takes its functional path.
_MUTATING = frozenset({"array_api_compat.numpy", "array_api_compat.cupy", "array_api_compat.torch"})


class Ops:
    """Generic implementations, in ``xp`` only. Each method returns new arrays and never writes
    into its arguments, except the optimizer updates (``adam_update``), which update the
    parameter and its state in place where ``writeable`` allows it, as the optimizers do."""

    def __init__(self, xp):
        self.xp = xp
        self._mutates = getattr(xp, "__name__", "") in _MUTATING

    def __repr__(self):
        return f"{type(self).__name__}({getattr(self.xp, '__name__', self.xp)!r})"

    def writeable(self, x):
        """Whether ``x`` may be updated in place: an array of a library known to mutate in place
        (NumPy, CuPy, torch) that is writeable (``array_api_compat.is_writeable_array``)."""
        return self._mutates and is_writeable_array(x)

    def value_range(self, x):
        """``(min, max)`` of the integer array ``x`` as Python ints (one host sync each)."""
        return int(self.xp.min(x)), int(self.xp.max(x))

    def relu(self, x):
        """``max(x, 0)``."""
        return self.xp.maximum(x, 0.0)

    def relu_backward(self, g, y):
        """``g ⊙ [y > 0]`` for ``y = relu(x)``: the slope is 1 exactly where the output is positive."""
        return self.xp.where(y > 0, g, 0.0)

    # ``*_inplace``: the same result, possibly written over the first argument, which the caller
    # owns and will not read again (``Sequential`` passes arrays that only it holds). The caller
    # must use the returned array. The generic versions return new arrays, as the standard has
    # no ``out=``.
    def relu_inplace(self, x):
        """``relu(x)``, possibly written over ``x``."""
        return self.relu(x)

    def relu_backward_inplace(self, g, y):
        """``relu_backward(g, y)``, possibly written over ``g``."""
        return self.relu_backward(g, y)

    def bias_grad(self, g):
        """``Σ_i g_i``: the gradient of a bias added to every row of a batch."""
        return self.xp.sum(g, axis=0)

    # ``*_into``: the result may be written into ``out`` (a previous gradient buffer, or ``None``)
    # where a backend can and ``out`` is a writeable array of the result's shape and dtype; the
    # caller must use the returned array. The generic versions ignore ``out``.
    def matmul_into(self, a, b, out):
        """``a @ b`` (2-D), possibly written into ``out``."""
        return a @ b

    def sum_rows_into(self, g, out):
        """``Σ_i g_i`` (``bias_grad``), possibly written into ``out``."""
        return self.bias_grad(g)

    def sum_of_squares(self, d):
        """``Σ d²`` over every element (a 0-d array)."""
        return self.xp.sum(d * d)

    def softmax_cross_entropy(self, z, labels, scale):
        """Cross-entropy of ``softmax(z)`` against integer ``labels``, times ``scale``:
        ``scale · Σ_i (logsumexp(z_i) − z_{i, t_i})``. Returns ``(value, state)`` where ``state``
        is what ``softmax_cross_entropy_backward`` needs. ``labels`` must be valid class indices."""
        xp = self.xp
        shifted = z - xp.max(z, axis=-1, keepdims=True)
        logp = shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))
        classes = xp.arange(z.shape[-1], device=device_of(labels))
        target = labels[:, None] == classes[None, :]
        # picked with where, not onehot · logp: a logit of -inf (or one so low that the shift
        # overflows) gives logp = -inf, and 0 · -inf would make the loss NaN instead of finite
        picked = xp.sum(xp.where(target, logp, 0.0))
        return -scale * picked, (logp, xp.astype(target, z.dtype), scale)

    def softmax_cross_entropy_backward(self, state):
        """``scale · (softmax(z) − onehot(t))``, the lecture's ``ŷ − t``."""
        logp, onehot, scale = state
        return (self.xp.exp(logp) - onehot) * scale

    def adam_update(self, value, g, m, v, *, lr, beta1, beta2, eps, t):
        """Adam's step number ``t`` (from 1), as ``torch.optim.Adam``:
        ``m ← β₁ m + (1 − β₁) g``;  ``v ← β₂ v + (1 − β₂) g²``;
        ``θ ← θ − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)``.
        Returns ``(θ, m, v)``: the same arrays updated in place where they are writeable, new
        arrays otherwise. ``g`` is left unchanged."""
        xp = self.xp
        inplace = self.writeable(value) and self.writeable(m) and self.writeable(v)
        if inplace:
            m *= beta1
            m += (1.0 - beta1) * g
            v *= beta2
            v += (1.0 - beta2) * (g * g)
        else:
            m = beta1 * m + (1.0 - beta1) * g
            v = beta2 * v + (1.0 - beta2) * (g * g)
        denom = xp.sqrt(v) * (1.0 / math.sqrt(1.0 - beta2**t)) + eps
        step = (lr / (1.0 - beta1**t)) * (m / denom)
        if inplace:
            value -= step
        else:
            value = value - step
        return value, m, v


_BY_NAMESPACE: dict = {}


def ops_for(xp) -> Ops:
    """The ops for an array namespace: the backend's fast ones where it has them, else `Ops`."""
    ops = _BY_NAMESPACE.get(xp)
    if ops is None:
        ops = _BY_NAMESPACE[xp] = _make(xp)
    return ops


def _make(xp):
    if getattr(xp, "__name__", "") == "array_api_compat.numpy":
        from .numpy_backend import NumpyOps

        return NumpyOps(xp)
    return Ops(xp)


_NS_BY_TYPES: dict = {}


def namespace_of(*arrays):
    """``array_namespace(*arrays)``, remembered per tuple of array types (the namespace depends
    only on them). Saves the few microseconds that the full lookup costs on every call."""
    key = tuple(map(type, arrays))
    xp = _NS_BY_TYPES.get(key)
    if xp is None:
        xp = _NS_BY_TYPES[key] = array_namespace(*arrays)
    return xp
