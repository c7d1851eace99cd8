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
device running sums (loss and each metric, weighted by rows, or by the rows' sample weights, whose
running total is ``"weight_seen"``) and ``"last"`` whether it is the epoch's last batch. Call
``float(...)`` only when you need the number. Setting ``model.stop_training = True`` ends
training after the current epoch, or at once when set during the batches; such an interrupted
epoch is not recorded in the History. A callback that stops training may say why in
``model.stop_reason``; the History keeps it (``history.stop_reason``).

``Callback.writes`` says whether a callback writes files or to the terminal (``ModelCheckpoint``,
``CSVLogger``, ``ProgressBar``): under data-parallel training only rank 0 runs those, while every
rank runs the others (``EarlyStopping``, ``ReduceLROnPlateau``, ...), which must decide alike.
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
    "NonFiniteLossWarning", "ProgressBar", "ReduceLROnPlateau", "TerminateOnNaN",
]


class NonFiniteLossWarning(UserWarning):
    """Training was stopped because the loss (or the parameters) became NaN or infinite."""


class Callback:
    """Base class; every hook does nothing. ``self.model`` and ``self.params`` are set by fit.

    ``writes`` (class attribute, default ``False``): ``True`` for a callback that writes files or
    to the terminal. Under data-parallel training only rank 0 runs the callbacks with
    ``writes = True``; every rank runs the others, so those must not write anything.
    """

    model = None
    params = MappingProxyType({})  # read-only until fit calls set_params
    writes = False

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


# argument checks shared by the callbacks ---------------------------------------------------------
def _monitor_arg(monitor):
    if not isinstance(monitor, str):
        raise TypeError(f"monitor must be a log key such as 'val_loss', got "
                        f"{type(monitor).__name__} {monitor!r}")
    if not monitor:
        raise ValueError("monitor must be a log key such as 'val_loss', got ''")
    return monitor


def _count_arg(value, argname):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argname} must be an int >= 0, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{argname} must be an int >= 0, got {value!r}")
    return value


def _number_arg(value, argname, *, low=-math.inf, above=None):
    """A finite float >= ``low`` (or > ``above``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{argname} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    bound = f"> {above}" if above is not None else f">= {low}"
    if not math.isfinite(value) or value < low or (above is not None and value <= above):
        raise ValueError(f"{argname} must be a finite number {bound}, got {value!r}")
    return value


def _bool_arg(value, argname):
    if not isinstance(value, bool):
        raise TypeError(f"{argname} must be True or False, got {value!r}")
    return value


def _path_arg(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise ValueError(f"path must be a non-empty file name, got {path!r}")
    return path


def _logged_keys(params):
    """The epoch log keys fit writes in a run with these ``params``."""
    keys = ["loss", *params.get("metrics", [])]
    if params.get("do_validation"):
        keys += [f"val_{k}" for k in keys]
    return [*keys, "lr", "time"]


def _require_logged(owner, monitor, params):
    """``check``'s rule for a monitored key: fit must log it in this run."""
    keys = _logged_keys(params)
    if monitor in keys:
        return
    hint = (" (validation keys need validation_data or validation_split)"
            if monitor.startswith("val_") and not params.get("do_validation") else "")
    raise ValueError(f"{owner}: monitor {monitor!r} is not logged by this fit{hint}; the logged "
                     f"keys are {keys}")


def _require_writable_dir(owner, path):
    """``check``'s rule for an output file: its directory exists and may be written."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{owner}: the directory of {path!r} ({folder}) does not exist; "
                         "create it before training")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{owner}: the directory of {path!r} ({folder}) is not writable")


def _run_optimizer(model, params):
    """The optimizer of the run being checked: ``params["optimizer"]`` where fit passes it,
    else the model's (the one a fit without ``optimizer=`` reuses)."""
    opt = params.get("optimizer") if hasattr(params, "get") else None
    return opt if opt is not None else getattr(model, "optimizer", None)


