"""`Communicator`: what every communicator shares (argument checks, packing, `agree`, `shard`).

A communicator only moves arrays. Its collectives pack the arrays of one call into ONE flat buffer
per (backend, dtype), so a step makes one call to the transport whatever the number of
parameters, and return new arrays: the caller's arrays are read, never written, which is what
immutable arrays (JAX) need. A subclass supplies the transport primitives ``_allreduce_sum``,
``_broadcast_flat``, ``_allgather_objects``, ``_allreduce_host``, ``barrier`` and ``abort``.

Every rank must make the same collective calls in the same order with arrays of the same shapes
and dtypes, as with MPI itself: a rank that skips a call leaves the others waiting.
"""

from __future__ import annotations

import math

from array_api_compat import device as device_of
from array_api_compat import is_writeable_array

from ..backends import backend_of

__all__ = ["Communicator"]


def check_arrays(arrays, argname, floating=False):
    """``arrays`` checked as a list/tuple of backend arrays; their backends, in order."""
    if not isinstance(arrays, (list, tuple)):
        raise TypeError(
            f"{argname} must be a list of arrays (e.g. [p.grad for p in params]), got "
            f"{type(arrays).__module__}.{type(arrays).__name__}"
        )
    backends = []
    for i, a in enumerate(arrays):
        try:
            backend = backend_of(a) if hasattr(a, "shape") and hasattr(a, "dtype") else None
        except TypeError:
            backend = None
        if backend is None:
            raise TypeError(
                f"{argname}[{i}] must be an array of a portable_nn backend, got "
                f"{type(a).__module__}.{type(a).__name__}"
            )
        if floating and not backend.xp.isdtype(a.dtype, "real floating"):
            raise TypeError(
                f"{argname}[{i}] has dtype {a.dtype}: allreduce_mean averages floating-point "
                "arrays (float32, float64); sum counters with allreduce_sum_host"
            )
        backends.append(backend)
    return backends


def groups(arrays, backends):
    """Indices of ``arrays`` grouped by (backend, dtype), groups in order of first appearance."""
    found = {}
    for i, (a, backend) in enumerate(zip(arrays, backends)):
        found.setdefault((backend, backend.dtype_name(a.dtype)), []).append(i)
    return [(backend, idx) for (backend, _), idx in found.items()]


def pack(xp, arrays, tail=None):
    """One new flat array holding ``arrays`` (raveled, in order), then ``tail`` if given."""
    pieces = [xp.reshape(a, (-1,)) for a in arrays]
    if tail is not None:
        pieces.append(tail)
    if len(pieces) == 1:
        # a reshape may be a view of the caller's array: the buffer must be ours
        return xp.asarray(pieces[0], copy=True)
    return xp.concat(pieces)


def unpack(xp, flat, shapes):
    """``flat`` cut into arrays of ``shapes`` (views of ``flat`` where the library makes views)."""
    out, at = [], 0
    for shape in shapes:
        n = math.prod(shape)
        out.append(xp.reshape(flat[at:at + n], tuple(shape)))
        at += n
    return out


def divide(backend, flat, n):
    """``flat / n``, in place where the backend allows it (``flat`` is always a buffer we own)."""
    if n == 1:
        return flat
    if backend.ops.writeable(flat):
        flat /= float(n)
        return flat
    return flat / float(n)


def copy_of(a):
    """``a`` itself when it cannot be written (JAX), else a copy: a result never aliases an
    argument, so writing into one cannot change the other."""
    if is_writeable_array(a):
        xp = backend_of(a).xp
        return xp.asarray(a, copy=True)
    return a


def host_numbers(values, argname):
    """``values`` checked as a list/tuple of real numbers, as Python floats."""
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{argname} must be a list of numbers, got {type(values).__name__}")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{argname}[{i}] must be an int or float, got {type(v).__name__} "
                            f"{v!r}")
        out.append(float(v))
    return out


def describe_error(error):
    """What ``agree`` sends for one rank: ``None`` or ``(kind, message)``."""
    if error is None:
        return None
    if not isinstance(error, BaseException):
        got = f"{type(error).__module__}.{type(error).__name__}"
        return "TypeError", f"agree() takes None or an exception, got {got}"
    kind = next((k.__name__ for k in (ValueError, TypeError) if isinstance(error, k)),
                "RuntimeError")
    return kind, str(error) or type(error).__name__


