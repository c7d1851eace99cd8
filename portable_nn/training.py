"""The training loop: ``fit``, ``evaluate``, ``predict``, ``History`` and ``random_restarts``.

``fit`` is the course's loop, batch after batch::

    pred = model.forward(xb, training=True)
    value = loss.forward(pred, yb)                       # + model.penalty() when regularized
    model.backward(loss.backward(), need_input_grad=False)
    optimizer.step(model.parameters())

What it adds around it, and why:

- **Validation once.** The whole data set is checked up front (shapes, numbers, NaN/Inf rows, label
  range against the output layer, the loss's own ``validate``) on the host, or with a few syncs on
  the device. Every problem raises before anything about the model changes. Per batch only
  ``loss._forward`` runs, without checks.
- **Data on the device once.** When X and y together take at most ``DEVICE_DATA_LIMIT`` bytes in
  the model's dtype, they are moved once; each epoch shuffles with a permutation drawn on the host
  from ``seed`` (so every backend sees the same order) and gathered on the device with
  ``xp.take``. Larger host data stays on the host and is moved batch by batch.
- **No syncs in the loop.** The epoch loss and metrics are summed on the device and converted to
  floats once per epoch; the progress bar syncs only when it redraws, ``TerminateOnNaN`` every
  ``check_every`` batches.
- **Reported loss** = data loss + ``model.penalty()``, averaged over the epoch's rows (batch losses
  weighted by batch size). Training metrics are averaged the same way over the batches (exact for
  accuracy, mse and mae; r2 is a batch average); validation metrics are computed on all rows at once.
"""

from __future__ import annotations

import math
import os
import sys
import time
from contextlib import nullcontext
from functools import partial

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as device_of

from . import losses as losses_mod
from . import metrics as metrics_mod
from .backends import backend_of, host_array
from .callbacks import Callback, ProgressBar, TerminateOnNaN

__all__ = ["DEVICE_DATA_LIMIT", "History", "evaluate", "fit", "predict", "random_restarts"]

DEVICE_DATA_LIMIT = 256 * 2**20   # bytes of X + y moved to the device in one go
PREDICT_BATCH = 4096              # rows per forward pass when predict/evaluate get no batch_size
SAMPLE_ROWS = 256                 # rows handed to callbacks (Monitor) as a fixed sample


# ------------------------------------------------------------------------------------------------
class History:
    """What ``fit`` returns (also ``model.history``): ``history`` maps each logged key ("loss",
    metrics, "val_loss", "val_<metric>", "lr", "time") to its per-epoch list; ``epoch`` lists
    the recorded epochs (from 0). An epoch interrupted by ``TerminateOnNaN`` is not recorded, so
    every entry describes weights the model really had."""

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def _append(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def __len__(self):
        return len(self.epoch)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"

    def _panels(self, keys):
        if keys is None:
            keys = [k for k in self.history if k not in ("lr", "time")]
        elif isinstance(keys, str):
            keys = [keys]
        unknown = [k for k in keys if k not in self.history]
        if unknown:
            raise ValueError(f"keys {unknown} are not in the history; it has {list(self.history)}")
        panels = []
        for k in keys:
            if k.startswith("val_") and k[4:] in keys:
                continue  # drawn in the panel of its training twin
            panels.append([k] + ([f"val_{k}"] if f"val_{k}" in keys else []))
        return panels

    def plot(self, path=None, keys=None):
        """Plot the per-epoch curves, one panel per quantity with its ``val_`` twin; returns the
        matplotlib Figure. ``path``: write the figure there (PNG unless the suffix says
        otherwise). ``keys``: which logged keys to draw (default: all but "lr" and "time")."""
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ImportError(
                "History.plot needs matplotlib: pip install matplotlib "
                '(or pip install "portable-nn[examples]")'
            ) from None
        panels = self._panels(keys)
        if not panels:
            raise ValueError("nothing to plot: the history is empty")
        size = (4.5 * len(panels), 3.5)
        if path is None:
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=size)
        else:
            from matplotlib.figure import Figure  # no GUI backend needed to write a file

            fig = Figure(figsize=size)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, panel in zip(axes, panels):
            for key in panel:
                ax.plot(self.epoch, self.history[key], marker="o", markersize=3, label=key)
            ax.set_xlabel("epoch")
            ax.set_title(panel[0])
            ax.legend()
        fig.tight_layout()
        if path is not None:
            suffix = os.path.splitext(os.fspath(path))[1]
            fig.savefig(path, format=None if suffix else "png")
        return fig


