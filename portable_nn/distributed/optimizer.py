"""`DistributedOptimizer`: average the gradients over ranks, then let the wrapped optimizer step.

    comm = pnn.distributed.init()
    optimizer = pnn.distributed.DistributedOptimizer(pnn.optimizers.Adam(1e-3), comm)
    ...
    model.backward(loss.backward())
    optimizer.step(model.parameters())     # one packed allreduce, then Adam's update

As Horovod's ``DistributedOptimizer``: each rank computes the gradient of the mean loss over its
own rows; the average of those gradients over ranks is the gradient over all rows when the shards
are equal (``weight=`` corrects unequal ones), so every rank applies the same update and the
replicas stay equal, bit for bit, as long as every rank receives the same bits from the
allreduce: NCCL's and MPICH's algorithms give them (MPI itself only recommends it).
"""

from __future__ import annotations

import math
import zlib

from array_api_compat import device as device_of

from ..backends import backend_of, get_backend
from ..optimizers import Optimizer
from ..parameter import Parameter
from .base import Communicator, divide, unpack

__all__ = ["DistributedOptimizer", "broadcast_parameters"]

DEFAULT_BUCKET_BYTES = 64 * 2**20

_ITEMSIZE = {"float16": 2, "float32": 4, "float64": 8}


def _layout_code(count, layout, size, dtype_bits):
    """Two numbers every rank's layout gives: ``(h, h²)`` with ``h`` a checksum of which
    parameters are trainable and their shapes, small enough that their sums over ``size`` ranks
    stay exact integers in the buffer's dtype (``dtype_bits`` significand bits). Their sums
    equal ``size · (h, h²)`` on every rank only if all the ``h`` are equal (a variance of 0).
    ``None`` when the dtype is too narrow for a check worth having."""
    limit = 2 ** dtype_bits // size
    modulus = math.isqrt(limit)
    if modulus < 16:
        return None
    text = repr((count, layout))
    h = zlib.crc32(text.encode()) % modulus
    return float(h), float(h * h)


def _significand_bits(xp, dtype):
    return round(-math.log2(float(xp.finfo(dtype).eps))) + 1