class Communicator:
    """The ranks of one job and the collectives between them.

    ``rank`` (0 .. ``size`` - 1), ``size``, ``local_rank`` (rank among the processes of this
    node: the GPU to use is ``cuda:{local_rank}``), ``local_size``, ``is_root`` (rank 0, the one
    that writes files), ``kind`` ("single", "mpi" or "nccl").
    """

    kind = "base"

    def __init__(self, rank, size, local_rank, local_size):
        self.rank, self.size = rank, size
        self.local_rank, self.local_size = local_rank, local_size

    @property
    def is_root(self) -> bool:
        """True on rank 0: the rank that writes checkpoints and logs."""
        return self.rank == 0

    def __repr__(self):
        return (f"{type(self).__name__}(rank={self.rank}, size={self.size}, "
                f"local_rank={self.local_rank})")

    # collectives on arrays -------------------------------------------------------------------
    def allreduce_mean(self, arrays):
        """The element-wise mean over ranks of each array of ``arrays`` (a list of floating-point
        arrays, the same shapes and dtypes on every rank), as a list of new arrays on the same
        backends. One transport call per (backend, dtype) in ``arrays``."""
        backends = check_arrays(arrays, "arrays", floating=True)
        out = [None] * len(arrays)
        for backend, idx in groups(arrays, backends):
            xp = backend.xp
            flat = self._allreduce_sum(backend, pack(xp, [arrays[i] for i in idx]))
            flat = divide(backend, flat, self.size)
            for i, a in zip(idx, unpack(xp, flat, [arrays[i].shape for i in idx])):
                out[i] = a
        return out

    def broadcast(self, arrays, root=0):
        """Rank ``root``'s ``arrays`` on every rank, as a list of new arrays. Every rank passes
        arrays of the same shapes and dtypes (its own values are ignored, except on ``root``)."""
        backends = check_arrays(arrays, "arrays")
        root = self._check_root(root)
        out = [None] * len(arrays)
        for backend, idx in groups(arrays, backends):
            xp = backend.xp
            flat = self._broadcast_flat(backend, pack(xp, [arrays[i] for i in idx]), root)
            for i, a in zip(idx, unpack(xp, flat, [arrays[i].shape for i in idx])):
                out[i] = a
        return out

    def _check_root(self, root):
        if isinstance(root, bool) or not isinstance(root, int):
            raise TypeError(f"root must be an int rank, got {type(root).__name__} {root!r}")
        if not 0 <= root < self.size:
            raise ValueError(f"root must be a rank in 0..{self.size - 1}, got {root}")
        return root

    # collectives on host values --------------------------------------------------------------
    def allreduce_sum_host(self, values):
        """The sum over ranks of each number of ``values`` (a list of Python numbers, the same
        length on every rank), as a list of Python floats: for counters such as rows seen."""
        return self._allreduce_host(host_numbers(values, "values"))

    def agree(self, error=None):
        """A collective check: every rank calls it after its own checks, passing ``None`` or the
        exception it caught. If any rank passed one, every rank raises (``ValueError`` or
        ``TypeError`` when the first failing rank's error was one, else ``RuntimeError``) with
        ``"rank R: <message>"`` of the lowest failing rank R; otherwise it returns ``None``."""
        everyone = self._allgather_objects(describe_error(error))
        failed = [(r, e) for r, e in enumerate(everyone) if e is not None]
        if not failed:
            return
        rank, (kind, message) = failed[0]
        more = f" (and {len(failed) - 1} more rank(s) failed)" if len(failed) > 1 else ""
        cls = {"ValueError": ValueError, "TypeError": TypeError}.get(kind, RuntimeError)
        cause = error if isinstance(error, BaseException) else None
        raise cls(f"rank {rank}: {message}{more}") from cause

    # data -------------------------------------------------------------------------------------
    def shard(self, n):
        """This rank's rows of ``n``: a ``range`` of consecutive indices; the shards of all ranks
        are disjoint, cover ``range(n)`` and differ in length by at most one."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an int >= 0 (a number of rows), got {n!r}")
        return range(self.rank * n // self.size, (self.rank + 1) * n // self.size)

    # transport: the subclasses' part ----------------------------------------------------------
    def _allreduce_sum(self, backend, flat):
        """The sum over ranks of ``flat`` (a 1-D array of ``backend`` that we own)."""
        raise NotImplementedError

    def _broadcast_flat(self, backend, flat, root):
        """``root``'s ``flat`` on every rank (a 1-D array of ``backend`` that we own)."""
        raise NotImplementedError

    def _allgather_objects(self, obj):
        """``[obj of rank 0, obj of rank 1, ...]`` (small Python values)."""
        raise NotImplementedError

    def _allreduce_host(self, values):
        raise NotImplementedError

    def barrier(self):
        """Wait until every rank has called ``barrier``."""
        raise NotImplementedError

    def abort(self, message):
        """Print ``"rank R: message"`` to stderr and end every rank of the job now."""
        raise NotImplementedError


def small_array(xp, like, values):
    """A 1-D array of the Python numbers ``values`` with ``like``'s dtype and device."""
    return xp.asarray(values, dtype=like.dtype, device=device_of(like))
