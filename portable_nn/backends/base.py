"""The `Backend` object: one array library on one device.

A backend is small and immutable. Layers, losses and optimizers never import an array library; they
use ``backend.xp`` (an array-api-compat namespace) or the namespace of the arrays they receive.
Everything that needs to know a concrete library (moving data to and from the host, random numbers,
synchronisation) lives in a subclass here.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from .ops import ops_for

_DTYPES = ("float32", "float64")


def host_array(x):
    """Any array (NumPy, CuPy, torch, array-api-strict on any device) or nested list -> NumPy."""
    if isinstance(x, np.ndarray):
        return x
    mod = type(x).__module__
    if mod.startswith("cupy"):
        return x.get()
    if mod.startswith("torch"):
        return x.detach().cpu().numpy()
    if mod.startswith("array_api_strict"):
        import array_api_strict as strict

        return np.asarray(x.to_device(strict.Device("CPU_DEVICE")))
    return np.asarray(x)


def host_rng(seed):
    """The host generator that initial weights are drawn from (the same on every backend)."""
    return np.random.default_rng(seed)


class DeviceRNG:
    """Random numbers made on the backend's device: the base draws on the host and moves them."""

    def __init__(self, backend, seed=None):
        self.backend = backend
        self._gen = np.random.default_rng(seed)

    def uniform(self, shape, low=0.0, high=1.0, dtype="float32"):
        return self.backend.asarray(self._gen.uniform(low, high, size=shape), dtype=dtype)

    def normal(self, shape, mean=0.0, std=1.0, dtype="float32"):
        return self.backend.asarray(self._gen.normal(mean, std, size=shape), dtype=dtype)

    def bernoulli(self, shape, p, dtype="float32"):
        """1 with probability ``p``, else 0, as floats of ``dtype``."""
        return self.backend.asarray(self._gen.random(size=shape) < p, dtype=dtype)


class Backend:
    """An array library on one device.

    ``name`` is the library ("numpy", "cupy", "array_api_strict", "torch"), ``device`` the native
    device object, ``device_string`` the canonical string that ``get_backend`` accepts to build this
    same backend again. Two backends are equal when they are the same library on the same device.
    ``ops`` holds the hot-path operations that layers use (`backends.ops.Ops`, or the library's
    fast paths).
    """

    name = "base"

    def __init__(self, xp, device, device_string):
        self.xp = xp
        self.device = device
        self.device_string = device_string

    @cached_property
    def ops(self):
        """Hot-path operations for this backend's arrays (`backends.ops`), looked up once."""
        return ops_for(self.xp)

    # identity ---------------------------------------------------------------------------------
    def __eq__(self, other):
        return isinstance(other, Backend) and (self.name, self.device_string) == (
            other.name,
            other.device_string,
        )

    def __hash__(self):
        return hash((self.name, self.device_string))

    def __repr__(self):
        return f"Backend({self.device_string!r})"

    def __setattr__(self, key, value):
        if key in self.__dict__:
            raise AttributeError("Backend objects are immutable")
        object.__setattr__(self, key, value)

    # dtypes -----------------------------------------------------------------------------------
    def dtype(self, dtype):
        """'float32' / 'float64' (or a dtype of this namespace) -> this namespace's dtype."""
        if isinstance(dtype, str):
            if dtype not in _DTYPES:
                raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
            return getattr(self.xp, dtype)
        return dtype

    def dtype_name(self, dtype) -> str:
        for name in _DTYPES:
            if dtype == getattr(self.xp, name):
                return name
        return str(dtype).rsplit(".", 1)[-1]

    # data movement ----------------------------------------------------------------------------
    def owns(self, x) -> bool:
        """True when ``x`` is an array of this library on this backend's device."""
        raise NotImplementedError

    def asarray(self, x, dtype=None):
        """Host data, or an array of any backend, -> an array of this backend (copied if needed)."""
        dt = None if dtype is None else self.dtype(dtype)
        if self.owns(x):
            return x if dt is None or x.dtype == dt else self.xp.astype(x, dt)
        return self._from_host(host_array(x), dt)

    def _from_host(self, arr, dtype):
        raise NotImplementedError

    def to_numpy(self, x):
        return host_array(x)

    def rng(self, seed=None) -> DeviceRNG:
        return DeviceRNG(self, seed)

    def synchronize(self):
        """Wait for queued device work (a no-op on the CPU)."""

    def materialize(self, arrays):
        """``arrays`` (a list) computed now, as a list of arrays holding the same values.

        Eager libraries (NumPy, CuPy, torch, JAX) have nothing to do and return them as they are.
        A lazy library (dask) overrides this to evaluate its task graphs, so that the graph of a
        parameter does not grow with every training step; the optimizers call it on the
        parameters and their state after each step."""
        return list(arrays)

    def describe(self) -> str:
        return self.device_string
