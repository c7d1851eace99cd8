"""The backend registry: device strings, errors, round trips, device mixing."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import backends
from portable_nn.backends import Backend, BackendUnavailableError, get_backend
from tests.conftest import to_np


@pytest.mark.parametrize("spelling", ["cpu", "numpy", "CPU", " cpu "])
def test_cpu_spellings_give_the_numpy_backend(spelling):
    b = get_backend(spelling)
    assert b.name == "numpy" and b.device_string == "cpu"
    assert b == get_backend("cpu")


def test_backend_objects_compare_equal_for_the_same_device():
    a = get_backend("array_api_strict")
    d1 = get_backend("array_api_strict:device1")
    assert a == get_backend("array_api_strict:CPU_DEVICE")
    assert a != d1 and a != get_backend("cpu")
    assert len({a, d1, get_backend("array_api_strict")}) == 2
    assert get_backend(a) is a


def test_backends_are_immutable():
    with pytest.raises(AttributeError):
        get_backend("cpu").xp = None


@pytest.mark.parametrize("bad", ["gpu", "cpu:3", "tpu", "", "cuda:x", "array_api_strict:device9"])
def test_invalid_device_strings_raise_valueerror_listing_valid_ones(bad):
    with pytest.raises(ValueError) as info:
        get_backend(bad)
    msg = str(info.value)
    assert repr(bad) in msg or bad in msg
    if bad in ("gpu", "tpu", ""):
        assert "'cpu'" in msg and "'cuda'" in msg and "'array_api_strict'" in msg


def test_non_string_device_is_a_typeerror():
    with pytest.raises(TypeError, match="device must be"):
        get_backend(3)


def _without_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    monkeypatch.setattr(backends, "_CACHE", {})


def test_cuda_without_cupy_names_the_extra(monkeypatch):
    _without_cupy(monkeypatch)
    for device in ("cuda", "cuda:1", "cupy"):
        with pytest.raises(BackendUnavailableError) as info:
            get_backend(device)
        assert "CuPy" in str(info.value) and "portable-nn[cuda12]" in str(info.value)
        assert isinstance(info.value, RuntimeError)


def test_cuda_with_cupy_but_no_gpu_says_so(monkeypatch):
    fake = types.ModuleType("cupy")
    fake.__version__ = "13.9.9"
    fake.cuda = types.SimpleNamespace(is_available=lambda: False)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(backends, "_CACHE", {})
    with pytest.raises(BackendUnavailableError, match=r"13\.9\.9 is installed but no usable CUDA GPU"):
        get_backend("cuda")


def test_auto_falls_back_to_cpu_without_a_gpu(monkeypatch):
    _without_cupy(monkeypatch)
    assert get_backend("auto") == get_backend("cpu")


def test_torch_without_torch_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setattr(backends, "_CACHE", {})
    with pytest.raises(BackendUnavailableError, match="needs PyTorch"):
        get_backend("torch:cpu")


def test_torch_device_strings():
    pytest.importorskip("torch")
    assert get_backend("torch").device_string == "torch:cpu"
    assert get_backend("torch:cpu") == get_backend("torch")
    with pytest.raises(ValueError, match="torch:cpu"):
        get_backend("torch:tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailableError, match="cuda.is_available"):
            get_backend("torch:cuda")


def test_register_backend_adds_a_device_string(monkeypatch):
    monkeypatch.setattr(backends, "_FACTORIES", dict(backends._FACTORIES))
    seen = []

    def factory(suffix):
        seen.append(suffix)
        from portable_nn.backends.numpy_backend import NumpyBackend

        return NumpyBackend()

    backends.register_backend("mylib", factory)
    assert get_backend("mylib:7").name == "numpy"
    assert seen == ["7"]
    with pytest.raises(ValueError, match="reserved"):
        backends.register_backend("cpu", factory)
    with pytest.raises(ValueError, match="without ':'"):
        backends.register_backend("a:b", factory)
    with pytest.raises(TypeError, match="callable"):
        backends.register_backend("other", 3)


def test_available_devices_lists_what_works_here():
    found = pnn.available_devices()
    assert found[0] == "cpu"
    assert "array_api_strict" in found and "array_api_strict:device1" in found
    for device in found:
        get_backend(device)  # every listed device can be built


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_asarray_to_numpy_round_trip(backend, dtype):
    host = np.arange(12, dtype=np.float64).reshape(3, 4) / 7.0
    x = backend.asarray(host, dtype=dtype)
    assert backend.owns(x)
    assert x.dtype == backend.dtype(dtype)
    back = backend.to_numpy(x)
    assert isinstance(back, np.ndarray) and back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, host.astype(dtype))


def test_asarray_from_lists_and_integers(backend):
    x = backend.asarray([[1, 2], [3, 4]])
    assert backend.xp.isdtype(x.dtype, "integral")
    np.testing.assert_array_equal(backend.to_numpy(x), [[1, 2], [3, 4]])


def test_asarray_from_another_backends_array(backend):
    other = get_backend("array_api_strict:device1")
    src = other.asarray(np.array([1.5, -2.0]), dtype="float64")
    x = backend.asarray(src)
    assert backend.owns(x)
    np.testing.assert_array_equal(to_np(x), [1.5, -2.0])
    assert other.owns(other.asarray(x))


def test_unknown_dtype_is_rejected(backend):
    with pytest.raises(ValueError, match="dtype must be one of"):
        backend.asarray([1.0], dtype="float16")


def test_rng_draws_on_the_device_with_the_right_statistics(backend):
    r = backend.rng(0)
    u = r.uniform((20000,), dtype="float32")
    z = r.normal((20000,), mean=1.0, std=2.0, dtype="float64")
    b = r.bernoulli((20000,), 0.3, dtype="float32")
    assert backend.owns(u) and backend.owns(z) and backend.owns(b)
    assert u.dtype == backend.dtype("float32") and z.dtype == backend.dtype("float64")
    u, z, b = to_np(u), to_np(z), to_np(b)
    assert 0.0 <= u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.02
    assert abs(z.mean() - 1.0) < 0.06 and abs(z.std() - 2.0) < 0.06
    assert set(np.unique(b)) <= {0.0, 1.0} and abs(b.mean() - 0.3) < 0.02
    again = to_np(backend.rng(0).uniform((5,), dtype="float32"))
    np.testing.assert_array_equal(again, u[:5])  # seeded: reproducible


def test_synchronize_runs(backend):
    backend.synchronize()


def test_backend_of_finds_the_owner(backend):
    x = backend.asarray([1.0, 2.0])
    assert backends.backend_of(x) == backend


def test_mixing_two_devices_is_detected_with_a_clear_error():
    cpu = get_backend("array_api_strict")
    dev1 = get_backend("array_api_strict:device1")
    model = pnn.Sequential(pnn.layers.Dense(3, 2), device="array_api_strict", seed=0)
    x1 = dev1.asarray(np.ones((4, 3)), dtype="float32")
    with pytest.raises(ValueError, match=r"device1.*array_api_strict.*cannot be\s+mixed"):
        model.forward(x1)
    with pytest.raises(ValueError, match="cannot be"):
        backends.check_array(cpu, x1, "x")
    # and a NumPy array handed to a strict model is refused too
    with pytest.raises(ValueError, match="array on 'cpu', but the model lives on 'array_api_strict'"):
        model.forward(np.ones((4, 3), dtype=np.float32))


def test_a_scalar_where_an_array_belongs_is_a_typeerror():
    model = pnn.Sequential(pnn.layers.Dense(3, 1), device="cpu", seed=0)
    model.forward(np.ones((2, 3), dtype=np.float32), training=True)
    for bad in (np.float64(1.0), 1.0, [[1.0], [1.0]]):
        with pytest.raises(TypeError, match=r"grad must be an array of the model's backend 'cpu'"):
            model.backward(bad)


def test_device_report_runs_as_a_module_and_marks_cuda():
    out = subprocess.run([sys.executable, "-m", "portable_nn"], capture_output=True, text=True,
                         check=True).stdout
    assert "numpy" in out and "array_api_compat" in out
    cpu_line = next(line for line in out.splitlines() if line.strip().startswith("cpu "))
    assert "usable" in cpu_line and "unusable" not in cpu_line
    cuda_line = next(line for line in out.splitlines() if line.strip().startswith("cuda "))
    try:
        get_backend("cuda")
    except BackendUnavailableError as exc:
        assert "unusable" in cuda_line and str(exc)[:40] in cuda_line
    else:
        assert "GiB" in cuda_line


def test_only_backends_import_array_libraries():
    """layers, losses, optimizers and friends get their namespace from arrays or the backend."""
    import pathlib
    import re

    root = pathlib.Path(pnn.__file__).parent
    pattern = re.compile(r"^\s*(import|from)\s+(numpy|cupy|torch|array_api_strict)\b", re.MULTILINE)
    host_side = {"checkpoint.py", "datasets.py", "data.py", "initializers.py",
                 "estimators.py", "__main__.py", "monitor.py", "perceptron.py"}
    offenders = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        # training/ and distributed/ handle host data (and host staging) like the modules above
        if rel.parts[0] in ("backends", "training", "distributed") or rel.name in host_side:
            continue
        if pattern.search(path.read_text()):
            offenders.append(str(rel))
    assert offenders == [], f"these modules import an array library directly: {offenders}"
    for must_be_clean in ("layers", "losses.py", "optimizers.py"):
        assert must_be_clean not in host_side
    assert isinstance(get_backend("cpu"), Backend)


def test_jax_float64_without_x64_is_a_clear_error_at_model_creation():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(ValueError, match="jax_enable_x64"):
            pnn.Sequential(pnn.layers.Dense(2, 1), device="jax", dtype="float64")
        model = pnn.Sequential(pnn.layers.Dense(2, 1), device="jax", dtype="float32")
        assert str(model.parameters()[0].value.dtype) == "float32"
    finally:
        jax.config.update("jax_enable_x64", True)


def test_jax_arrays_convert_to_writeable_host_arrays():
    pytest.importorskip("jax")
    b = get_backend("jax")
    host = b.to_numpy(b.asarray(np.arange(3.0), dtype="float32"))
    assert isinstance(host, np.ndarray) and host.flags.writeable


# -- host conversion through the owning backend (registered libraries too) ----------------------
def test_host_array_and_backend_of_use_a_registered_backends_own_conversion(monkeypatch):
    from tests.fake_backends import Boxed, install_boxed_backend

    boxed = install_boxed_backend(monkeypatch)
    x = Boxed(np.array([[1.5, -2.0], [0.25, 4.0]]), device=1)
    assert np.asarray(x).dtype == object  # NumPy alone cannot read it
    backends._CACHE.clear()  # found through the registered factory, not the cache of built ones
    owner = backends.backend_of(x)
    assert owner == get_backend("boxed:1") and owner != boxed
    host = backends.host_array(x)
    assert isinstance(host, np.ndarray) and host.dtype == np.float64
    np.testing.assert_array_equal(host, x._data)
    # Backend.asarray from it: to NumPy, to every built-in library, and back into the box
    for device in ("cpu", "array_api_strict:device1", "torch:cpu", "jax:cpu"):
        try:
            other = get_backend(device)
        except BackendUnavailableError:
            continue
        y = other.asarray(x, dtype="float64")
        assert other.owns(y)
        np.testing.assert_array_equal(other.to_numpy(y), x._data)
        back = boxed.asarray(y)
        assert isinstance(back, Boxed) and back.device == 0
        np.testing.assert_array_equal(back._data, x._data)
    assert boxed.asarray(x).device == 0  # from its other device, through the host


def test_host_array_keeps_host_data_and_refuses_what_is_not_numeric(monkeypatch):
    a = np.arange(3.0)
    assert backends.host_array(a) is a
    np.testing.assert_array_equal(backends.host_array([[1, 2], (3, 4)]), [[1, 2], [3, 4]])
    assert backends.host_array(2.5).shape == ()

    class Opaque:
        pass

    with pytest.raises(TypeError, match=r"cannot convert .*Opaque.*register_backend.*object"):
        backends.host_array(Opaque())
    with pytest.raises(TypeError, match="not an array of a known backend: .*Opaque"):
        backends.backend_of(Opaque())

    class ViaDLPack:  # an array of an unregistered library that speaks DLPack
        def __init__(self, data):
            self._data = data

        def __dlpack__(self, **kwargs):
            return self._data.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return self._data.__dlpack_device__()

    np.testing.assert_array_equal(backends.host_array(ViaDLPack(np.arange(4.0))), np.arange(4.0))


def test_gradcheck_and_model_moves_work_on_a_registered_library(monkeypatch):
    """The callers that convert through host_array (gradcheck, Layer.to, optimizer state) reach
    the host through the registered backend's own to_numpy."""
    from tests.fake_backends import Boxed, install_boxed_backend

    boxed = install_boxed_backend(monkeypatch)
    model = pnn.Sequential(pnn.layers.Dense(3, 2), device="cpu", dtype="float64", seed=0)
    state = model.state_dict()
    boxed_values = {k: boxed.asarray(v) for k, v in state.items()}
    assert all(isinstance(v, Boxed) for v in boxed_values.values())
    model.load_state_dict(boxed_values)  # boxed arrays -> the model's NumPy arrays
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, state[k])


