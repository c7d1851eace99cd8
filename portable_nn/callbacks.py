"""Callbacks: code that ``fit`` runs at fixed points of training (Keras's design).

``fit`` calls, in this order::

    check(model, params)                                # before anything changes: may raise
    on_train_begin(logs)
    for each epoch:   on_epoch_begin(epoch, logs)
        for each batch:   on_batch_end(batch, logs)     # after the optimizer step
        on_epoch_end(epoch, logs)                       # logs: the epoch's History entry
    on_train_end(logs)                                  # also after an error, for those begun

Before ``on_train_begin``, ``fit`` sets ``callback.model`` and ``callback.params`` (a dict with
``epochs``, ``steps`` (batches per epoch), ``batch_size``, ``samples``, ``metrics`` (names),
``do_validation``, ``verbose``, ``sample`` (up to 256 training rows on the device) and ``loss``).
Epochs and batches count from 0.

Per-batch ``logs`` avoid host syncs: ``"loss"`` is the batch loss as a 0-d array on the device,
``"size"`` the batch's rows, ``"seen"`` the rows seen so far this epoch and ``"sums"`` a dict of
device running sums (loss and each metric, weighted by rows). Call ``float(...)`` only when you need
the number. Setting ``model.stop_training = True`` ends training after the current epoch, or at
once when set during the batches; such an interrupted epoch is not recorded in the History.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
import warnings
from types import MappingProxyType

from array_api_compat import array_namespace

from .parameter import all_finite

__all__ = [
    "CSVLogger", "Callback", "EarlyStopping", "LearningRateScheduler", "ModelCheckpoint",
    "NonFiniteLossWarning", "ProgressBar", "TerminateOnNaN",
]


class NonFiniteLossWarning(UserWarning):
    """Training was stopped because the loss (or the parameters) became NaN or infinite."""


class Callback:
    """Base class; every hook does nothing. ``self.model`` and ``self.params`` are set by fit."""

    model = None
    params = MappingProxyType({})  # read-only until fit calls set_params

    def check(self, model, params):
        """Called by fit before anything changes, with the model and the ``params`` that
        ``set_params`` will get: raise ``ValueError`` here for a setting that cannot work in this
        run, so that the failed fit leaves the model (and the callback's files) as they were."""

    def set_model(self, model):
        """Called by fit before training."""
        self.model = model

    def set_params(self, params):
        """Called by fit before training (see the module docstring)."""
        self.params = params

    def on_train_begin(self, logs=None):
        """Called once before the first epoch."""

    def on_train_end(self, logs=None):
        """Called once after the last epoch (also after an early stop)."""

    def on_epoch_begin(self, epoch, logs=None):
        """Called before the first batch of ``epoch``."""

    def on_epoch_end(self, epoch, logs=None):
        """Called with the epoch's logs (floats: loss, metrics, val_*, lr, time)."""

    def on_batch_end(self, batch, logs=None):
        """Called after the optimizer step of ``batch`` (logs hold device arrays, see module)."""


def _resolve_mode(mode, monitor):
    """'min' or 'max'; 'auto' maximises accuracy-like keys (acc, r2, auc)."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    name = monitor.lower()
    return "max" if any(s in name for s in ("acc", "r2", "auc")) else "min"


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs (Keras's rule).

    An epoch improves when ``current < best − min_delta`` (mode "min"; "max": ``> best +
    min_delta``; "auto" picks "max" for accuracy/r2 and "min" otherwise). With ``baseline``,
    training stops when ``patience`` epochs pass without beating the baseline, even if they
    improve on each other; the counter resets only on an epoch that beats both. Epochs before
    ``start_from_epoch`` are ignored. ``restore_best_weights=True`` puts back the weights of the
    best epoch at the end of training, whether training stopped early or ran all its epochs
    (device snapshots with ``model.get_weights()``).

    After training: ``stopped_epoch`` (the epoch at which it stopped, ``None`` if it did not),
    ``best`` (the best monitored value), ``best_epoch`` (``None`` if no epoch was monitored).
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto", baseline=None,
                 start_from_epoch=0, restore_best_weights=False):
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor must be a log key such as 'val_loss', got {monitor!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) \
                or not math.isfinite(min_delta):
            raise ValueError(f"min_delta must be a finite number, got {min_delta!r}")
        for name, value in (("patience", patience), ("start_from_epoch", start_from_epoch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if baseline is not None and (isinstance(baseline, bool)
                                     or not isinstance(baseline, (int, float))):
            raise TypeError(f"baseline must be a number or None, got {baseline!r}")
        if not isinstance(restore_best_weights, bool):
            raise TypeError(f"restore_best_weights must be True or False, got "
                            f"{restore_best_weights!r}")
        self.monitor = monitor
        self.mode = _resolve_mode(mode, monitor)
        self.min_delta = abs(float(min_delta))
        self.patience = patience
        self.baseline = None if baseline is None else float(baseline)
        self.start_from_epoch = start_from_epoch
        self.restore_best_weights = restore_best_weights
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = None
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None
        self.best_weights = None

    def _improves(self, current, reference):
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(
                f"EarlyStopping: {self.monitor!r} is not in the logs (available: "
                f"{', '.join(sorted(logs or {}))}); pass validation data or change monitor",
                stacklevel=2,
            )
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # so that something sensible is restored even if no epoch ever improves
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._improves(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improves(current, self.baseline):
                self.wait = 0
                return
            # improving, but still short of the baseline: patience keeps running
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (and its optimizer) with ``portable_nn.save`` at the end of epochs.

    ``path`` may hold ``str.format`` fields: ``{epoch}`` (counted from 1, as Keras does) and any
    log key, e.g. ``"ckpt-{epoch:03d}-{val_loss:.3f}.npz"``. With ``save_best_only=True`` a file
    is written only when ``monitor`` improved (``mode`` as in EarlyStopping).
    """

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto"):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        if not isinstance(save_best_only, bool):
            raise TypeError(f"save_best_only must be True or False, got {save_best_only!r}")
        self.path = os.fspath(path)
        self.monitor = monitor
        self.save_best_only = save_best_only
        self.mode = _resolve_mode(mode, monitor)
        self.best = None
        self.saved = []

    def check(self, model, params):
        # a path naming a key that fit never logs would fail after the first epoch's training
        keys = ["loss", *params.get("metrics", [])]
        if params.get("do_validation"):
            keys += [f"val_{k}" for k in keys]
        sample = dict.fromkeys([*keys, "lr", "time"], 0.0)
        try:
            self.path.format(epoch=1, **sample)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"ModelCheckpoint path {self.path!r} cannot be filled in ({type(exc).__name__}: "
                f"{exc}); it may use {{epoch}} and the logged keys {sorted(sample)}"
            ) from None

    def on_train_begin(self, logs=None):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.saved = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"ModelCheckpoint: {self.monitor!r} is not in the logs; "
                              "nothing saved", stacklevel=2)
                return
            better = current < self.best if self.mode == "min" else current > self.best
            if not better:
                return
            self.best = current
        from .checkpoint import save

        path = self.path.format(epoch=epoch + 1, **logs)
        save(self.model, path)
        self.saved.append(path)


