"""NumPy on the CPU: the reference backend."""

from __future__ import annotations

import math

import array_api_compat.numpy as xp_numpy
import numpy as np

from .base import Backend, DeviceRNG
from .ops import Ops


class NumpyRNG(DeviceRNG):
    """Draws straight into NumPy arrays of the wanted dtype (no float64 detour for float32)."""

    def uniform(self, shape, low=0.0, high=1.0, dtype="float32"):
        u = self._gen.random(size=shape, dtype=np.dtype(dtype))
        return u if (low, high) == (0.0, 1.0) else u * (high - low) + low

    def normal(self, shape, mean=0.0, std=1.0, dtype="float32"):
        z = self._gen.standard_normal(size=shape, dtype=np.dtype(dtype))
        return z if (mean, std) == (0.0, 1.0) else z * std + mean

    def bernoulli(self, shape, p, dtype="float32"):
        return (self._gen.random(size=shape, dtype=np.dtype(dtype)) < p).astype(dtype)


# float dtype -> the integer type of the same width, for the bit mask of relu_backward
_SAME_WIDTH_INT = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


class NumpyOps(Ops):
    """NumPy fast paths for the generic `Ops`: the same results, non-finite values included (a
    NaN where the generic code gives an inf would stop NumPy's training where the other
    backends train on), tested against them in ``tests/test_fast_paths.py``."""

    # np.where branches per element and is about ten times slower than a multiply when half the
    # units are off, but multiplying by the boolean mask gives NaN for an infinite or NaN gradient
    # at an off unit (0 · inf). So the mask is widened to all-one / all-zero bits of the float's
    # width and ANDed with the gradient's bits: branch-free, and exactly where's result.
    def relu_backward(self, g, y):
        itype = _SAME_WIDTH_INT.get(getattr(g, "dtype", None))
        if type(g) is not np.ndarray or itype is None:
            return super().relu_backward(g, y)
        bits = np.negative(y > 0, dtype=itype)  # True -> -1 (every bit set), False -> 0
        return np.bitwise_and(g.view(itype), bits, out=bits).view(g.dtype)

    def writeable(self, x):
        # the compat helper's generic checks cost about a microsecond per parameter per step
        return x.flags.writeable if type(x) is np.ndarray else super().writeable(x)

    def value_range(self, x):
        return int(np.minimum.reduce(x, axis=None)), int(np.maximum.reduce(x, axis=None))

    def relu_inplace(self, x):
        if type(x) is np.ndarray and x.flags.writeable and x.dtype.kind == "f":
            return np.maximum(x, 0.0, out=x)
        return self.relu(x)

    def relu_backward_inplace(self, g, y):
        itype = _SAME_WIDTH_INT.get(getattr(g, "dtype", None))
        if type(g) is np.ndarray and g.flags.writeable and itype is not None:
            bits = g.view(itype)
            np.bitwise_and(bits, np.negative(y > 0, dtype=itype), out=bits)
            return g
        return self.relu_backward(g, y)

    # np.sum is np.add.reduce behind two Python wrappers (~2 µs a call, a tenth of a tiny step)
    def bias_grad(self, g):
        return np.add.reduce(g, axis=0)

    # Writing into the previous step's gradient buffer saves an allocation (and, for arrays
    # above malloc's mmap threshold, the page faults of fresh memory) per gradient per step.
    def matmul_into(self, a, b, out):
        if (type(out) is np.ndarray and out.shape == (a.shape[0], b.shape[1])
                and out.dtype == a.dtype == b.dtype and out.flags.writeable):
            return np.matmul(a, b, out=out)
        return np.matmul(a, b)

    def sum_rows_into(self, g, out):
        if (type(out) is np.ndarray and out.shape == g.shape[1:] and out.dtype == g.dtype
                and out.flags.writeable):
            return np.add.reduce(g, axis=0, out=out)
        return self.bias_grad(g)

    def sum_of_squares(self, d):
        return np.add.reduce(np.multiply(d, d), axis=None)

    def softmax_cross_entropy(self, z, labels, scale):
        # Picks z[i, t_i] by index instead of building a one-hot matrix, works in one buffer,
        # and keeps the probabilities so that backward is one multiply and a scatter.
        e = z - np.maximum.reduce(z, axis=1, keepdims=True)
        rows = np.arange(z.shape[0])
        picked = e[rows, labels]
        np.exp(e, out=e)
        s = np.add.reduce(e, axis=1, keepdims=True)
        value = (np.add.reduce(np.log(s), axis=None) - np.add.reduce(picked)) * scale
        e /= s
        return value, (e, rows, labels, scale)

    def softmax_cross_entropy_backward(self, state):
        p, rows, labels, scale = state
        g = p * scale
        g[rows, labels] -= scale
        return g

    def adam_update(self, value, g, m, v, *, lr, beta1, beta2, eps, t):
        if not (value.flags.writeable and m.flags.writeable and v.flags.writeable):
            return super().adam_update(value, g, m, v, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                                       t=t)
        # Thirteen in-place passes and one temporary instead of thirteen passes and eight
        # temporaries, each pass the generic code's own operation in its order (the products with
        # the same Python floats), so the results are bit for bit the generic ones, infinities
        # and NaNs included. (Folding the bias corrections into fewer scalars, or writing
        # β m + (1 − β) g as (m − g) β + g, saves a pass but turns an overflowing g² into NaN:
        # (v − inf) β + inf, where the generic code gives inf.)
        tmp = np.multiply(g, 1.0 - beta1)
        m *= beta1
        m += tmp
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - beta2
        v *= beta2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp *= 1.0 / math.sqrt(1.0 - beta2**t)
        tmp += eps
        np.divide(m, tmp, out=tmp)
        tmp *= lr / (1.0 - beta1**t)
        value -= tmp
        return value, m, v


class NumpyBackend(Backend):
    name = "numpy"

    def __init__(self):
        super().__init__(xp_numpy, "cpu", "cpu")

    def owns(self, x):
        return isinstance(x, np.ndarray)

    def _from_host(self, arr, dtype):
        return np.asarray(arr, dtype=dtype)

    def to_numpy(self, x):
        return np.asarray(x)

    def rng(self, seed=None):
        return NumpyRNG(self, seed)
