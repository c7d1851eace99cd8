"""The backend registry: device strings -> `Backend` objects.

This package is the only place that imports a concrete array library. Device strings:

=============================  ==========================================================
``"cpu"``, ``"numpy"``         NumPy on the CPU
``"cuda"``, ``"cuda:N"``       CuPy on GPU 0 / GPU N (``"cupy"``, ``"cupy:N"`` are aliases)
``"auto"``                     ``"cuda"`` when CuPy and a GPU are usable, else ``"cpu"``
``"array_api_strict"``         array-api-strict's CPU device; ``"array_api_strict:device1"``
                               and ``":device2"`` are its fake second and third devices
``"torch:cpu"``, ``"torch:cuda"``, ``"torch:cuda:N"``   PyTorch tensors (``"torch"`` = torch:cpu)
``"jax:cpu"``, ``"jax:cuda"``, ``"jax:cuda:N"``         JAX arrays (``"jax"`` = jax:cpu)
``"dask"``                     dask arrays (lazy NumPy chunks), evaluated after each step
=============================  ==========================================================

``register_backend(name, factory)`` adds a library: ``factory(suffix)`` gets what follows
``"name:"`` in the device string (or ``None``) and returns a `Backend`. A registered library is
then a backend like the built-in ones: ``backend_of`` and ``host_array`` find its arrays (its
default backend ``get_backend(name)`` is asked ``owner_of(x)``), ``available_devices()`` and
``python -m portable_nn`` list it. A factory registered under a built-in library's name
(``"array_api_strict"``, say) replaces that library's factory.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np

from .base import NO_CONTEXT, Backend, DeviceRNG, host_array, host_rng, plain_host_array

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "DeviceRNG",
    "available_devices",
    "backend_of",
    "check_array",
    "device_context_of",
    "device_report",
    "get_backend",
    "host_array",
    "host_rng",
    "plain_host_array",
    "register_backend",
]

CUDA_INSTALL_HINT = (
    'pip install "portable-nn[cuda12]" for CUDA 12 or "portable-nn[cuda13]" for CUDA 13'
)


class BackendUnavailableError(RuntimeError):
    """A valid device string whose library or hardware is missing on this machine."""


def _no_suffix(name, suffix):
    if suffix is not None:
        raise ValueError(
            f"device {name + ':' + suffix!r} is not valid: {name!r} takes no index; "
            f"valid devices are {_valid_list()}"
        )


def _numpy_factory(suffix):
    _no_suffix("cpu", suffix)
    from .numpy_backend import NumpyBackend

    return NumpyBackend()


def _import_cupy():
    try:
        return importlib.import_module("cupy")
    except ImportError as exc:
        raise BackendUnavailableError(
            f"device 'cuda' needs CuPy, which is not installed ({exc}). Install it with "
            f"{CUDA_INSTALL_HINT}, or use device='cpu'."
        ) from None


def _gpu_index(text, spelled):
    if text is None:
        return 0
    if not text.isdigit():
        raise ValueError(
            f"device {spelled!r} is not valid: the GPU index must be a non-negative integer "
            f"as in 'cuda:0'; valid devices are {_valid_list()}"
        )
    return int(text)


def _cupy_factory(suffix):
    index = _gpu_index(suffix, "cuda" if suffix is None else f"cuda:{suffix}")
    cupy = _import_cupy()
    if not cupy.cuda.is_available():
        raise BackendUnavailableError(
            f"CuPy {getattr(cupy, '__version__', '?')} is installed but no usable CUDA GPU is "
            "visible (cupy.cuda.is_available() is False): check the NVIDIA driver and "
            "CUDA_VISIBLE_DEVICES, or use device='cpu'."
        )
    count = cupy.cuda.runtime.getDeviceCount()
    if index >= count:
        raise BackendUnavailableError(
            f"device 'cuda:{index}' does not exist: this machine has {count} visible GPU(s), "
            f"cuda:0 to cuda:{count - 1}"
        )
    from .cupy_backend import CupyBackend

    return CupyBackend(index)


def _strict_factory(suffix):
    try:
        importlib.import_module("array_api_strict")
    except ImportError:
        raise BackendUnavailableError(
            "device 'array_api_strict' needs the array-api-strict package: "
            'pip install array-api-strict (or pip install "portable-nn[test]")'
        ) from None
    from .strict_backend import StrictBackend, strict_device_names

    name = suffix or "CPU_DEVICE"
    if name not in strict_device_names():
        raise ValueError(
            f"device 'array_api_strict:{suffix}' is not valid: array-api-strict has the devices "
            f"{', '.join(strict_device_names())}"
        )
    return StrictBackend(name)


def _torch_factory(suffix):
    spelled = "torch" if suffix is None else f"torch:{suffix}"
    target = suffix or "cpu"
    head, _, index = target.partition(":")
    if head not in ("cpu", "cuda") or (head == "cpu" and index) or (index and not index.isdigit()):
        raise ValueError(
            f"device {spelled!r} is not valid: use 'torch:cpu', 'torch:cuda' or 'torch:cuda:N'"
        )
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        raise BackendUnavailableError(
            f"device {spelled!r} needs PyTorch, which is not installed: pip install torch "
            "(the CPU build is enough for 'torch:cpu')"
        ) from None
    if head == "cuda":
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"device {spelled!r}: PyTorch {torch.__version__} is installed but "
                "torch.cuda.is_available() is False (a CPU-only build, or no visible GPU)"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise BackendUnavailableError(
                f"device {spelled!r} does not exist: PyTorch sees "
                f"{torch.cuda.device_count()} GPU(s)"
            )
    from .torch_backend import TorchBackend

    return TorchBackend(target)


def _jax_factory(suffix):
    spelled = "jax" if suffix is None else f"jax:{suffix}"
    target = suffix or "cpu"
    head, _, index = target.partition(":")
    if head not in ("cpu", "cuda") or (head == "cpu" and index) or (index and not index.isdigit()):
        raise ValueError(
            f"device {spelled!r} is not valid: use 'jax:cpu', 'jax:cuda' or 'jax:cuda:N'"
        )
    try:
        jax = importlib.import_module("jax")
    except ImportError:
        raise BackendUnavailableError(
            f"device {spelled!r} needs JAX, which is not installed: pip install jax "
            '(pip install "jax[cuda12]" for its GPU build)'
        ) from None
    if head == "cuda":
        try:
            gpus = jax.devices("gpu")
        except RuntimeError:
            gpus = []
        if not gpus:
            raise BackendUnavailableError(
                f"device {spelled!r}: JAX {jax.__version__} is installed but sees no GPU (a "
                'CPU-only jaxlib, or no visible GPU; pip install "jax[cuda12]")'
            )
        if index and int(index) >= len(gpus):
            raise BackendUnavailableError(
                f"device {spelled!r} does not exist: JAX sees {len(gpus)} GPU(s)"
            )
    from .jax_backend import JaxBackend

    return JaxBackend(target)


def _dask_factory(suffix):
    _no_suffix("dask", suffix)
    try:
        importlib.import_module("dask.array")
    except ImportError as exc:
        raise BackendUnavailableError(
            f"device 'dask' needs dask with its array extra, which is not installed ({exc}): "
            'pip install "dask[array]"'
        ) from None
    from .dask_backend import DaskBackend

    return DaskBackend()


_FACTORIES: dict[str, Callable[[str | None], Backend]] = {
    "numpy": _numpy_factory,
    "cupy": _cupy_factory,
    "array_api_strict": _strict_factory,
    "torch": _torch_factory,
    "jax": _jax_factory,
    "dask": _dask_factory,
}
_BUILT_IN = frozenset(_FACTORIES)
_ALIASES = {"cpu": "numpy", "cuda": "cupy"}
_CACHE: dict[str, Backend] = {}

# The strings the report checks and the error for an unknown device lists.
KNOWN_DEVICES = (
    "cpu",
    "cuda",
    "cuda:N",
    "auto",
    "array_api_strict",
    "array_api_strict:device1",
    "torch:cpu",
    "torch:cuda",
    "jax:cpu",
    "jax:cuda",
    "dask",
)
# The devices that available_devices() and the report probe (besides cuda:N and registered ones)
_PROBED = ("cpu", "cuda", "array_api_strict", "array_api_strict:device1", "torch:cpu",
           "torch:cuda", "jax:cpu", "jax:cuda", "dask")


def _registered():
    """Names registered with ``register_backend`` that are not built-in libraries."""
    return [name for name in _FACTORIES if name not in _BUILT_IN]


def _valid_list():
    extra = _registered()
    return ", ".join(repr(d) for d in (*KNOWN_DEVICES, "numpy", "cupy", *extra))


def register_backend(name: str, factory: Callable[[str | None], Backend]) -> None:
    """Make ``get_backend(name)`` / ``get_backend(name + ':suffix')`` call ``factory(suffix)``."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"backend name must be a non-empty string without ':', got {name!r}")
    if name in _ALIASES or name == "auto":
        raise ValueError(f"backend name {name!r} is reserved")
    if not callable(factory):
        raise TypeError(f"factory must be callable, got {type(factory).__name__}")
    _FACTORIES[name] = factory
    for key in [k for k in _CACHE if k.split(":", 1)[0] == name]:
        del _CACHE[key]


