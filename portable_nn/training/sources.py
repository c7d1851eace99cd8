"""Data sources: where ``fit`` and ``evaluate`` get their device batches from.

A source yields, per epoch, ``Batch(x, t, w, rows, weight)``: the inputs and targets as arrays of
the model's backend, the rows' weights (``None`` when unweighted), the number of rows, and their
total weight as a Python float (the rows when unweighted), which is what epoch averages and
data-parallel gradient averaging are weighted by.

- `ArraySource`: arrays checked once; moved to the device once when they fit
  (``DEVICE_DATA_LIMIT``), else batch by batch; shuffled with a host permutation, so every
  backend (and every rank of a data-parallel run) sees the same order; ``shard`` gives one rank's
  disjoint part of every epoch.
- `IterableSource`: the user's batches (a sequence, a generator function called once per epoch,
  an iterator, a PyTorch ``DataLoader``...), each checked and moved to the device as it comes,
  one at a time; a helper thread fetches the next host batch while the current one trains.

A new kind of data is a new source, not a new branch in the loop.
"""

from __future__ import annotations

import math
import queue
import threading
from typing import NamedTuple

import numpy as np

from . import checks

__all__ = ["DEVICE_DATA_LIMIT", "ArraySource", "Batch", "IterableSource"]

DEVICE_DATA_LIMIT = 256 * 2**20   # bytes of X + y moved to the device in one go


class Batch(NamedTuple):
    x: object
    t: object
    w: object
    rows: int
    weight: float


class ArraySource:
    """X, targets and weights (host float64 or None), on the device or on the host."""

    def __init__(self, model, X, x_dev, t, t_dev, t_dtype, w=None):
        self.backend = b = model.backend
        self.n = X.shape[0]
        self.x_dtype = checks.input_dtype(model)
        self.t_dtype = t_dtype
        itemsize = 4 if model.dtype_name == "float32" else 8
        row = math.prod(X.shape[1:]) * itemsize + (t.shape[1] if t.ndim == 2 else 1) * 8
        self.on_device = x_dev or t_dev or self.n * row <= DEVICE_DATA_LIMIT
        if self.on_device:
            X, t = b.asarray(X, dtype=self.x_dtype), b.asarray(t, dtype=t_dtype)
        self.X, self.t = X, t
        self.w_host = w  # for the weight totals, without a device sync
        self.w = None if w is None else (b.asarray(w, dtype=model.dtype_name) if self.on_device
                                         else w)
        self.weight_dtype = model.dtype_name
        self.rows = None  # a shard's rows (host indices) or None for all

    @property
    def weighted(self):
        return self.w is not None

    def split(self, n_train):
        """``(first n_train rows, the rest)`` as two sources (Keras's validation_split)."""
        head, tail = (object.__new__(ArraySource) for _ in range(2))
        for part, rows in ((head, slice(0, n_train)), (tail, slice(n_train, self.n))):
            part.__dict__.update(self.__dict__)
            part.X, part.t = self.X[rows, ...], self.t[rows, ...]
            part.w = None if self.w is None else self.w[rows, ...]
            part.w_host = None if self.w_host is None else self.w_host[rows]
            part.n = part.X.shape[0]
        return head, tail

    def _take(self, index):
        """Rows ``index`` (a slice ``start:stop`` within the rows, or a host integer array) as
        device arrays, and their weight."""
        X, t, w, b = self.X, self.t, self.w, self.backend
        if isinstance(index, slice):
            rows = index.stop - index.start
            xb, tb = X[index, ...], t[index, ...]
            wb = None if w is None else w[index]
            total = float(rows) if w is None else float(self.w_host[index].sum())
        else:
            rows = int(index.shape[0])
            total = float(rows) if w is None else float(self.w_host[index].sum())
            if self.on_device:
                dev = b.asarray(index)
                xp = b.xp
                xb, tb = xp.take(X, dev, axis=0), xp.take(t, dev, axis=0)
                wb = None if w is None else xp.take(w, dev, axis=0)
            else:
                xb, tb, wb = X[index, ...], t[index, ...], None if w is None else w[index]
        if not self.on_device:
            xb = b.asarray(xb, dtype=self.x_dtype)
            tb = b.asarray(tb, dtype=self.t_dtype)
            wb = None if wb is None else b.asarray(wb, dtype=self.weight_dtype)
        return Batch(xb, tb, wb, rows, total)

    def _shares(self, batch_size, perm, size):
        """Every rank's contiguous share of the epoch's order (``perm``, or the stored order) and
        the steps every rank takes: those of the largest share. ``batches`` and ``step_totals``
        both use it, so the totals always describe the batches the ranks really train on."""
        order = np.arange(self.n) if perm is None else perm
        parts = np.array_split(order, size)
        return parts, math.ceil(max(p.shape[0] for p in parts) / batch_size)

    def batches(self, batch_size, perm=None, shard=None):
        """One epoch's batches, in ``perm``'s order (a host permutation of the rows, or None for
        the stored order); ``shard=(rank, size)``: only that rank's disjoint, contiguous part of
        the order, and as many steps as the largest part has (a rank with fewer rows gets empty
        batches, ``rows == 0``, at the end: every rank takes the same number of steps)."""
        order = perm
        if shard is not None:
            parts, steps = self._shares(batch_size, perm, shard[1])
            order = parts[shard[0]]
        else:
            steps = math.ceil(self.n / batch_size)
        n = self.n if order is None else order.shape[0]
        for step in range(steps):
            start, stop = step * batch_size, min(n, (step + 1) * batch_size)
            if start >= stop:
                yield Batch(None, None, None, 0, 0.0)
            elif order is None:
                yield self._take(slice(start, stop))
            else:
                yield self._take(order[start:stop])

    def step_totals(self, batch_size, perm, size):
        """For a data-parallel epoch: per step, the total weight (rows when unweighted) of the
        rows all ``size`` ranks train on, computed on every rank from the host data alone."""
        parts, steps = self._shares(batch_size, perm, size)
        totals = [0.0] * steps
        for part in parts:
            for step in range(steps):
                rows = part[step * batch_size:(step + 1) * batch_size]
                totals[step] += float(rows.shape[0]) if self.w_host is None else \
                    float(self.w_host[rows].sum())
        return totals

    def steps(self, batch_size, size=1):
        """Steps per epoch (for a data-parallel run: of the largest rank's part)."""
        return math.ceil(math.ceil(self.n / size) / batch_size)

    def first_row(self):
        """A batch of the first row, to check metrics before training."""
        return self._take(slice(0, 1))

    def sample(self, rows):
        """The first ``rows`` rows (a fixed sample for callbacks such as Monitor)."""
        batch = self._take(slice(0, min(self.n, rows)))  # (start and stop within the rows)
        return batch.x, batch.t