class LearningRateScheduler(Callback):
    """Set ``optimizer.learning_rate = fn(epoch, lr)`` before each epoch (``lr``: the current
    rate as a float). The new rate must be a finite number > 0."""

    def __init__(self, fn, verbose=False):
        if not callable(fn):
            raise TypeError(f"fn must be a callable (epoch, lr) -> lr, got {type(fn).__name__}")
        self.fn = fn
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        lr = float(opt.current_lr())
        new = self.fn(epoch, lr)
        if isinstance(new, bool) or not isinstance(new, (int, float)) or not math.isfinite(new) \
                or new <= 0:
            raise ValueError(
                f"LearningRateScheduler: fn({epoch}, {lr}) returned {new!r}; expected a finite "
                "number > 0"
            )
        opt.learning_rate = float(new)
        if self.verbose:
            print(f"epoch {epoch + 1}: learning rate {float(new):.6g}")


class TerminateOnNaN(Callback):
    """Stop training when the loss or the parameters become NaN or infinite.

    ``fit`` adds one by default (pass your own instance to change ``check_every`` or
    ``restore``). Checking needs a device-to-host sync, so it is not done every batch: the batch
    losses are kept on the device and their sum is checked every ``check_every`` batches and at
    the last batch of each epoch, where the parameters are checked too (an update can break them
    after the last loss was computed). Only when the sum is not finite are the individual losses
    looked at, to name the first bad batch. On a failure it sets ``model.stop_training`` and
    warns with ``NonFiniteLossWarning``. At most ``check_every − 1`` batches are wasted after a
    divergence.

    ``restore=False`` (the default, as in Keras) leaves the weights as the failing step made
    them: they may be non-finite. ``restore=True`` rolls back to the weights and optimizer state
    of the start of the failing epoch, which were checked finite; that costs one copy of the
    weights and the optimizer state, kept through every epoch (with Adam, three times the size
    of the weights).

    Attributes after training: ``stopped_epoch`` and ``stopped_batch`` (``None`` if it did not
    stop). While it is active, ``fit`` silences NumPy's overflow warnings (the divergence they
    announce is reported here instead).
    """

    def __init__(self, check_every=50, restore=False):
        if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
            raise ValueError(f"check_every must be an int >= 1, got {check_every!r}")
        if not isinstance(restore, bool):
            raise TypeError(f"restore must be True or False, got {restore!r}")
        self.check_every = check_every
        self.restore = restore
        self.stopped_epoch = None
        self.stopped_batch = None

    def on_train_begin(self, logs=None):
        self.stopped_epoch = self.stopped_batch = None
        self._weights = self._opt_state = None

    def on_epoch_begin(self, epoch, logs=None):
        model = self.model
        self._epoch = epoch
        self._pending = []
        self._first = 0
        # let the last epoch's snapshot go first: two alive at once would double its memory
        self._weights = self._opt_state = None
        if not self.restore:
            return
        self._weights = model.get_weights()
        opt = model.optimizer
        self._opt_state = opt.state_dict(model.parameters()) if opt is not None else None

    def on_batch_end(self, batch, logs=None):
        self._pending.append(logs["loss"])
        last = batch == self.params.get("steps", 0) - 1
        if not (last or (batch + 1) % self.check_every == 0):
            return
        pending, first = self._pending, self._first
        self._pending, self._first = [], batch + 1
        xp = array_namespace(pending[0])
        losses = xp.stack(pending)
        if math.isfinite(float(xp.sum(losses))):
            if not last or all_finite(self.model.parameters()):
                return
            self._stop(batch, "the parameters became non-finite after the update of this batch")
            return
        bad = xp.logical_not(xp.isfinite(losses))
        if bool(xp.any(bad)):
            i = int(xp.argmax(xp.astype(bad, xp.int32)))
            self._stop(first + i, f"the loss was {float(losses[i])}")
        else:
            self._stop(batch, "the summed loss overflowed")

    def _stop(self, batch, why):
        model = self.model
        if self.restore:
            model.set_weights(self._weights)
            if self._opt_state is not None:
                model.optimizer.load_state_dict(self._opt_state, model.parameters())
            done = f"the weights of the start of epoch {self._epoch} restored"
        else:
            done = "the weights left as they are (restore=False): they may be non-finite"
        model.stop_training = True
        self.stopped_epoch, self.stopped_batch = self._epoch, batch
        warnings.warn(
            f"TerminateOnNaN: non-finite values at epoch {self._epoch}, batch {batch} ({why}); "
            f"training stopped and {done}. "
            "Try a smaller learning rate, gradient clipping (clipnorm=...) or standardised inputs.",
            NonFiniteLossWarning,
            stacklevel=2,
        )