def get_backend(device: str | Backend = "cpu") -> Backend:
    """The backend for a device string (see the module docstring), or ``device`` itself."""
    if isinstance(device, Backend):
        return device
    if not isinstance(device, str):
        raise TypeError(
            f"device must be a device string such as 'cpu' or 'cuda', or a Backend, got "
            f"{type(device).__name__}"
        )
    head, sep, suffix = device.strip().partition(":")
    key = head.lower() + sep + suffix
    if key in _CACHE:
        return _CACHE[key]
    if key == "auto":
        try:
            backend = get_backend("cuda")
        except BackendUnavailableError:
            backend = get_backend("cpu")
        _CACHE[key] = backend
        return backend
    name = _ALIASES.get(head.lower(), head.lower())
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"unknown device {device!r}; valid devices are {_valid_list()}")
    backend = factory(suffix if sep else None)
    if not isinstance(backend, Backend):
        raise TypeError(f"the factory for {name!r} returned {type(backend).__name__}, not Backend")
    _CACHE[key] = backend
    return backend


def _probe(device):
    try:
        return get_backend(device), None
    except (BackendUnavailableError, ValueError, ImportError) as exc:
        return None, str(exc)


def _probe_registered(name):
    """``_probe`` for a user's factory, which may fail in any way: the failure is the answer."""
    backend, reason = None, None
    try:
        backend, reason = _probe(name)
    except Exception as exc:  # noqa: BLE001 - a broken factory must not break the listing
        reason = f"{type(exc).__name__}: {exc}"
    return backend, reason


