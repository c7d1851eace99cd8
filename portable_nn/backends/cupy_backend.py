"""CuPy on an NVIDIA GPU."""

from __future__ import annotations

import array_api_compat.cupy as xp_cupy
import cupy

from .base import Backend, DeviceRNG


class CupyRNG(DeviceRNG):
    """Draws on the GPU with CuPy's own generator: no host round trip for dropout masks."""

    def __init__(self, backend, seed=None):
        self.backend = backend
        with backend.device_context():
            self._gen = cupy.random.default_rng(seed)

    def uniform(self, shape, low=0.0, high=1.0, dtype="float32"):
        with self.backend.device_context():
            u = self._gen.random(size=shape, dtype=dtype)
            return u if (low, high) == (0.0, 1.0) else u * (high - low) + low

    def normal(self, shape, mean=0.0, std=1.0, dtype="float32"):
        with self.backend.device_context():
            z = self._gen.standard_normal(size=shape, dtype=dtype)
            return z if (mean, std) == (0.0, 1.0) else z * std + mean

    def bernoulli(self, shape, p, dtype="float32"):
        with self.backend.device_context():
            return (self.uniform(shape, dtype=dtype) < p).astype(dtype)


class CupyBackend(Backend):
    name = "cupy"

    def __init__(self, index=0):
        super().__init__(xp_cupy, cupy.cuda.Device(index), f"cuda:{index}")

    def owns(self, x):
        return isinstance(x, cupy.ndarray) and x.device.id == self.device.id

    def device_context(self):
        # a new Device each time: its context stack is per object, and one shared object entered
        # from two threads would restore the wrong device
        return cupy.cuda.Device(self.device.id)

    def asarray(self, x, dtype=None):
        with self.device_context():
            if isinstance(x, cupy.ndarray) and x.device.id != self.device.id:
                x = cupy.asarray(x)  # a peer copy onto the current device
            return super().asarray(x, dtype)

    def _from_host(self, arr, dtype):
        return cupy.asarray(arr, dtype=dtype)  # base asarray runs it in device_context()

    def to_numpy(self, x):
        return x.get()

    def rng(self, seed=None):
        return CupyRNG(self, seed)

    def synchronize(self):
        self.device.synchronize()

    def describe(self):
        props = cupy.cuda.runtime.getDeviceProperties(self.device.id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        total = props["totalGlobalMem"] / 2**30
        return f"{self.device_string} ({name}, {total:.1f} GiB)"
