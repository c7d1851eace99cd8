"""The backend matrix: every test that takes ``backend`` runs once per backend usable here.

numpy and array_api_strict always; torch (CPU) when installed; cupy when CuPy and a GPU are usable.
A missing backend is skipped with its reason (``pytest -rs`` shows it). With
``PORTABLE_NN_REQUIRE_GPU=1`` (the GPU lane) a missing GPU is a failure instead.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from portable_nn.backends import BackendUnavailableError, get_backend

MATRIX = ["cpu", "array_api_strict", "torch:cpu", "cuda"]
REQUIRE_GPU = os.environ.get("PORTABLE_NN_REQUIRE_GPU") == "1"


def _make(device):
    try:
        return get_backend(device)
    except BackendUnavailableError as exc:
        if device == "cuda" and REQUIRE_GPU:
            pytest.fail(f"PORTABLE_NN_REQUIRE_GPU=1 but the GPU backend is unusable: {exc}")
        pytest.skip(f"backend {device!r} unavailable: {exc}")


@pytest.fixture(params=MATRIX)
def backend(request):
    """A `Backend` of the matrix (skipped where this machine cannot build it)."""
    return _make(request.param)


@pytest.fixture(params=MATRIX)
def device(request):
    """The device string of a usable backend (for APIs that take ``device=``)."""
    _make(request.param)
    return request.param


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """torch's intra-op threads fight over the CI machine's two busy cores; one thread is several
    times faster for the small arrays of the tests."""
    try:
        import torch
    except ImportError:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def to_np(x):
    """Any backend's array -> NumPy (for assertions)."""
    from portable_nn.backends import host_array

    return host_array(x)
