"""NumPy on the CPU: the reference backend."""

from __future__ import annotations

import array_api_compat.numpy as xp_numpy
import numpy as np

from .base import Backend, DeviceRNG


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


class NumpyBackend(Backend):
    name = "numpy"

    def __init__(self):
        super().__init__(xp_numpy, "cpu", "cpu")

    def owns(self, x):
        return isinstance(x, np.ndarray)

    def _from_host(self, arr, dtype):
        return np.asarray(arr, dtype=dtype)

    def rng(self, seed=None):
        return NumpyRNG(self, seed)
