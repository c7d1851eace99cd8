"""`NcclCommunicator`: NCCL through CuPy for CuPy arrays, which never leave the GPU.

One process per GPU, started by ``mpiexec`` like the MPI communicator: MPI still numbers the
ranks, carries NCCL's unique id from rank 0 to the others (``ncclGetUniqueId`` on rank 0, a
broadcast, ``ncclCommInitRank`` everywhere) and serves `agree`, `barrier`, `abort` and the host
sums. Packed CuPy buffers on this rank's GPU are reduced by ``ncclAllReduce`` / ``ncclBcast``
on CuPy's current stream, so they are ordered with the kernels around them without a host sync;
arrays of any other backend, or of a dtype NCCL lacks, take the MPI path through the host.

CuPy is imported through ``importlib`` here because it is an optional dependency of a module
that ``import portable_nn.distributed`` loads everywhere.
"""

from __future__ import annotations

import importlib

from ..backends import CUDA_INSTALL_HINT, BackendUnavailableError
from .mpi import MPICommunicator

__all__ = ["NcclCommunicator", "nccl_problem"]

NCCL_INSTALL_HINT = (
    "CuPy finds NCCL when it is installed: pip install nvidia-nccl-cu12 (CUDA 12) or "
    "nvidia-nccl-cu13 (CUDA 13), or conda install -c conda-forge nccl; see CuPy's installation "
    "guide (Additional CUDA Libraries)"
)


def _load():
    """``(cupy, cupy.cuda.nccl)``, or a ``BackendUnavailableError`` saying what is missing."""
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as exc:
        raise BackendUnavailableError(
            f"init('nccl') needs CuPy, which is not installed ({exc}): {CUDA_INSTALL_HINT}; "
            "or use init('mpi'), which works with every backend"
        ) from None
    if not cupy.cuda.is_available():
        raise BackendUnavailableError(
            f"init('nccl'): CuPy {getattr(cupy, '__version__', '?')} is installed but no usable "
            "CUDA GPU is visible (cupy.cuda.is_available() is False); use init('mpi')"
        )
    nccl = importlib.import_module("cupy.cuda.nccl")
    if not getattr(nccl, "available", False):
        raise BackendUnavailableError(
            f"init('nccl'): CuPy cannot load the NCCL library. {NCCL_INSTALL_HINT}. "
            "init('mpi') works meanwhile, through the host"
        )
    return cupy, nccl


def nccl_problem():
    """``None`` when NCCL through CuPy is usable on this process, else why not (a string)."""
    try:
        _load()
    except BackendUnavailableError as exc:
        return str(exc)
    return None


def _gpu_for(local_rank, local_size, count):
    """The GPU index for this rank: one GPU per rank of the node, or each rank's only visible
    GPU (a scheduler that sets ``CUDA_VISIBLE_DEVICES`` per rank)."""
    if count >= local_size:
        return local_rank
    if count == 1:
        return 0
    raise BackendUnavailableError(
        f"init('nccl') needs one GPU per rank, but {local_size} ranks share this node and it has "
        f"{count} visible GPUs: start at most {count} ranks per node"
    )


class NcclCommunicator(MPICommunicator):
    """Ranks of ``mpi_comm`` (default ``MPI.COMM_WORLD``), one GPU each (``device``,
    ``"cuda:{local_rank}"``), CuPy arrays reduced by NCCL on the device.

    Every rank checks CuPy, its GPU and NCCL, and the ranks `agree` before the NCCL
    communicator is made, so a rank without a GPU makes every rank raise, not wait."""

    kind = "nccl"

    def __init__(self, mpi_comm=None):
        super().__init__(mpi_comm)
        problem, cupy, nccl = None, None, None
        try:
            cupy, nccl = _load()
            index = _gpu_for(self.local_rank, self.local_size,
                             cupy.cuda.runtime.getDeviceCount())
        except BackendUnavailableError as exc:
            problem = exc
        self.agree(problem)
        self._cupy, self._nccl = cupy, nccl
        self.gpu = cupy.cuda.Device(index)
        self.gpu.use()  # this rank's kernels and allocations go to its own GPU
        self.device = f"cuda:{index}"
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = self.mpi_comm.bcast(uid, root=0)
        with self.gpu:
            self.nccl_comm = nccl.NcclCommunicator(self.size, uid, self.rank)
        n = nccl
        self._types = {"float16": n.NCCL_FLOAT16, "float32": n.NCCL_FLOAT32,
                       "float64": n.NCCL_FLOAT64, "int8": n.NCCL_INT8, "uint8": n.NCCL_UINT8,
                       "int32": n.NCCL_INT32, "uint32": n.NCCL_UINT32,
                       "int64": n.NCCL_INT64, "uint64": n.NCCL_UINT64}

    def _on_gpu(self, flat):
        """NCCL's datatype for ``flat``, or ``None`` when it must go through the host."""
        if not isinstance(flat, self._cupy.ndarray) or flat.device.id != self.gpu.id:
            return None
        return self._types.get(flat.dtype.name)

    def _allreduce_sum(self, backend, flat):
        dtype = self._on_gpu(flat)
        if dtype is None:
            return super()._allreduce_sum(backend, flat)
        with self.gpu:
            recv = self._cupy.empty_like(flat)
            stream = self._cupy.cuda.get_current_stream()
            self.nccl_comm.allReduce(flat.data.ptr, recv.data.ptr, flat.size, dtype,
                                     self._nccl.NCCL_SUM, stream.ptr)
        return recv

    def _broadcast_flat(self, backend, flat, root):
        dtype = self._on_gpu(flat)
        if dtype is None:
            return super()._broadcast_flat(backend, flat, root)
        with self.gpu:
            stream = self._cupy.cuda.get_current_stream()
            # in place: on root ``flat`` is the packed copy of its arrays, elsewhere the buffer
            # that receives them
            self.nccl_comm.bcast(flat.data.ptr, flat.size, dtype, root, stream.ptr)
        return flat