def _resolve_mode(mode, monitor):
    """'min' or 'max'; 'auto' maximises accuracy-like keys (acc, r2, auc)."""
    if not isinstance(mode, str) or mode not in ("auto", "min", "max"):
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
        self.monitor = _monitor_arg(monitor)
        self.min_delta = abs(_number_arg(min_delta, "min_delta"))
        self.patience = _count_arg(patience, "patience")
        self.start_from_epoch = _count_arg(start_from_epoch, "start_from_epoch")
        self.baseline = None if baseline is None else _number_arg(baseline, "baseline")
        self.restore_best_weights = _bool_arg(restore_best_weights, "restore_best_weights")
        self.mode = _resolve_mode(mode, monitor)
        self._reset()

    def check(self, model, params):
        """Refuse a ``monitor`` this fit does not log (``val_loss`` without validation data)."""
        _require_logged("EarlyStopping", self.monitor, params)

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
            self.model.stop_reason = (
                f"EarlyStopping: {self.monitor} did not improve for {self.wait} epochs (best "
                f"{self.best:.6g} at epoch {self.best_epoch})")

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (and its optimizer) with ``portable_nn.save`` at the end of epochs.

    ``path`` may hold ``str.format`` fields: ``{epoch}`` (counted from 1, as Keras does) and any
    log key, e.g. ``"ckpt-{epoch:03d}-{val_loss:.3f}.npz"``. With ``save_best_only=True`` a file
    is written only when ``monitor`` improved (``mode`` as in EarlyStopping).
    """

    writes = True

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto"):
        self.path = _path_arg(path)
        self.monitor = _monitor_arg(monitor)
        self.save_best_only = _bool_arg(save_best_only, "save_best_only")
        self.mode = _resolve_mode(mode, monitor)
        self.best = None
        self.saved = []

    def check(self, model, params):
        """Before training: the path template can be filled in with the keys this fit logs, its
        directory exists and is writable, and with ``save_best_only`` the monitor is logged."""
        # a path naming a key that fit never logs would fail after the first epoch's training
        sample = dict.fromkeys(_logged_keys(params), 0.0)
        try:
            first = self.path.format(epoch=1, **sample)
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise ValueError(
                f"ModelCheckpoint path {self.path!r} cannot be filled in ({type(exc).__name__}: "
                f"{exc}); it may use {{epoch}} and the logged keys {sorted(sample)}"
            ) from None
        _require_writable_dir("ModelCheckpoint", first)
        if self.save_best_only:
            _require_logged("ModelCheckpoint", self.monitor, params)

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
    """Set the optimizer's learning rate to ``fn(epoch, lr)`` before each epoch, as Keras's.

    ``lr`` is the optimizer's ``learning_rate`` (a float); the new rate must be a finite number
    > 0. The optimizer must not have a schedule already (``check`` refuses it before training,
    as Keras does, instead of silently replacing the schedule). The rate the steps use is
    ``fn(epoch, lr) · optimizer.lr_scale``: a ``ReduceLROnPlateau`` in the same run scales
    what ``fn`` returns. ``verbose=True`` prints each new rate.
    """

    def __init__(self, fn, verbose=False):
        if not callable(fn):
            raise TypeError(f"fn must be a callable (epoch, lr) -> lr, got {type(fn).__name__}")
        self.fn = fn
        self.verbose = _bool_arg(verbose, "verbose")

    @staticmethod
    def _refuse_schedule(opt):
        if opt is None:
            return
        if getattr(opt, "has_schedule", False) or not isinstance(
                getattr(opt, "learning_rate", None), float):
            raise ValueError(
                f"LearningRateScheduler: the optimizer's learning_rate is "
                f"{getattr(opt, 'learning_rate', None)!r}, not a float; it would be replaced "
                "without notice. Use either a schedule or this callback, not both"
            )

    def check(self, model, params):
        """Refuse an optimizer whose learning rate is a schedule."""
        self._refuse_schedule(_run_optimizer(model, params))

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        self._refuse_schedule(opt)  # again, for an optimizer check() did not see
        lr = opt.learning_rate
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


class ReduceLROnPlateau(Callback):
    """Lower the learning rate by ``factor`` when ``monitor`` stops improving, as Keras's.

    An epoch improves when ``current < best − min_delta`` (mode "min"; "max": ``> best +
    min_delta``; "auto" picks "max" for accuracy/r2/auc and "min" otherwise, as EarlyStopping).
    After ``patience`` epochs without improvement the effective rate becomes
    ``max(lr · factor, min_lr)`` (if it is above ``min_lr``), then ``cooldown`` epochs pass before
    epochs count again. The reduction goes through ``optimizer.lr_scale``, so it works with every
    optimizer and scales a schedule too (a schedule keeps its shape, lowered); a reduction never
    takes the effective rate below ``min_lr`` (with a schedule: below ``min_lr`` at the step of
    the reduction; the schedule may decay further by itself). The scale stays on the optimizer
    after training, as Keras's lowered rate does. Each epoch's logs get ``"lr"``: the effective
    rate before this epoch's reduction.

    ``check`` refuses a ``monitor`` this fit does not log (the rule of EarlyStopping) and an
    optimizer without ``lr_scale``. After training: ``best``, ``wait``, ``cooldown_counter``.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        self.monitor = _monitor_arg(monitor)
        self.factor = _number_arg(factor, "factor", above=0.0)
        if self.factor >= 1.0:
            raise ValueError(f"factor must be in (0, 1) (the rate is multiplied by it), got "
                             f"{factor!r}")
        self.patience = _count_arg(patience, "patience")
        self.mode = _resolve_mode(mode, monitor)
        self.min_delta = _number_arg(min_delta, "min_delta", low=0.0)
        self.cooldown = _count_arg(cooldown, "cooldown")
        self.min_lr = _number_arg(min_lr, "min_lr", low=0.0)
        self._reset()

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.cooldown_counter = 0

    @staticmethod
    def _require_scalable(opt):
        if opt is not None and not (hasattr(opt, "lr_scale") and hasattr(opt, "current_lr")):
            raise TypeError(f"ReduceLROnPlateau needs an optimizer with lr_scale and current_lr() "
                            f"(a portable_nn optimizer), got {type(opt).__name__}")

    def check(self, model, params):
        """Refuse a ``monitor`` this fit does not log, and an optimizer it cannot scale."""
        _require_logged("ReduceLROnPlateau", self.monitor, params)
        self._require_scalable(_run_optimizer(model, params))

    def on_train_begin(self, logs=None):
        self._require_scalable(self.model.optimizer)
        self._reset()

    def _improves(self, current):
        if self.mode == "min":
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        opt = self.model.optimizer
        lr = float(opt.current_lr())
        logs["lr"] = lr
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"ReduceLROnPlateau: {self.monitor!r} is not in the logs (available: "
                          f"{', '.join(sorted(logs))}); the learning rate is left as it is",
                          stacklevel=2)
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improves(current):
            self.best, self.wait = current, 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        # a relative margin: a rate clamped to min_lr reads back a rounding error above it
        if self.wait >= self.patience and lr > self.min_lr * (1.0 + 1e-9):
            factor = self.factor if lr * self.factor >= self.min_lr else self.min_lr / lr
            scale = opt.lr_scale * factor
            if scale > 0.0:  # after ~300 reductions to min_lr=0 the scale would underflow
                opt.lr_scale = scale
            self.cooldown_counter, self.wait = self.cooldown, 0


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
        if _count_arg(check_every, "check_every") < 1:
            raise ValueError(f"check_every must be an int >= 1, got {check_every!r}")
        self.check_every = check_every
        self.restore = _bool_arg(restore, "restore")
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
        steps = self.params.get("steps")
        last = logs.get("last", steps is not None and batch == steps - 1)
        if not (last or (batch + 1) % self.check_every == 0):
            return
        if self.params.get("world_size", 1) > 1:
            # data-parallel: every rank must stop at the same step, so decide on what is the same
            # on every rank, the averaged update's parameters, not on this rank's own losses
            self._pending, self._first = [], batch + 1
            if not all_finite(self.model.parameters()):
                self._stop(batch, "the parameters became non-finite (on every rank)")
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
        model.stop_reason = (f"TerminateOnNaN: non-finite values at epoch {self._epoch}, batch "
                             f"{batch} ({why})")
        warnings.warn(
            f"{model.stop_reason}; training stopped and {done}. "
            "Try a smaller learning rate, gradient clipping (clipnorm=...) or standardised inputs.",
            NonFiniteLossWarning,
            stacklevel=2,
        )