# -- registered backends are visible ---------------------------------------------------------------
def test_available_devices_and_report_list_registered_backends(monkeypatch):
    from tests.fake_backends import install_boxed_backend

    install_boxed_backend(monkeypatch)

    def missing_driver(suffix):
        raise BackendUnavailableError("the gizmo library needs its driver: pip install gizmo")

    def broken(suffix):
        raise RuntimeError("factory bug")

    backends.register_backend("gizmo", missing_driver)
    backends.register_backend("broken", broken)
    found = pnn.available_devices()
    assert "boxed:0" in found and found[0] == "cpu"
    assert not any(d.startswith(("gizmo", "broken")) for d in found)
    report = backends.device_report()
    lines = {line.split()[0]: line for line in report.splitlines()[1:] if line.startswith("  ")}
    assert "usable -> boxed:0" in lines["boxed"]
    assert "unusable: the gizmo library needs its driver" in lines["gizmo"]
    assert "unusable: RuntimeError: factory bug" in lines["broken"]
    assert report.index("registered backends") < report.index("  boxed")


def test_report_says_when_nothing_is_registered():
    assert "registered backends: none" in backends.device_report()


# -- device contexts ----------------------------------------------------------------------------------
def test_device_context_is_a_cheap_reentrant_context_manager(backend):
    ctx = backend.device_context()
    with ctx, backend.device_context():
        x = backend.asarray(np.ones(3), dtype="float32")
    assert backend.owns(x)
    if backend.name in ("numpy", "array_api_strict", "dask") or backend.device_string == "torch:cpu":
        assert ctx is backends.base.NO_CONTEXT  # one shared object, nothing to allocate


