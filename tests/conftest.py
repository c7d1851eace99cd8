"""The backend matrix: every test that takes ``backend`` runs once per column of the matrix.

The CPU columns are numpy, array_api_strict, torch:cpu and jax:cpu; the GPU columns cuda (CuPy),
torch:cuda and jax:cuda join where this machine can build them. A column this machine cannot
build is left out (not hundreds of skips), and the header of the run says which columns run and
why the others do not. Two environment variables make a missing column a failure instead:
``PORTABLE_NN_REQUIRE_GPU=1`` (the GPU lane: cuda must run) and
``PORTABLE_NN_REQUIRE_COLUMNS=cpu,jax:cpu,...`` (CI: every CPU column must run).

JAX computes float64 only in its 64-bit mode, which must be on before any JAX array exists: it
is switched on here, for the whole run, when JAX is installed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

try:
    import jax
except ImportError:
    jax = None
else:
    jax.config.update("jax_enable_x64", True)

from portable_nn.backends import BackendUnavailableError, get_backend

CPU_COLUMNS = ["cpu", "array_api_strict", "torch:cpu", "jax:cpu"]
GPU_COLUMNS = ["cuda", "torch:cuda", "jax:cuda"]
REQUIRE_GPU = os.environ.get("PORTABLE_NN_REQUIRE_GPU") == "1"
REQUIRED = {c.strip() for c in os.environ.get("PORTABLE_NN_REQUIRE_COLUMNS", "").split(",")
            if c.strip()} | ({"cuda"} if REQUIRE_GPU else set())


def _columns():
    """(columns that run, {column: why not} for the others)."""
    run, missing = [], {}
    for device in CPU_COLUMNS + GPU_COLUMNS:
        try:
            get_backend(device)
        except (BackendUnavailableError, ValueError, ImportError) as exc:
            missing[device] = str(exc)
        else:
            run.append(device)
    return run, missing


MATRIX, MISSING = _columns()


def pytest_report_header(config):
    lines = [f"portable_nn backend matrix: {', '.join(MATRIX)}"]
    lines += [f"  not run: {d}: {why.splitlines()[0]}" for d, why in MISSING.items()]
    return lines


def pytest_terminal_summary(terminalreporter):
    # the header is hidden by -q; the summary line is not
    terminalreporter.write_line(pytest_report_header(None)[0]
                                + (f" (not run: {', '.join(MISSING)})" if MISSING else ""))


def pytest_configure(config):
    absent = sorted(REQUIRED & set(MISSING))
    if absent:
        reasons = "; ".join(f"{d}: {MISSING[d]}" for d in absent)
        raise pytest.UsageError(f"required backend columns cannot run here: {reasons}")


@pytest.fixture(params=MATRIX)
def backend(request):
    """A `Backend` of the matrix."""
    return get_backend(request.param)


@pytest.fixture(params=MATRIX)
def device(request):
    """The device string of a column of the matrix (for APIs that take ``device=``)."""
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
    from portable_nn.backends import backend_of

    return backend_of(x).to_numpy(x)
