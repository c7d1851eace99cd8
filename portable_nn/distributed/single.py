"""`SingleCommunicator`: one process alone, so that a distributed script also runs by itself."""

from __future__ import annotations

import sys

from .base import Communicator, check_arrays, copy_of, host_numbers

__all__ = ["SingleCommunicator"]


class SingleCommunicator(Communicator):
    """The communicator of a job of one rank (a script started without ``mpiexec``, or without
    mpi4py): rank 0 of 1. Its collectives return what a one-rank job would, as new arrays where
    the arguments could be written (so writing into a result never changes an argument) and the
    arrays themselves where they cannot (JAX); nothing is packed and nothing is sent."""

    kind = "single"

    def __init__(self):
        super().__init__(rank=0, size=1, local_rank=0, local_size=1)

    def allreduce_mean(self, arrays):
        check_arrays(arrays, "arrays", floating=True)
        return [copy_of(a) for a in arrays]

    def broadcast(self, arrays, root=0):
        check_arrays(arrays, "arrays")
        self._check_root(root)
        return [copy_of(a) for a in arrays]

    def allreduce_sum_host(self, values):
        return host_numbers(values, "values")

    def _allreduce_sum(self, backend, flat):
        return flat

    def _broadcast_flat(self, backend, flat, root):
        return flat

    def _allgather_objects(self, obj):
        return [obj]

    def _allreduce_host(self, values):
        return list(values)

    def barrier(self):
        """Nothing to wait for."""

    def abort(self, message):
        """Print ``"rank 0: message"`` to stderr and exit with status 1 (``SystemExit``: with no
        other rank to stop, the process ends the ordinary way, closing its files)."""
        print(f"rank 0: {message}", file=sys.stderr, flush=True)
        raise SystemExit(1)

