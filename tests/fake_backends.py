"""Registered backends for tests: a library NumPy cannot read, and a device that must be entered.

``install_boxed_backend(monkeypatch)`` registers ``"boxed"`` (``"boxed:0"``, ``"boxed:1"``): its
arrays are `Boxed` objects that ``np.asarray`` turns into useless object arrays, so only the
backend's own ``to_numpy`` converts them, as with ndonnx.

``install_context_checked_backend(monkeypatch)`` puts a `ContextCheckedBackend` in the place of
``"array_api_strict:device1"``: every array created on device1 outside its ``device_context()``
(through its namespace, or through ``array_api_strict`` itself, which is what
``array_namespace(x)`` gives for its arrays) raises ``AssertionError`` and is recorded in
``backend.violations``. A model run on that device shows whether all its work happens in the
device's context, as a model on ``cuda:1`` needs with CuPy:

    backend = install_context_checked_backend(monkeypatch)
    model = pnn.Sequential(..., device="array_api_strict:device1")
    model.fit(...)
    assert backend.violations == []

Both are undone with the ``monkeypatch`` fixture that installed them.
"""

from __future__ import annotations

import contextlib
import traceback
import types

import array_api_strict as strict
import numpy as np

from portable_nn import backends
from portable_nn.backends import Backend, register_backend
from portable_nn.backends.strict_backend import StrictBackend

# -- a library whose arrays NumPy cannot read --------------------------------------------------


class Boxed:
    """An array of the toy library: a NumPy array in a box, on a numbered device. It has no
    ``__array__`` and no ``__dlpack__``: ``np.asarray(Boxed(...))`` is a 0-d object array."""

    def __init__(self, data, device):
        self._data = data
        self.device = device
        self.shape = data.shape
        self.dtype = data.dtype

    def __repr__(self):
        return f"Boxed({self._data!r}, device={self.device})"


class BoxedBackend(Backend):
    """The toy library on one of its two devices; knows the arrays of the other one too."""

    name = "boxed"

    def __init__(self, index):
        xp = types.SimpleNamespace(float32=np.dtype("float32"), float64=np.dtype("float64"))
        super().__init__(xp, index, f"boxed:{index}")

    def owns(self, x):
        return isinstance(x, Boxed) and x.device == self.device

    def owner_of(self, x):
        if isinstance(x, Boxed):
            return backends.get_backend(f"boxed:{x.device}")
        return None

    def _from_host(self, arr, dtype):
        return Boxed(np.array(arr, dtype=dtype), self.device)

    def to_numpy(self, x):
        return x._data.copy()


def _boxed_factory(suffix):
    index = int(suffix or 0)
    if index not in (0, 1):
        raise ValueError(f"device 'boxed:{suffix}' is not valid: the toy library has boxed:0 and "
                         "boxed:1")
    return BoxedBackend(index)


def _fresh_registry(monkeypatch):
    monkeypatch.setattr(backends, "_FACTORIES", dict(backends._FACTORIES))
    monkeypatch.setattr(backends, "_CACHE", {})


def install_boxed_backend(monkeypatch):
    """Register the toy library as ``"boxed"`` (until the test ends); returns ``"boxed:0"``."""
    _fresh_registry(monkeypatch)
    register_backend("boxed", _boxed_factory)
    return backends.get_backend("boxed")


# -- a device whose work must run inside its context -------------------------------------------

CREATION_FUNCTIONS = ("asarray", "zeros", "ones", "empty", "full", "arange", "eye", "linspace",
                      "zeros_like", "ones_like", "empty_like", "full_like")
DEVICE1 = strict.Device("device1")


class ContextCheckedBackend(StrictBackend):
    """array-api-strict's ``device1`` with a device context, like a GPU that is not the current
    one: creating an array there outside ``device_context()`` is a violation (``AssertionError``,
    recorded in ``violations`` with where it happened)."""

    def __init__(self, raise_on_violation=True):
        self.depth = [0]  # how many device_context()s are entered now
        self.violations = []
        self.raise_on_violation = raise_on_violation
        namespace = types.ModuleType("context_checked_array_api_strict")
        namespace.__dict__["__getattr__"] = lambda name: getattr(strict, name)
        for name in CREATION_FUNCTIONS:
            setattr(namespace, name, self.checked(getattr(strict, name), name, always=True))
        Backend.__init__(self, namespace, DEVICE1, "array_api_strict:device1")

    @contextlib.contextmanager
    def _entered(self):
        self.depth[0] += 1
        try:
            yield
        finally:
            self.depth[0] -= 1

    def device_context(self):
        return self._entered()

    def checked(self, fn, name, always=False):
        """``fn`` (a creation function) that records a violation when it runs outside the
        context: every call when ``always`` (this backend's namespace), else the calls whose
        result lands on device1 (``array_api_strict`` itself, shared with other backends)."""

        def creation(*args, **kwargs):
            out = fn(*args, **kwargs)
            if self.depth[0] == 0 and (always or out.device == DEVICE1):
                where = "".join(traceback.format_stack(limit=6)[:-1])
                self.violations.append(f"{name}:\n{where}")
                if self.raise_on_violation:
                    raise AssertionError(f"{name} created an array on device1 outside the "
                                         f"backend's device_context():\n{where}")
            return out

        creation.__name__ = name
        return creation


def install_context_checked_backend(monkeypatch, raise_on_violation=True):
    """Make ``"array_api_strict:device1"`` a `ContextCheckedBackend` until the test ends, and
    check ``array_api_strict``'s own creation functions for arrays they put on device1."""
    _fresh_registry(monkeypatch)
    fake = ContextCheckedBackend(raise_on_violation)
    real_factory = backends._FACTORIES["array_api_strict"]

    def factory(suffix):
        return fake if suffix == "device1" else real_factory(suffix)

    register_backend("array_api_strict", factory)
    for name in CREATION_FUNCTIONS:
        monkeypatch.setattr(strict, name, fake.checked(getattr(strict, name), name))
    return fake
