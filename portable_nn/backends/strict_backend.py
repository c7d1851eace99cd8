"""array-api-strict: the standard and nothing more. Catches NumPy-isms and device mixing in tests.

It has a real CPU device and fake ones ("device1", "device2") that behave like separate devices:
combining arrays across them raises, which is how the tests catch device mixing without a GPU.
"""

from __future__ import annotations

import array_api_strict as strict
import numpy as np
from array_api_strict._array_object import Array as StrictArray

from .base import Backend


class StrictBackend(Backend):
    name = "array_api_strict"

    def __init__(self, device_name="CPU_DEVICE"):
        dev = strict.Device(device_name)
        suffix = "" if device_name == "CPU_DEVICE" else f":{device_name}"
        super().__init__(strict, dev, f"array_api_strict{suffix}")

    def owns(self, x):
        return isinstance(x, StrictArray) and x.device == self.device

    def _from_host(self, arr, dtype):
        return strict.asarray(arr, dtype=dtype, device=self.device)

    def to_numpy(self, x):
        return np.asarray(x.to_device(strict.Device("CPU_DEVICE")))

    def asarray(self, x, dtype=None):
        if isinstance(x, StrictArray) and x.device != self.device:
            x = x.to_device(self.device)
        return super().asarray(x, dtype)


def strict_device_names():
    return ["CPU_DEVICE", "device1", "device2"]