class CSVLogger(Callback):
    """Append one row per epoch (``epoch`` then the History keys) to a CSV file; the header is
    written with the first row. ``append=True`` keeps an existing file's rows."""

    writes = True

    def __init__(self, path, separator=",", append=False):
        self.path = _path_arg(path)
        if not isinstance(separator, str) or len(separator) != 1:
            raise (ValueError if isinstance(separator, str) else TypeError)(
                f"separator must be a one-character string, got {separator!r}")
        self.separator = separator
        self.append = _bool_arg(append, "append")
        self._file = None
        self._writer = None
        self._keys = None

    def check(self, model, params):
        """The file's directory exists and is writable (before training, not after it)."""
        _require_writable_dir("CSVLogger", self.path)

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

    writes = True

    def __init__(self, mode="bar", refresh=0.5, file=None):
        if mode not in ("bar", "epoch"):
            raise ValueError(f"mode must be 'bar' or 'epoch', got {mode!r}")
        if file is not None and not callable(getattr(file, "write", None)):
            raise TypeError(f"file must be a text stream with write() or None (stdout), got "
                            f"{type(file).__name__}")
        self.mode = mode
        self.refresh = _number_arg(refresh, "refresh", low=0.0)
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
            seen = logs.get("weight_seen", logs["seen"])  # sums are weighted by the rows' weight
            post = {k: f"{float(v) / seen:.4g}" for k, v in logs["sums"].items()}
            steps = self.params.get("steps")
            self._bar.set_postfix(batch=f"{batch + 1}/{'?' if steps is None else steps}", **post,
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
