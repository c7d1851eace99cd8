"""`MPICommunicator`: collectives over MPI (mpi4py), with the arrays staged through the host.

Started as ``mpiexec -n N python train.py``. Each packed buffer goes to the host through its
backend's ``to_numpy``, is summed or broadcast by one MPI call, and comes back through
``backend.asarray``: any backend works, GPU arrays included (one device-to-host and one
host-to-device copy per buffer; `NcclCommunicator` keeps CuPy arrays on the GPU instead).
"""

from __future__ import annotations

import importlib
import sys

from array_api_compat import is_writeable_array

from ..backends import get_backend
from .base import Communicator

__all__ = ["MPI_INSTALL_HINT", "MPICommunicator", "import_mpi"]

MPI_INSTALL_HINT = (
    'pip install "portable-nn[mpi]" (mpi4py and the MPICH library), or mpi4py built against '
    "your cluster's MPI"
)


def import_mpi(required=True):
    """``mpi4py.MPI``; ``None`` when it is missing and not ``required``."""
    try:
        return importlib.import_module("mpi4py.MPI")
    except ImportError as exc:
        if not required:
            return None
        raise RuntimeError(
            f"distributed training over MPI needs mpi4py, which could not be imported ({exc}): "
            f"{MPI_INSTALL_HINT}. Then start the script with mpiexec -n N python script.py"
        ) from None


class MPICommunicator(Communicator):
    """Ranks of ``mpi_comm`` (default ``MPI.COMM_WORLD``), collectives through the host.

    ``mpi_comm`` is the mpi4py communicator, for users who need more than these collectives;
    ``node_comm`` holds the ranks of this node (``Split_type(COMM_TYPE_SHARED)``), which gives
    ``local_rank``."""

    kind = "mpi"

    def __init__(self, mpi_comm=None):
        MPI = import_mpi()
        self._MPI = MPI
        self.mpi_comm = MPI.COMM_WORLD if mpi_comm is None else mpi_comm
        self.node_comm = self.mpi_comm.Split_type(MPI.COMM_TYPE_SHARED)
        super().__init__(rank=self.mpi_comm.Get_rank(), size=self.mpi_comm.Get_size(),
                         local_rank=self.node_comm.Get_rank(),
                         local_size=self.node_comm.Get_size())
        self._host = get_backend("cpu")

    def _to_host(self, backend, flat):
        return self._host.xp.asarray(backend.to_numpy(flat))

    def _allreduce_sum(self, backend, flat):
        send = self._to_host(backend, flat)
        # a separate receive buffer: the send buffer may be read-only (JAX) or shared with the
        # device array it came from (torch on the CPU)
        recv = self._host.xp.empty_like(send)
        self.mpi_comm.Allreduce(send, recv, op=self._MPI.SUM)
        return backend.asarray(recv)

    def _broadcast_flat(self, backend, flat, root):
        if self.rank == root:
            buf = self._to_host(backend, flat)
            if not is_writeable_array(buf):  # mpi4py asks a writeable buffer of every rank
                buf = self._host.xp.asarray(buf, copy=True)
            self.mpi_comm.Bcast(buf, root=root)
            return flat
        xp = self._host.xp
        buf = xp.empty(flat.shape, dtype=getattr(xp, backend.dtype_name(flat.dtype)))
        self.mpi_comm.Bcast(buf, root=root)
        return backend.asarray(buf)

    def _allgather_objects(self, obj):
        return self.mpi_comm.allgather(obj)

    def _allreduce_host(self, values):
        xp = self._host.xp
        send = xp.asarray(values, dtype=xp.float64)
        recv = xp.empty_like(send)
        self.mpi_comm.Allreduce(send, recv, op=self._MPI.SUM)
        return [float(v) for v in recv]

    def barrier(self):
        self.mpi_comm.Barrier()

    def abort(self, message):
        """Print ``"rank R: message"`` to stderr, then ``MPI_Abort``: every rank of the job ends
        within seconds instead of waiting forever in its next collective."""
        print(f"rank {self.rank}: {message}", file=sys.stderr, flush=True)
        self.mpi_comm.Abort(1)