def available_devices() -> list[str]:
    """Canonical device strings that can be used on this machine, CPU first, then the usable
    registered backends (each by ``get_backend(name)``)."""
    found = []
    for device in _PROBED:
        backend, _ = _probe(device)
        if backend is not None and backend.device_string not in found:
            found.append(backend.device_string)
    if "cuda:0" in found:
        at = found.index("cuda:0") + 1
        found[at:at] = _further_gpus()
    for name in _registered():
        backend, _ = _probe_registered(name)
        if backend is not None and backend.device_string not in found:
            found.append(backend.device_string)
    return found


def _further_gpus() -> list[str]:
    """``cuda:1`` ... for every GPU past the first (call only when ``cuda`` is usable)."""
    import cupy

    return [f"cuda:{i}" for i in range(1, cupy.cuda.runtime.getDeviceCount())]


def backend_of(x) -> Backend:
    """The backend whose arrays ``x`` is (library and device), e.g. to return results like it.

    The built-in libraries are recognised by type; then the backends already built and every
    registered library's default backend (``owner_of``) are asked. ``TypeError`` if none owns
    ``x``."""
    backend = _owner_of(x)
    if backend is None:
        raise TypeError(
            f"not an array of a known backend: {type(x).__module__}.{type(x).__qualname__} "
            "(a library of your own needs portable_nn.register_backend)"
        )
    return backend