def test_jax_device_context_makes_the_backends_device_the_default():
    jax = pytest.importorskip("jax")
    b = get_backend("jax:cpu")
    with b.device_context():
        assert jax.numpy.zeros(2).device == b.device


def test_context_checked_backend_catches_creation_outside_the_context(monkeypatch):
    import array_api_strict as strict

    from tests.fake_backends import CREATION_FUNCTIONS, install_context_checked_backend

    fake = install_context_checked_backend(monkeypatch)
    assert get_backend("array_api_strict:device1") is fake
    xp, dev = fake.xp, fake.device
    with fake.device_context():
        like = strict.ones(3, device=dev)
    calls = {
        "asarray": lambda m: m.asarray([1.0, 2.0], device=dev),
        "zeros": lambda m: m.zeros(3, device=dev), "ones": lambda m: m.ones(3, device=dev),
        "empty": lambda m: m.empty(3, device=dev), "full": lambda m: m.full(3, 2.0, device=dev),
        "arange": lambda m: m.arange(3, device=dev), "eye": lambda m: m.eye(2, device=dev),
        "linspace": lambda m: m.linspace(0.0, 1.0, 3, device=dev),
        "zeros_like": lambda m: m.zeros_like(like), "ones_like": lambda m: m.ones_like(like),
        "empty_like": lambda m: m.empty_like(like), "full_like": lambda m: m.full_like(like, 1.0),
    }
    assert set(calls) == set(CREATION_FUNCTIONS)
    fake.violations.clear()
    for name, make in calls.items():
        for namespace in (xp, strict):  # the backend's namespace, and array_namespace(x)'s
            with pytest.raises(AssertionError, match=f"{name} created an array on device1"):
                make(namespace)
            with fake.device_context(), fake.device_context():
                assert make(namespace).device == dev
    assert len(fake.violations) == 2 * len(calls)
    # other devices are not this backend's business; its own conversions enter the context
    fake.violations.clear()
    assert strict.zeros(3).device == strict.Device("CPU_DEVICE")
    x = fake.asarray(np.arange(3.0), dtype="float64")
    fake.rng(0).normal((2, 2), dtype="float64")
    assert fake.owns(x) and backends.backend_of(x) is fake and fake.violations == []


# -- torch: detached at the door ------------------------------------------------------------------
def test_torch_tensors_that_require_grad_are_detached_at_the_door():
    torch = pytest.importorskip("torch")
    b = get_backend("torch:cpu")
    t = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    for converted in (b.asarray(t), b.asarray(t, dtype="float32"), backends.check_array(b, t)):
        assert not converted.requires_grad and converted.grad_fn is None
    X = torch.randn(32, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randn(32, 2, dtype=torch.float64, requires_grad=True)
    model = pnn.Sequential(pnn.layers.Dense(4, 8), pnn.layers.ReLU(), pnn.layers.Dense(8, 2),
                           device="torch:cpu", dtype="float64", seed=0)
    model.fit(X, y, loss=pnn.losses.MSE(), optimizer=pnn.optimizers.Adam(0.01), epochs=2,
              batch_size=8, verbose=0)
    for p in model.parameters():
        assert not p.value.requires_grad and p.value.grad_fn is None
        assert p.grad.grad_fn is None
    out = model.predict(X)
    assert not out.requires_grad and out.grad_fn is None
