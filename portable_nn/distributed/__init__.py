"""Data-parallel training over several processes: MPI (mpi4py) everywhere, NCCL (CuPy) on GPUs.

    mpiexec -n 4 python train.py            # 4 processes; on a GPU node, one per GPU

    comm = pnn.distributed.init()           # "auto": NCCL with CuPy GPUs, else MPI, else alone
    model = pnn.Sequential(..., device=f"cuda:{comm.local_rank}", seed=0)   # same seed: same start
    optimizer = pnn.distributed.DistributedOptimizer(pnn.optimizers.Adam(1e-3), comm)
    rows = comm.shard(len(X))               # this rank's disjoint share of the data
    for xb, yb in batches(X[rows], y[rows]):
        model.backward(loss.backward(...)); optimizer.step(model.parameters())
    if comm.is_root:
        pnn.save(model, "model.npz")

A communicator only moves arrays: ``allreduce_mean`` and ``broadcast`` pack the arrays of a call
into one buffer per dtype, ``agree`` turns an error on one rank into the same error on every rank,
``abort`` ends the whole job. No layer, loss or optimizer knows about ranks. Run alone (no
``mpiexec``, or no mpi4py with ``"auto"``), ``init`` returns a one-rank communicator and the same
script trains as usual.
"""

from __future__ import annotations

from .base import Communicator
from .mpi import MPICommunicator, import_mpi
from .nccl import NcclCommunicator, nccl_problem
from .optimizer import DistributedOptimizer, broadcast_parameters
from .single import SingleCommunicator

__all__ = [
    "Communicator", "DistributedOptimizer", "MPICommunicator", "NcclCommunicator",
    "SingleCommunicator", "broadcast_parameters", "init", "sync_batchnorm",
]

_BACKENDS = ("auto", "mpi", "nccl")
_made: dict = {}  # one communicator per kind and process: NCCL and node splits are set up once


def init(backend="auto"):
    """The communicator of this process's job.

    ``backend``: ``"mpi"`` (mpi4py; arrays of every backend, staged through the host),
    ``"nccl"`` (CuPy arrays reduced on the GPU by NCCL, one GPU per rank, MPI for the rest) or
    ``"auto"`` (NCCL when CuPy, a GPU per rank and NCCL are usable, else MPI, else alone).
    Outside ``mpiexec`` (an MPI world of one rank), or for ``"auto"`` without mpi4py, it is a
    `SingleCommunicator`. ``"mpi"``/``"nccl"`` without what they need raise an error that says
    what to install. Calling ``init`` again returns the same communicator.
    """
    if not isinstance(backend, str) or backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, _BACKENDS))}, got "
                         f"{backend!r}")
    if backend not in _made:
        _made[backend] = _make(backend)
    return _made[backend]


def _make(backend):
    MPI = import_mpi(required=backend != "auto")
    if MPI is None or MPI.COMM_WORLD.Get_size() == 1:
        if backend == "nccl":
            problem = nccl_problem()  # alone, but tell now what a multi-GPU run would lack
            if problem is not None:
                from ..backends import BackendUnavailableError

                raise BackendUnavailableError(problem)
        return SingleCommunicator()
    if backend == "mpi":
        return MPICommunicator()
    if backend == "nccl":
        return NcclCommunicator()
    # auto: every rank must choose the same; NCCL only if it works on all of them
    world = MPI.COMM_WORLD
    usable = world.allreduce(1 if nccl_problem() is None else 0, op=MPI.MIN)
    return NcclCommunicator() if usable else MPICommunicator()


def sync_batchnorm(model, comm, enable=True):
    """Make every ``BatchNorm`` of ``model`` normalize over the whole data-parallel batch (the
    rows of every rank), as PyTorch's ``SyncBatchNorm``; returns the model.

    By default (without this) each rank's BatchNorm uses its own batch's statistics, which is
    cheaper (no communication inside the forward pass) and fine for large per-rank batches. With
    it, each training forward pass of a BatchNorm makes two small allreduces (mean, variance) and
    its backward pass one (the gradient's sums), so the model trains as one process would on the
    global batch. ``enable=False`` turns it off again. The layers only get a function that sums
    arrays over the ranks; they know nothing of ranks.
    """
    from ..layers.normalization import BatchNorm

    if not isinstance(comm, Communicator):
        raise TypeError(f"comm must be a communicator from portable_nn.distributed.init(), got "
                        f"{type(comm).__name__}")
    if not hasattr(model, "modules"):
        raise TypeError(f"model must be a portable_nn layer or model, got {type(model).__name__}")
    size = comm.size

    def sum_over_ranks(arrays):
        return [mean * float(size) for mean in comm.allreduce_mean(arrays)]

    for layer in model.modules():
        if isinstance(layer, BatchNorm):
            layer.sync = sum_over_ranks if enable and size > 1 else None
    return model
