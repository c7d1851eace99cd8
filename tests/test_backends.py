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
    host_side = {"checkpoint.py", "datasets.py", "data.py", "initializers.py", "training.py",
                 "estimators.py", "__main__.py", "monitor.py", "perceptron.py"}
    offenders = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if rel.parts[0] == "backends" or rel.name in host_side:
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