# argument checks --------------------------------------------------------------------------------
def _int_arg(value, name, low):
    """An int (NumPy ints too, bools not) that is at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _resolve_loss(model, loss):
    """A Loss from an instance or a name; ``None``: the last fit's loss."""
    if loss is None:
        loss = getattr(model, "_fit_loss", None)
        if loss is None:
            raise ValueError("loss is required (a Loss instance or a name such as 'mse')")
        return loss
    return losses_mod.get(loss)


def _resolve_optimizer(model, optimizer):
    """An Optimizer from an instance, name or config; ``None``: ``model.optimizer``."""
    from . import optimizers

    if optimizer is None:
        if model.optimizer is None:
            raise ValueError(
                "optimizer is required (an Optimizer or a name such as 'adam'); it may be left "
                "out only when the model already has one (model.optimizer)"
            )
        return model.optimizer
    return optimizers.get(optimizer)


def _resolve_metrics(metrics, loss):
    """``[(name, fn)]``; accuracy after a logits BCE thresholds at 0."""
    if metrics is None:
        return []
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a list of names or callables, got {metrics!r}")
    out = []
    for spec in metrics:
        fn = metrics_mod.get(spec)
        if fn is metrics_mod.accuracy and getattr(loss, "from_logits", False) and \
                isinstance(loss, losses_mod.BinaryCrossEntropy):
            fn = partial(metrics_mod.accuracy, threshold=0.0)  # σ(z) > 0.5  ⇔  z > 0
        name = metrics_mod.metric_name(spec)
        if name in ("loss", "lr", "time") or name in [n for n, _ in out]:
            raise ValueError(f"metric name {name!r} is reserved or repeated")
        out.append((name, fn))
    return out


