"""The `Backend` object: one array library on one device.

A backend is small and immutable. Layers, losses and optimizers never import an array library; they
use ``backend.xp`` (an array-api-compat namespace) or the namespace of the arrays they receive.
Everything that needs to know a concrete library (moving data to and from the host, random numbers,
synchronisation) lives in a subclass here.
"""

from __future__ import annotations

import contextlib
from functools import cached_property

import numpy as np

from .ops import ops_for

_DTYPES = ("float32", "float64")

# What device_context() returns where there is no current device to set: one shared object, as
# entering a nullcontext costs next to nothing and it may be entered by many threads at once.
NO_CONTEXT = contextlib.nullcontext()


def host_array(x):
    """Any array -> NumPy, through the backend that owns it; host data stays host data.

    NumPy arrays come back as they are, lists, tuples and scalars through ``np.asarray``. An
    array of a backend, built in or registered (``register_backend``), goes through that
    backend's ``to_numpy`` (found with ``backend_of``), so a library whose arrays NumPy cannot
    read by itself still converts. Anything else is accepted only if ``np.asarray`` (or DLPack)
    gives a numeric array, else a ``TypeError`` names its type."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple, int, float, complex, np.generic)):
        return np.asarray(x)
    from . import _owner_of  # the registry imports this module: look it up at call time

    owner = _owner_of(x)
    if owner is not None:
        return owner.to_numpy(x)
    return plain_host_array(x)


def plain_host_array(x):
    """``x`` -> NumPy without a backend: ``np.asarray``, or DLPack for an array that has no
    ``__array__``; a ``TypeError`` unless the result is numeric (an object array is never data)."""
    kind = f"{type(x).__module__}.{type(x).__qualname__}"
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError, RuntimeError) as exc:
        arr, why = None, f"np.asarray raised {type(exc).__name__}: {exc}"
    if (arr is None or arr.dtype.kind not in "biufc") and hasattr(x, "__dlpack__"):
        try:
            arr = np.from_dlpack(x)
        except (TypeError, ValueError, RuntimeError, BufferError):
            pass
    if arr is None or arr.dtype.kind not in "biufc":
        if arr is not None:
            why = f"np.asarray gives dtype {arr.dtype}"
        raise TypeError(
            f"cannot convert {kind} to a NumPy array: it is not an array of a known backend "
            f"(a library of your own needs portable_nn.register_backend) and {why}"
        )
    return arr


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

    ``name`` is the library ("numpy", "cupy", "array_api_strict", "torch", "jax", "dask", or a
    registered one), ``device`` the native device object, ``device_string`` the canonical string
    that ``get_backend`` accepts to build this same backend again. Two backends are equal when
    they are the same library on the same device. ``ops`` holds the hot-path operations that
    layers use (`backends.ops.Ops`, or the library's fast paths)."""

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

    def __reduce__(self):
        # a backend holds a namespace module, which does not pickle: it travels as its device
        # string and is looked up again (``copy.deepcopy`` and ``pickle`` of a model need this)
        from . import get_backend

        return get_backend, (self.device_string,)

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

    def admit(self, x):
        """An array this backend owns, as a model may keep it (``check_array`` returns this):
        ``x`` itself, or for torch ``x.detach()`` when it requires grad."""
        return x

    def owner_of(self, x):
        """The backend of this library that owns ``x`` (this one, or the one of ``x``'s device),
        or ``None`` when ``x`` is not an array of this library. ``backend_of`` asks every
        registered library's default backend (``get_backend(name)``) this; a library with
        several devices overrides it to answer for arrays of the others."""
        return self if self.owns(x) else None

    def asarray(self, x, dtype=None):
        """Host data, or an array of any backend, -> an array of this backend (copied if needed).

        An array of another backend reaches the host through that backend's ``to_numpy``
        (`host_array`); the new array is made inside ``device_context()``."""
        dt = None if dtype is None else self.dtype(dtype)
        if self.owns(x):
            return x if dt is None or x.dtype == dt else self.xp.astype(x, dt)
        host = host_array(x)
        with self.device_context():
            return self._from_host(host, dt)

    def _from_host(self, arr, dtype):
        raise NotImplementedError

    def to_numpy(self, x):
        """An array of this backend -> a NumPy array (a registered library overrides this)."""
        return plain_host_array(x)

    def device_context(self):
        """A context manager that makes this backend's device the current one.

        Every public entry point of a model (``Sequential.forward/backward``, ``fit``,
        ``evaluate``, ``predict``, an optimizer's ``step``, a loss's ``forward/backward``) runs
        its work inside it: libraries that place new arrays on a *current* device (CuPy, whose
        creation functions ignore ``device=`` through array-api-compat; torch's and JAX's
        defaults) then allocate on the model's device, not on GPU 0. CuPy answers with
        ``cupy.cuda.Device(i)``, torch on CUDA with ``torch.cuda.device(i)``, JAX with
        ``jax.default_device(dev)``; libraries without a current device with one shared
        ``contextlib.nullcontext()``. The contexts nest, and entering one is cheap."""
        return NO_CONTEXT

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