class IterableSource:
    """The user's own batches: ``(x, y)`` or ``(x, y, sample_weight)`` per item, host or device.

    ``data`` is a generator function (called once per epoch), an iterator (a generator object:
    one stream that epochs take ``steps_per_epoch`` batches each from), or anything else
    iterable (a list, a ``DataLoader``: iterated afresh each epoch). Each batch is checked like
    whole arrays are (shapes, numbers in the model's dtype, labels) before it is used, and moved to
    the device one at a time. The first batch is looked at before training starts, to check that
    the data fits the model; it is not lost.
    """

    def __init__(self, model, loss, data, steps_per_epoch, argname, class_weight=None):
        if callable(data) and not hasattr(data, "__iter__"):
            self.kind, self._make = "function", data
        elif iter(data) is data:
            self.kind, self._make = "iterator", lambda: data
        elif hasattr(data, "__iter__"):
            self.kind, self._make = "iterable", lambda: iter(data)
        else:
            raise TypeError(f"{argname} must be an array, or an iterable of (x, y) batches, got "
                            f"{type(data).__name__}")
        if self.kind == "iterator" and steps_per_epoch is None:
            self.one_pass = True  # a stream without a length can be read once: one epoch
        else:
            self.one_pass = False
        self._len = len(data) if self.kind == "iterable" and hasattr(data, "__len__") else None
        self.model, self.loss, self.argname = model, loss, argname
        self.steps_per_epoch = steps_per_epoch
        self.class_weight = class_weight
        self._stream = None
        self._peeked = None
        self.k = None
        self.weighted = None
        self.on_device = False

    def prepare(self):
        """Look at the first batch (before training): the output width, and whether batches
        carry weights. Raises for data that does not fit the model."""
        it = self._make() if self._stream is None else self._stream
        self._stream = it
        try:
            first = next(it)
        except StopIteration:
            raise ValueError(f"{self.argname} yielded no batch") from None
        xb = self._host_x(first, 0)
        self.k = checks.output_width(self.model, xb, f"{self.argname} (batch 0) x")
        self._peeked = first
        self.has_w = len(first) == 3
        self.weighted = self.has_w or self.class_weight is not None
        return self.k

    def _host_x(self, item, index):
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise ValueError(f"{self.argname}: batch {index} must be a pair (x, y) or a triple "
                             f"(x, y, sample_weight), got {type(item).__name__}")
        x, _ = checks.features(self.model, item[0], f"{self.argname} (batch {index}) x")
        return x

    def _convert(self, item, index):
        model, loss = self.model, self.loss
        where = f"{self.argname} (batch {index})"
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise ValueError(f"{where} must be a pair (x, y) or a triple (x, y, sample_weight), "
                             f"got {type(item).__name__}")
        if (len(item) == 3) != self.has_w:
            raise ValueError(f"{where}: every batch must have the same form, (x, y) or (x, y, "
                             "sample_weight), as the first one")
        x, _ = checks.features(model, item[0], f"{where} x")
        n = x.shape[0]
        t, _, t_dtype = checks.targets(model, loss, item[1], n, self.k, f"{where} y")
        w = checks.sample_weights(item[2] if len(item) == 3 else None, self.class_weight, loss, t,
                                  n, self.k, f"{where} sample_weight")
        b = model.backend
        xb = b.asarray(x, dtype=checks.input_dtype(model))
        tb = b.asarray(t, dtype=t_dtype)
        wb = None if w is None else b.asarray(w, dtype=model.dtype_name)
        return Batch(xb, tb, wb, n, float(n) if w is None else float(w.sum()))

    def batches(self, batch_size=None, perm=None, shard=None):
        """One epoch's batches (``batch_size`` and ``perm`` are the data's own business here)."""
        if self.kind == "iterator":
            it = self._stream
        else:
            it = self._stream if self._stream is not None else self._make()
            self._stream = None  # a fresh one next epoch
        if self._peeked is not None:
            first, self._peeked = self._peeked, None
            it = _chain_first(first, it)
        limit = self.steps_per_epoch
        fetched = _Prefetch(it, limit)
        try:
            for index, item in enumerate(fetched):
                yield self._convert(item, index)
        finally:
            fetched.close()
        if limit is not None and fetched.count < limit:
            raise ValueError(
                f"{self.argname} ran out after {fetched.count} batches, but steps_per_epoch="
                f"{limit}: give a stream that does not end (or fewer steps)")

    def steps(self, batch_size=None, size=1):
        """Batches per epoch: ``steps_per_epoch``, else the data's length when it has one."""
        return self.steps_per_epoch if self.steps_per_epoch is not None else self._len

    def first_row(self):
        return None

    def sample(self, rows):
        return None, None


def _chain_first(first, it):
    yield first
    # not ``yield from``: closing this generator would close ``it`` too, the user's one stream
    for item in it:  # noqa: UP028
        yield item


class _Prefetch:
    """Iterate ``it`` (at most ``limit`` items) with a helper thread that fetches the next item
    while the caller works on the current one (the user's generator, a DataLoader reading from
    disk, runs beside the training step). Exceptions in the user's code come out in the caller."""

    _DONE = object()

    def __init__(self, it, limit):
        self._queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self.count = 0
        self._thread = threading.Thread(target=self._run, args=(it, limit), daemon=True)
        self._thread.start()

    def _run(self, it, limit):
        n = 0
        try:
            while limit is None or n < limit:
                try:
                    item = next(it)
                except StopIteration:
                    break
                n += 1
                if not self._put(("item", item)):
                    return
            self._put(("done", None))
        except BaseException as exc:  # noqa: BLE001 - delivered to the caller, raised there
            self._put(("error", exc))

    def _put(self, entry):
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self):
        while True:
            kind, value = self._queue.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            self.count += 1
            yield value

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