def _resolve_callbacks(callbacks, verbose):
    """The user's callbacks plus a default TerminateOnNaN and the progress printer."""
    if callbacks is None:
        callbacks = []
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of Callback, got {type(callbacks).__name__}")
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks[{i}] must be a portable_nn Callback, got "
                            f"{type(cb).__name__}")
    cbs = list(callbacks)
    if not any(isinstance(cb, TerminateOnNaN) for cb in cbs):
        cbs.insert(0, TerminateOnNaN())
    if verbose not in ("auto", 0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    tty = getattr(sys.stdout, "isatty", lambda: False)()
    # a bar redrawn with carriage returns only makes sense on a terminal; in a log file
    # verbose=2 falls back to one line per epoch
    if verbose == 1 or (verbose == 2 and not tty):
        cbs.append(ProgressBar("epoch"))
    elif tty and verbose in (2, "auto"):
        cbs.append(ProgressBar("bar"))
    return cbs


# data checks ------------------------------------------------------------------------------------
def _as_array(model, data, argname):
    """``data`` as an array of the model's backend (kept as is) or as NumPy (anything else)."""
    if model.backend.owns(data):
        xp = model.xp
        if not xp.isdtype(data.dtype, ("bool", "integral", "real floating")):
            raise TypeError(f"{argname} must hold real numbers, got dtype {data.dtype}")
        return data, True
    if data is None:
        raise TypeError(f"{argname} is required, got None")
    try:
        arr = np.asarray(data) if isinstance(data, (list, tuple)) else np.asarray(host_array(data))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{argname} must be a rectangular numeric array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{argname} must hold real numbers, got dtype {arr.dtype}")
    return arr, False


def _check_finite(xp, a, argname):
    """Raise if a floating array has NaN/Inf, naming how many rows and the first one."""
    if not xp.isdtype(a.dtype, "real floating") or a.shape[0] == 0:
        return
    # One reduction and no (n, d) boolean temporary: a finite sum means every element is finite.
    # Only when it is not (NaN/Inf somewhere, or a sum that overflowed) do the exact row check.
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(float(xp.sum(a))):
            return
    rows = a if a.ndim == 2 else xp.reshape(a, (a.shape[0], -1))
    bad = xp.logical_not(xp.all(xp.isfinite(rows), axis=1))
    count = int(xp.sum(xp.astype(bad, xp.int64)))
    if count:
        first = int(xp.argmax(xp.astype(bad, xp.int32)))
        raise ValueError(
            f"{argname} contains NaN or Inf in {count} of {a.shape[0]} rows (first: row {first}); "
            "clean or impute the data before training"
        )


def _features(model, X, argname="X"):
    """X checked (2-D, numbers, rows, finite) as ``(array, on_device)``."""
    arr, on_dev = _as_array(model, X, argname)
    if arr.ndim != 2:
        raise ValueError(
            f"{argname} must be 2-D of shape (samples, features), got shape {tuple(arr.shape)}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{argname} is empty (0 rows): there is nothing to train or predict on")
    _check_finite(array_namespace(arr), arr, argname)
    return arr, on_dev


def _output_width(model, X, on_dev, argname="X"):
    """Run one row through the model (inference mode) to learn the output width; this also checks
    that X has the number of features the first layer expects."""
    x1 = model.backend.asarray(X[:1, ...], dtype=model.dtype_name)
    try:
        out = model.forward(x1, training=False)
    except ValueError as exc:
        raise ValueError(f"{argname} does not fit the model: {exc}") from None
    finally:
        model.clear_cache()
    if out.ndim != 2:
        raise ValueError(f"the model's output must be 2-D (samples, outputs), got {out.ndim}-D")
    return out.shape[1]


def _targets(model, loss, y, n, k, argname="y"):
    """Check ``y`` against ``n`` rows, ``k`` outputs and the loss; returns ``(array, on_device,
    dtype)`` where dtype is what the batches use: int64 class labels, else the model's float."""
    t, on_dev = _as_array(model, y, argname)
    xp = array_namespace(t)
    if t.ndim not in (1, 2):
        raise ValueError(f"{argname} must be 1-D (one label or target per row) or 2-D "
                         f"(samples, outputs), got shape {tuple(t.shape)}")
    if t.shape[0] != n:
        raise ValueError(f"X has {n} rows but {argname} has {t.shape[0]}: they must match")
    _check_finite(xp, t, argname)
    name = type(loss).__name__
    labels = isinstance(loss, losses_mod.CrossEntropy) and t.ndim == 1
    if labels and not xp.isdtype(t.dtype, "integral"):
        raise ValueError(
            f"{argname}: CrossEntropy needs integer class labels of shape ({n},) or one-hot rows "
            f"of shape ({n}, {k}); got 1-D {argname} of dtype {t.dtype}"
        )
    if t.ndim == 1 and not labels:
        if k != 1:
            raise ValueError(
                f"{argname} is 1-D (one target per row), but the model has {k} outputs: {name} "
                f"needs {argname} of shape ({n}, {k})"
            )
        t = xp.reshape(t, (n, 1))
    ftype = getattr(xp, model.dtype_name)
    checked = t if labels or t.dtype == ftype else xp.astype(t, ftype)
    # the loss's own checks, against a prediction-shaped stand-in (a broadcast view: no memory)
    pred_like = xp.broadcast_to(xp.zeros((1, k), dtype=ftype, device=device_of(t)), (n, k))
    try:
        loss.validate(xp, pred_like, checked)
    except ValueError as exc:
        raise ValueError(
            f"{argname} does not fit the model's {k} output(s) and {name}: {exc}"
        ) from None
    if isinstance(loss, losses_mod.BinaryCrossEntropy):
        lo, hi = float(xp.min(checked)), float(xp.max(checked))
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{argname}: BinaryCrossEntropy targets must be in [0, 1], got "
                             f"values from {lo} to {hi}")
    dtype = model.xp.int64 if labels else model.dtype_name
    return t, on_dev, dtype