class CSVLogger(Callback):
    """Append one row per epoch (``epoch`` then the History keys) to a CSV file; the header is
    written with the first row. ``append=True`` keeps an existing file's rows."""

    def __init__(self, path, separator=",", append=False):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        self.path = os.fspath(path)
        self.separator = separator
        self.append = append
        self._file = None
        self._writer = None
        self._keys = None

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.path) and os.path.getsize(self.path) > 0
        # kept open across hooks (closed in on_train_end), so no context manager
        self._file = open(self.path, "a" if self.append else "w", newline="")  # noqa: SIM115
        self._writer = csv.writer(self._file, delimiter=self.separator)
        self._keys = None
        if exists:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f, delimiter=self.separator), None)
            self._keys = header[1:] if header else None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = list(logs)
            self._writer.writerow(["epoch", *self._keys])
        self._writer.writerow([epoch, *(logs.get(k, "") for k in self._keys)])
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


class ProgressBar(Callback):
    """What ``fit(verbose=...)`` prints. ``mode="bar"``: a tqdm bar per epoch with the running
    loss and metrics (refreshed at most every ``refresh`` seconds, the only time it syncs) and
    samples/s; ``mode="epoch"``: one line per epoch."""

    def __init__(self, mode="bar", refresh=0.5, file=None):
        if mode not in ("bar", "epoch"):
            raise ValueError(f"mode must be 'bar' or 'epoch', got {mode!r}")
        self.mode = mode
        self.refresh = refresh
        self.file = file
        self._bar = None

    def _out(self):
        return self.file if self.file is not None else sys.stdout

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_title = f"epoch {epoch + 1}/{self.params.get('epochs', '?')}"
        if self.mode != "bar":
            return
        from tqdm import tqdm

        self._bar = tqdm(total=self.params.get("samples"), desc=self._epoch_title, unit="sample",
                         unit_scale=True, file=self._out(), leave=True, dynamic_ncols=True)
        self._last = time.monotonic()

    def on_batch_end(self, batch, logs=None):
        if self._bar is None:
            return
        self._bar.update(logs["size"])
        now = time.monotonic()
        if now - self._last >= self.refresh:
            self._last = now
            seen = logs["seen"]
            post = {k: f"{float(v) / seen:.4g}" for k, v in logs["sums"].items()}
            self._bar.set_postfix(batch=f"{batch + 1}/{self.params.get('steps')}", **post,
                                  refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "time"},
                                  refresh=False)
            self._bar.close()
            self._bar = None
            return
        parts = [self._epoch_title, f"{logs.get('time', 0.0):.2f}s"]
        parts += [f"{k}: {v:.4g}" for k, v in logs.items() if k != "time"]
        print(" - ".join(parts), file=self._out(), flush=True)

    def on_train_end(self, logs=None):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
