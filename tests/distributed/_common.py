"""Shared by the scripts that tests/test_distributed.py starts with ``mpiexec -n 2``."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # a source checkout that is not installed
    sys.path.insert(0, str(ROOT))

import numpy as np

import portable_nn as pnn
from portable_nn import distributed
from portable_nn.backends import host_array

__all__ = ["CountingMPI", "digest", "distributed", "np", "pnn", "same_everywhere", "world"]


def world(size=2):
    """The MPI communicator, checked to be a job of ``size`` ranks."""
    comm = distributed.init("mpi")
    if comm.size != size:
        sys.exit(f"expected {size} ranks, got {comm.size}: is mpiexec from the same MPI as mpi4py?")
    return comm


class CountingMPI:
    """Wraps an mpi4py communicator and counts its calls by name (``calls["Allreduce"]``)."""

    def __init__(self, inner):
        self._inner, self.calls = inner, {}

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            return attr(*args, **kwargs)

        return counted


def digest(arrays):
    """A hash of the exact bytes of ``arrays`` (any backend)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(host_array(a))
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def same_everywhere(comm, arrays, what):
    """Fail unless ``arrays`` are bit-identical on every rank."""
    digests = comm.mpi_comm.allgather(digest(arrays))
    if len(set(digests)) != 1:
        raise AssertionError(f"{what}: the ranks differ ({digests})")