class _Data:
    """X and targets, on the device (moved once) or on the host (moved one batch at a time)."""

    def __init__(self, model, X, x_dev, t, t_dev, t_dtype):
        self.backend = b = model.backend
        self.n = X.shape[0]
        self.dtype = model.dtype_name
        self.t_dtype = t_dtype
        itemsize = 4 if self.dtype == "float32" else 8
        nbytes = self.n * (X.shape[1] * itemsize + (t.shape[1] if t.ndim == 2 else 1) * 8)
        self.on_device = x_dev or t_dev or nbytes <= DEVICE_DATA_LIMIT
        if self.on_device:
            X, t = b.asarray(X, dtype=self.dtype), b.asarray(t, dtype=t_dtype)
        self.X, self.t = X, t

    def order(self, perm):
        """A host permutation as the index array batches are gathered with."""
        return self.backend.asarray(perm) if self.on_device else perm

    def batch(self, rows):
        """Rows (a slice, or an index array from ``order``) as device arrays."""
        X, t = self.X, self.t
        if self.on_device:
            if isinstance(rows, slice):
                return X[rows, ...], t[rows, ...]
            xp = self.backend.xp
            return xp.take(X, rows, axis=0), xp.take(t, rows, axis=0)
        b = self.backend
        return b.asarray(X[rows, ...], dtype=self.dtype), b.asarray(t[rows, ...], dtype=self.t_dtype)


def _prepare(model, loss, X, y, argname=""):
    """Check X and y together: ``(X, x_on_device, t, t_on_device, t_dtype)``."""
    Xa, x_dev = _features(model, X, f"{argname}X")
    k = _output_width(model, Xa, x_dev, f"{argname}X")
    t, t_dev, t_dtype = _targets(model, loss, y, Xa.shape[0], k, f"{argname}y")
    return Xa, x_dev, t, t_dev, t_dtype


def _check_metrics(model, metric_fns, data):
    """Compute each metric once on a row, so that a metric that cannot work with these targets
    fails before training instead of after the first epoch."""
    if not metric_fns:
        return
    xb, tb = data.batch(slice(0, 1))
    try:
        pred = model.forward(xb, training=False)
    finally:
        model.clear_cache()
    for name, fn in metric_fns:
        try:
            fn(tb, pred)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"metric {name!r} cannot be computed for these targets: {exc}") \
                from None


def _split_count(n, validation_split):
    """Rows kept for training with ``validation_split``: the last ``floor(n · split)`` rows
    validate (not shuffled, as in Keras)."""
    n_train = n - int(n * validation_split + 1e-9)  # 1e-9: 100 · 0.29 is 28.999999999999996
    if n_train < 1 or n - n_train < 1:
        raise ValueError(
            f"validation_split={validation_split} of {n} rows leaves {n_train} for training and "
            f"{n - n_train} for validation; both need at least one row"
        )
    return n_train


def _check_batchnorm(model, n, batch_size):
    """BatchNorm cannot estimate a variance from one row: refuse before training, not mid-way."""
    from .layers.normalization import BatchNorm

    if (batch_size == 1 or n % batch_size == 1) and any(
            isinstance(layer, BatchNorm) for layer in model.layers):
        raise ValueError(
            f"with {n} training rows and batch_size={batch_size} a batch of 1 row occurs, which "
            "BatchNorm cannot train on; choose a batch_size that leaves no single row over"
        )


def _penalty_fn(model):
    """``model.penalty`` when some parameter has a regularizer, else None (skip the call)."""
    if any(p.regularizer is not None for p in model.parameters()):
        return model.penalty
    return None