class DistributedOptimizer(Optimizer):
    """``optimizer`` (any `Optimizer`) whose ``step`` first averages the gradients over the ranks
    of ``comm`` (a communicator from `init`).

    ``step(parameters, weight=None)``: the gradients of the trainable parameters are packed in
    one buffer per dtype (several buckets of at most ``bucket_bytes`` each for very large
    models), summed over ranks by one collective call per buffer, and divided by the number of
    ranks; each ``grad`` is replaced by that average and the wrapped optimizer steps. Frozen
    parameters (``trainable=False``) are left alone, and so is a parameter without a gradient on
    every rank. A parameter with a gradient on some ranks only (a branch that one rank's batch
    did not use) counts as zero where it has none, which is its gradient there, as in PyTorch's
    DistributedDataParallel; every rank then updates it alike.

    Every rank must step the same model: each buffer carries a checksum of which parameters are
    trainable and their shapes, and where the ranks disagree every rank raises a ``ValueError``
    before any parameter changes. Reading the checksum and the gradient flags is one small
    device-to-host copy per buffer.

    ``weight=w`` multiplies this rank's gradients by ``w`` before averaging. With unequal shards,
    ``w = rows_this_rank · size / rows_all_ranks`` makes the average the gradient over all rows.

    Everything else (``learning_rate``, ``iterations``, ``state_dict``, ``get_config``, ``to``,
    ...) is the wrapped optimizer's, read and written through, so the wrapper goes wherever an
    optimizer does and a checkpoint of it is a checkpoint of the wrapped optimizer.
    """

    def __init__(self, optimizer, comm, *, bucket_bytes=DEFAULT_BUCKET_BYTES):
        if isinstance(optimizer, DistributedOptimizer):
            raise TypeError("optimizer is already a DistributedOptimizer: wrap the plain one once")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a portable_nn Optimizer (e.g. "
                            f"pnn.optimizers.Adam()), got {type(optimizer).__name__}")
        if not isinstance(comm, Communicator):
            raise TypeError(f"comm must be a communicator from pnn.distributed.init(), got "
                            f"{type(comm).__name__}")
        if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, int) \
                or bucket_bytes < 1:
            raise ValueError(f"bucket_bytes must be an int >= 1, got {bucket_bytes!r}")
        object.__setattr__(self, "optimizer", optimizer)
        object.__setattr__(self, "comm", comm)
        object.__setattr__(self, "bucket_bytes", bucket_bytes)

    # forwarding: the wrapper has no optimizer state of its own --------------------------------
    def __getattribute__(self, name):
        if name in _OWN or (name.startswith("__") and name.endswith("__")):
            return object.__getattribute__(self, name)
        return getattr(object.__getattribute__(self, "optimizer"), name)

    def __setattr__(self, name, value):
        if name in _OWN_DATA:
            object.__setattr__(self, name, value)
        else:
            setattr(self.optimizer, name, value)

    def __repr__(self):
        return f"DistributedOptimizer({self.optimizer!r}, {self.comm!r})"

    # the step -------------------------------------------------------------------------------
    def step(self, parameters, weight=None):
        """Average the gradients of ``parameters`` over ranks (scaled by ``weight`` first, if
        given), then take the wrapped optimizer's step on them. A collective: every rank calls
        it, with the same parameters."""
        self.optimizer._check_parameters(parameters)
        w = 1.0 if weight is None else _check_weight(weight)
        trainable = [p for p in parameters if p.trainable]
        for p in trainable:
            g = p.grad
            if g is not None and (tuple(g.shape) != tuple(p.value.shape)
                                  or g.dtype != p.value.dtype):
                raise ValueError(
                    f"parameter {p.name!r}: grad has shape {tuple(g.shape)} and dtype "
                    f"{g.dtype}, but the value has shape {tuple(p.value.shape)} and dtype "
                    f"{p.value.dtype}"
                )
        if self.comm.size == 1:
            present = [p for p in trainable if p.grad is not None]
            if w != 1.0:
                for p in present:
                    p.grad = p.grad * w
            self.optimizer.step(present)
            return
        averaged = self._average(parameters, trainable, w)
        for p, g in averaged:
            p.grad = g
        self.optimizer.step([p for p, _ in averaged])

    def _buckets(self, trainable):
        """``[(backend, [parameters])]``: per (backend, dtype) in order of appearance, cut into
        runs of at most ``bucket_bytes`` (a larger parameter is a bucket of its own)."""
        by_kind = {}
        for p in trainable:
            backend = backend_of(p.value)
            by_kind.setdefault((backend, backend.dtype_name(p.value.dtype)), []).append(p)
        out = []
        for (backend, dtype), params in by_kind.items():
            run, run_bytes = [], 0
            for p in params:
                nbytes = p.size * _ITEMSIZE.get(dtype, 8)
                if run and run_bytes + nbytes > self.bucket_bytes:
                    out.append((backend, run))
                    run, run_bytes = [], 0
                run.append(p)
                run_bytes += nbytes
            out.append((backend, run))
        return out

    def _average(self, parameters, trainable, w):
        """``[(parameter, averaged gradient)]`` for the trainable parameters that have a gradient
        on at least one rank. Each bucket is ``[gradients..., flags..., h, h²]``: a parameter
        without a gradient here sends zeros (its gradient for this rank's loss is zero) and a
        flag 0, so the buffers have the same layout on every rank whatever is missing where."""
        comm, size = self.comm, self.comm.size
        buckets = self._buckets(trainable)
        if not buckets:  # nothing trainable: still exchange the checksum the others expect
            buckets = [(get_backend("cpu"), [])]
        layout = [(i, tuple(p.value.shape)) for i, p in enumerate(parameters) if p.trainable]
        out = []
        for backend, params in buckets:
            xp = backend.xp
            like = params[0].value if params else xp.zeros((0,), dtype=xp.float64)
            dev = device_of(like)
            code = _layout_code(len(parameters), layout, size,
                                _significand_bits(xp, like.dtype))
            pieces = []
            for p in params:
                if p.grad is None:
                    pieces.append(xp.zeros((p.size,), dtype=like.dtype, device=dev))
                else:
                    g = xp.reshape(p.grad, (-1,))
                    pieces.append(g * w if w != 1.0 else g)
            flags = [0.0 if p.grad is None else 1.0 for p in params]
            pieces.append(xp.asarray([*flags, *(code or (0.0, 0.0))], dtype=like.dtype,
                                     device=dev))
            flat = comm._allreduce_sum(backend, xp.concat(pieces))
            n = flat.shape[0] - len(params) - 2
            tail = [float(v) for v in backend.to_numpy(flat[n:])]
            if code is not None and (tail[-2] != size * code[0] or tail[-1] != size * code[1]):
                raise ValueError(
                    "DistributedOptimizer.step: the ranks disagree on which parameters are "
                    "trainable, or on their shapes: every rank must step the same model "
                    f"(this is rank {comm.rank}; its parameters were left unchanged)"
                )
            flat = divide(backend, flat[:n], size)
            grads = unpack(xp, flat, [p.value.shape for p in params])
            out += [(p, g) for p, g, f in zip(params, grads, tail) if f > 0.0]
        return out

    def broadcast_parameters(self, parameters, root=0):
        """`broadcast_parameters` with this optimizer's communicator."""
        broadcast_parameters(parameters, self.comm, root=root)


# The wrapper's own attributes and methods; every other name is the wrapped optimizer's.
_OWN_DATA = frozenset({"optimizer", "comm", "bucket_bytes"})
_OWN = _OWN_DATA | frozenset(vars(DistributedOptimizer))


def _check_weight(weight):
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise TypeError(f"weight must be a number, got {type(weight).__name__} {weight!r}")
    weight = float(weight)
    if not (math.isfinite(weight) and weight >= 0.0):
        raise ValueError(f"weight must be a finite number >= 0, got {weight!r}")
    return weight


def broadcast_parameters(parameters, comm, root=0):
    """Give every rank rank ``root``'s parameter values (a collective): models built without a
    common seed start equal. ``parameters`` is a list of `Parameter` (``model.parameters()``);
    each ``value`` is replaced by a new array."""
    if not isinstance(parameters, (list, tuple)) or not all(
            isinstance(p, Parameter) for p in parameters):
        raise TypeError("parameters must be a list of Parameter (e.g. model.parameters())")
    if not isinstance(comm, Communicator):
        raise TypeError(f"comm must be a communicator from pnn.distributed.init(), got "
                        f"{type(comm).__name__}")
    values = comm.broadcast([p.value for p in parameters], root=root)
    for p, v in zip(parameters, values):
        p.value = v