def device_context_of(x):
    """The device context of the backend that owns ``x`` (`Backend.device_context`), for code that
    only sees arrays (the losses). NumPy arrays, the common case, skip the lookup: the CPU has no
    device to enter."""
    if type(x) is np.ndarray:
        return NO_CONTEXT
    return backend_of(x).device_context()


def _owner_of(x):
    """``backend_of(x)``, or ``None`` when no backend owns ``x``."""
    backend = _built_in_owner(x)
    if backend is not None:
        return backend
    for backend in list(_CACHE.values()):
        if backend.owns(x):
            return backend
    for name in _registered():
        try:
            default = get_backend(name)
        except Exception:  # noqa: BLE001, S112 - unusable here: it cannot own x either
            continue
        owner = default.owner_of(x)
        if owner is not None:
            return owner
    return None


def _built_in_owner(x):
    mod = type(x).__module__.split(".")[0]
    if mod == "numpy":
        return get_backend("cpu")
    if mod == "cupy":
        return get_backend(f"cuda:{x.device.id}")
    if mod == "torch":
        return get_backend(f"torch:{x.device}")
    if mod in ("jax", "jaxlib"):
        dev = x.device
        return get_backend("jax:cpu" if dev.platform == "cpu" else f"jax:cuda:{dev.id}")
    if mod == "array_api_strict":
        name = x.device._device if hasattr(x.device, "_device") else str(x.device)
        return get_backend("array_api_strict" + ("" if name == "CPU_DEVICE" else f":{name}"))
    if mod == "dask" and hasattr(x, "__dask_graph__"):
        return get_backend("dask")
    return None


def check_array(backend: Backend, x, argname: str = "x"):
    """Raise a clear error unless ``x`` is an array of ``backend`` (right library, right device);
    return it as the model may keep it (``backend.admit``: a torch tensor detached)."""
    if backend.owns(x):
        return backend.admit(x)
    try:
        other = backend_of(x) if hasattr(x, "shape") else None
    except TypeError:
        other = None
    if other is None or other == backend:  # a scalar, a list, a NumPy scalar: not an array at all
        kind = f"{type(x).__module__}.{type(x).__name__}"
        raise TypeError(
            f"{argname} must be an array of the model's backend {backend.device_string!r}, got "
            f"{kind}; convert host data with model.backend.asarray({argname})"
        )
    raise ValueError(
        f"{argname} is an array on {other.device_string!r}, but the model lives on "
        f"{backend.device_string!r}. Arrays of two devices cannot be mixed in one call: convert "
        f"with model.backend.asarray({argname}) or move the model with model.to(...)"
    )


def _versions():
    lines = []
    for mod in ("numpy", "array_api_compat", "array_api_strict", "cupy", "torch", "jax", "dask"):
        try:
            m = importlib.import_module(mod)
            lines.append(f"  {mod:<18} {getattr(m, '__version__', '?')}")
        except ImportError:
            lines.append(f"  {mod:<18} not installed")
    return lines


def device_report() -> str:
    """Library versions and, for each device string, whether it is usable here and why not."""
    import platform

    lines = [f"portable_nn device report (Python {platform.python_version()})", "libraries:"]
    lines += _versions()
    lines.append("devices (aliases: numpy = cpu, cupy = cuda, cupy:N = cuda:N):")
    gpus = _further_gpus() if _probe("cuda")[0] is not None else []  # each past the first
    for device in ("cpu", "cuda", *gpus, "auto", *_PROBED[2:]):
        lines.append(_report_line(device, *_probe(device)))
    names = _registered()
    lines.append("registered backends (register_backend):" if names else
                 "registered backends: none (add one with portable_nn.register_backend)")
    for name in names:
        lines.append(_report_line(name, *_probe_registered(name)))
    return "\n".join(lines)


def _report_line(device, backend, reason):
    if backend is None:
        return f"  {device:<26} unusable: {reason}"
    try:
        described = backend.describe()
    except Exception as exc:  # noqa: BLE001 - a registered backend's describe may be broken
        described = f"{backend.device_string} (describe() raised {type(exc).__name__}: {exc})"
    return f"  {device:<26} usable -> {described}"