def _evaluate_data(model, data, loss, metric_fns, batch_size):
    """Loss (batch losses weighted by rows, + penalty) and metrics (on all rows) in inference."""
    xp = model.xp
    total, preds, targets = 0.0, [], []
    try:
        for start in range(0, data.n, batch_size):
            stop = min(data.n, start + batch_size)
            xb, tb = data.batch(slice(start, stop))
            pred = model.forward(xb, training=False)
            total = total + loss._forward(xp, pred, tb) * float(stop - start)
            if metric_fns:
                preds.append(pred)
                targets.append(tb)
    finally:
        model.clear_cache()
    penalty = _penalty_fn(model)
    out = {"loss": float(total) / data.n + (float(penalty()) if penalty else 0.0)}
    if metric_fns:
        P = preds[0] if len(preds) == 1 else xp.concat(preds, axis=0)
        T = targets[0] if len(targets) == 1 else xp.concat(targets, axis=0)
        for name, fn in metric_fns:
            out[name] = float(fn(T, P))
    return out


def _current_lr(optimizer):
    """The rate the next step uses, as a float (None if the optimizer cannot say)."""
    lr = getattr(optimizer, "current_lr", None)
    return float(lr()) if callable(lr) else None


# ------------------------------------------------------------------------------------------------
def fit(model, X, y, *, loss=None, optimizer=None, epochs=1, batch_size=32, shuffle=True,
        validation_split=0.0, validation_data=None, metrics=None, callbacks=None, verbose="auto",
        seed=None):
    """Train ``model`` on ``X`` (samples, features) and ``y``; returns a `History`.

    ``loss`` / ``optimizer``: instances or names ('mse', 'cross_entropy', 'adam', ...); left out,
    the previous fit's loss and ``model.optimizer`` are reused. ``y``: integer labels (n,) or
    one-hot rows for CrossEntropy; targets (n, outputs) otherwise, (n,) when there is one output.
    ``validation_split``: the last fraction of the rows validates (not shuffled);
    ``validation_data=(X_val, y_val)`` instead. ``metrics``: names ('accuracy', 'mse', 'mae',
    'r2') or ``fn(y_true, y_pred) -> 0-d array``. ``callbacks``: `Callback` instances; a
    `TerminateOnNaN` is added unless one is given. ``verbose``: 0 silent, 1 a line per epoch, 2
    a progress bar on a terminal (a line per epoch elsewhere), "auto" a bar on a terminal and
    silent elsewhere. ``seed`` fixes the shuffling.

    Sets ``model.optimizer``, ``model.history`` and ``model.stop_training``. Every check runs
    before training starts: a call that raises leaves the model unchanged.
    """
    loss = _resolve_loss(model, loss)
    optimizer = _resolve_optimizer(model, optimizer)
    epochs = _int_arg(epochs, "epochs", 0)
    batch_size = _int_arg(batch_size, "batch_size", 1)
    if not isinstance(shuffle, bool):
        raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
            or not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be a number in [0, 1), got {validation_split!r}")
    if seed is not None:
        _int_arg(seed, "seed", 0)
    metric_fns = _resolve_metrics(metrics, loss)
    cbs = _resolve_callbacks(callbacks, verbose)
    if validation_data is not None and validation_split:
        raise ValueError("pass either validation_split or validation_data, not both")

    Xa, x_dev, t, t_dev, t_dtype = _prepare(model, loss, X, y)
    val = None
    if validation_split:
        n_train = _split_count(Xa.shape[0], validation_split)
        val = (Xa[n_train:, ...], x_dev, t[n_train:, ...], t_dev)
        Xa, t = Xa[:n_train, ...], t[:n_train, ...]
    elif validation_data is not None:
        if not isinstance(validation_data, (list, tuple)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (X_val, y_val)")
        Xv, xv_dev, tv, tv_dev, _ = _prepare(model, loss, *validation_data, argname="validation ")
        val = (Xv, xv_dev, tv, tv_dev)
    _check_batchnorm(model, Xa.shape[0], batch_size)
    data = _Data(model, Xa, x_dev, t, t_dev, t_dtype)
    vdata = None if val is None else _Data(model, val[0], val[1], val[2], val[3], t_dtype)
    _check_metrics(model, metric_fns, data)

    n, xp, params = data.n, model.xp, model.parameters()
    steps = math.ceil(n / batch_size)
    sample_x, sample_y = data.batch(slice(0, min(n, SAMPLE_ROWS)))
    run_params = {
        "epochs": epochs, "steps": steps, "batch_size": batch_size, "samples": n,
        "metrics": [name for name, _ in metric_fns], "do_validation": vdata is not None,
        "verbose": verbose, "sample": sample_x, "sample_y": sample_y, "loss": loss,
    }
    for cb in cbs:
        cb.check(model, run_params)

    # ---- from here on the model changes ----
    model.optimizer = optimizer
    model.stop_training = False
    model._fit_loss, model._fit_metrics = loss, metric_fns
    history = model.history = History()
    for cb in cbs:
        cb.set_model(model)
        cb.set_params(run_params)
    batch_cbs = [cb for cb in cbs if type(cb).on_batch_end is not Callback.on_batch_end]
    penalty = _penalty_fn(model)
    rng = np.random.default_rng(seed)
    # a diverging run overflows on purpose; TerminateOnNaN reports it instead of NumPy
    guard = any(isinstance(cb, TerminateOnNaN) for cb in cbs)
    quiet = np.errstate(over="ignore", invalid="ignore", divide="ignore") if guard else nullcontext()

    started = []  # callbacks whose on_train_begin ran get their on_train_end, whatever happens
    with quiet:
        try:
            for cb in cbs:
                cb.on_train_begin()
                started.append(cb)
            for epoch in range(epochs):
                t0 = time.perf_counter()
                for cb in cbs:
                    cb.on_epoch_begin(epoch)
                lr = _current_lr(optimizer)
                order = data.order(rng.permutation(n)) if shuffle else None
                sums = {"loss": 0.0, **{name: 0.0 for name, _ in metric_fns}}
                seen, interrupted = 0, False
                for b in range(steps):
                    start, stop = b * batch_size, min(n, (b + 1) * batch_size)
                    xb, yb = data.batch(slice(start, stop) if order is None else order[start:stop])
                    pred = model.forward(xb, training=True)
                    value = loss._forward(xp, pred, yb)
                    if penalty is not None:
                        value = value + penalty()
                    model.backward(loss.backward(), need_input_grad=False)
                    optimizer.step(params)
                    rows = stop - start
                    seen += rows
                    sums["loss"] = sums["loss"] + value * float(rows)
                    for name, fn in metric_fns:
                        sums[name] = sums[name] + fn(yb, pred) * float(rows)
                    if batch_cbs:
                        logs = {"loss": value, "size": rows, "seen": seen, "sums": sums}
                        for cb in batch_cbs:
                            cb.on_batch_end(b, logs)
                        if model.stop_training:
                            interrupted = True
                            break
                if interrupted:
                    break
                logs = {key: float(v) / seen for key, v in sums.items()}
                if vdata is not None:
                    vlogs = _evaluate_data(model, vdata, loss, metric_fns, batch_size)
                    logs.update({f"val_{key}": v for key, v in vlogs.items()})
                if lr is not None:
                    logs["lr"] = lr
                logs["time"] = time.perf_counter() - t0
                history._append(epoch, logs)
                for cb in cbs:
                    cb.on_epoch_end(epoch, dict(logs))
                if model.stop_training:
                    break
        finally:
            model.clear_cache()
            for cb in started:
                cb.on_train_end()
    return history


def evaluate(model, X, y, *, loss=None, metrics=None, batch_size=None):
    """``{"loss": ..., <metric>: ...}`` as floats, in inference mode. ``loss`` and ``metrics``
    default to those of the last ``fit``. The loss includes ``model.penalty()``, like fit's."""
    loss = _resolve_loss(model, loss)
    metric_fns = (getattr(model, "_fit_metrics", None) or []) if metrics is None \
        else _resolve_metrics(metrics, loss)
    batch_size = PREDICT_BATCH if batch_size is None else _int_arg(batch_size, "batch_size", 1)
    data = _Data(model, *_prepare(model, loss, X, y))
    _check_metrics(model, metric_fns, data)
    return _evaluate_data(model, data, loss, metric_fns, batch_size)


def predict(model, X, batch_size=None):
    """The model's output for ``X`` in inference mode (Dropout off, BatchNorm running stats).

    The output follows the input: NumPy arrays or lists give a NumPy array; an array of the
    model's backend gives one of the same backend; another backend's array is answered in kind.
    """
    batch_size = PREDICT_BATCH if batch_size is None else _int_arg(batch_size, "batch_size", 1)
    Xa, x_dev = _features(model, X, "X")
    b = model.backend
    outs = []
    try:
        for start in range(0, Xa.shape[0], batch_size):
            stop = min(Xa.shape[0], start + batch_size)  # strict arrays refuse out-of-range stops
            xb = b.asarray(Xa[start:stop, ...], dtype=model.dtype_name)
            try:
                outs.append(model.forward(xb, training=False))
            except ValueError as exc:
                raise ValueError(f"X does not fit the model: {exc}") from None
    finally:
        model.clear_cache()
    out = outs[0] if len(outs) == 1 else model.xp.concat(outs, axis=0)
    if x_dev:
        return out
    if isinstance(X, (list, tuple, np.ndarray)):
        return b.to_numpy(out)
    try:
        return backend_of(X).asarray(out)
    except TypeError:  # array-likes of no known backend (pandas, ...) get NumPy
        return b.to_numpy(out)


# ------------------------------------------------------------------------------------------------
def random_restarts(build, X, y, *, seeds, **fit_kwargs):
    """Train one model per seed and keep the best: ``(best_model, results)``.

    ``build(seed)`` returns a fresh model; each is trained with ``fit(model, X, y, seed=seed,
    **fit_kwargs)`` (``seed`` in fit_kwargs overrides the shuffling seed). The best has the lowest
    validation loss of the weights it ends with (after any EarlyStopping restore), so a validation
    split or validation data is required. ``results``: one dict per seed, in order, with "seed",
    "val_loss" and "history".
    """
    from . import optimizers

    if not callable(build):
        raise TypeError(f"build must be a callable seed -> model, got {type(build).__name__}")
    seeds = list(seeds) if not isinstance(seeds, (str, bytes)) else None
    if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of ints, got {seeds!r}")
    split = fit_kwargs.get("validation_split", 0.0)
    vdata = fit_kwargs.get("validation_data")
    if vdata is None and not split:
        raise ValueError("random_restarts picks the best model by validation loss: pass "
                         "validation_split=... or validation_data=(X_val, y_val)")
    if vdata is None:
        n = X.shape[0] if hasattr(X, "shape") else len(X)
        n_train = _split_count(n, split)
        tail = [np.asarray(a) if isinstance(a, (list, tuple)) else a for a in (X, y)]
        vdata = (tail[0][n_train:, ...], tail[1][n_train:, ...])
    results, best, best_key = [], None, None
    for seed in seeds:
        model = build(int(seed))
        kwargs = {"seed": int(seed), **fit_kwargs}
        if isinstance(kwargs.get("optimizer"), optimizers.Optimizer):
            # a fresh copy per restart: a shared one would carry Adam's step count, moments and
            # schedule position from one run into the next
            opt = kwargs["optimizer"]
            kwargs["optimizer"] = optimizers.from_config(
                {"class": type(opt).__name__, "config": opt.get_config()})
        history = fit(model, X, y, **kwargs)
        val_loss = evaluate(model, vdata[0], vdata[1], metrics=[],
                            batch_size=kwargs.get("batch_size", 32))["loss"]
        results.append({"seed": int(seed), "val_loss": val_loss, "history": history})
        key = (math.isnan(val_loss), val_loss)
        if best is None or key < best_key:
            best, best_key = model, key
    return best, results

