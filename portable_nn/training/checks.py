"""Everything ``fit``, ``evaluate`` and ``predict`` check before they change anything: arguments,
and data (shapes, numbers, values in the model's dtype, labels against the output layer, weights).

Data checks run once per call on the whole data set, on the host or with a few syncs on the
device, so that the loop itself runs without any. Each raises ``ValueError``/``TypeError`` naming
the argument and what was expected.
"""

from __future__ import annotations

import inspect
import math
import sys
import warnings
from functools import partial

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as device_of

from .. import losses as losses_mod
from .. import metrics as metrics_mod
from ..backends import host_array
from ..callbacks import Callback, ProgressBar, TerminateOnNaN

__all__ = ["LogitsWarning"]

# the largest finite value of each float dtype: data beyond it would become inf in the model
_LIMIT = {"float32": float(np.finfo(np.float32).max), "float64": float(np.finfo(np.float64).max)}


class LogitsWarning(UserWarning):
    """A loss that expects logits follows a Sigmoid/Softmax output (or the reverse)."""


# arguments ----------------------------------------------------------------------------------------
def int_arg(value, name, low):
    """An int (NumPy ints too, bools not) that is at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def resolve_loss(model, loss):
    """A Loss from an instance or a name; ``None``: the last fit's loss."""
    if loss is None:
        loss = getattr(model, "_fit_loss", None)
        if loss is None:
            raise ValueError("loss is required (a Loss instance or a name such as 'mse')")
    else:
        loss = losses_mod.get(loss)
    check = getattr(loss, "check_protocol", None)
    if callable(check):
        check()  # a user's loss that implements neither protocol says so before training
    return loss


def resolve_optimizer(model, optimizer):
    """An Optimizer from an instance, name or config; ``None``: ``model.optimizer``."""
    from .. import optimizers

    if optimizer is None:
        if model.optimizer is None:
            raise ValueError(
                "optimizer is required (an Optimizer or a name such as 'adam'); it may be left "
                "out only when the model already has one (model.optimizer)"
            )
        return model.optimizer
    return optimizers.get(optimizer)


def _takes_sample_weight(fn):
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "sample_weight" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def resolve_metrics(metrics, loss):
    """``[(name, fn, takes_weights)]``. Outputs are read with the loss's convention: accuracy
    on one logit column (BCE from logits) thresholds at 0, since σ(z) > 0.5 ⇔ z > 0."""
    if metrics is None:
        return []
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a list of names or callables, got {metrics!r}")
    out = []
    for spec in metrics:
        fn = metrics_mod.get(spec)
        if fn is metrics_mod.accuracy and getattr(loss, "expects_logits", False) and \
                isinstance(loss, losses_mod.BinaryCrossEntropy):
            fn = partial(metrics_mod.accuracy, threshold=0.0)
        name = metrics_mod.metric_name(spec)
        if name in ("loss", "lr", "time") or name in [n for n, _, _ in out]:
            raise ValueError(f"metric name {name!r} is reserved or repeated")
        out.append((name, fn, _takes_sample_weight(fn)))
    return out


def metric_value(fn, y, pred, w):
    """``fn(y, pred)`` weighted by ``w`` (a 1-D array or None)."""
    return fn(y, pred) if w is None else fn(y, pred, sample_weight=w)


def check_metric_weights(metric_fns, weighted):
    if weighted:
        for name, _, takes in metric_fns:
            if not takes:
                raise ValueError(
                    f"metric {name!r} does not take sample_weight, but the data is weighted "
                    "(sample_weight or class_weight): give it a sample_weight=None argument")


def resolve_callbacks(callbacks, verbose):
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


def last_leaf(model):
    """The layer that produces the model's output (through nested chains), or None when a
    branch or skip connection does."""
    from ..layers.containers import Sequential

    layer = model
    while isinstance(layer, Sequential) and layer.layers:
        layer = layer.layers[-1]
    return None if layer is model or isinstance(layer, Sequential) else layer


def warn_logits_convention(model, loss, stacklevel=3):
    """Warn, as Keras does, when the loss and the output layer disagree about logits: a loss
    that takes logits after a Sigmoid/Softmax trains against the wrong function (softmax applied
    twice), and one that takes probabilities after a plain Dense clips logits into [0, 1]."""
    from ..layers import Dense, Sigmoid, Softmax

    if not isinstance(loss, (losses_mod.CrossEntropy, losses_mod.BinaryCrossEntropy)):
        return
    last = last_leaf(model)
    name = type(loss).__name__
    if loss.from_logits and isinstance(last, (Sigmoid, Softmax)):
        warnings.warn(
            f"{name}(from_logits=True) expects logits, but the model ends with a "
            f"{type(last).__name__} layer, whose outputs are probabilities: the loss would "
            f"apply {'softmax' if isinstance(last, Softmax) else 'the sigmoid'} a second time. "
            f"Use {name}(from_logits=False), or drop the {type(last).__name__} layer (the "
            "stable choice: the loss fuses it).",
            LogitsWarning, stacklevel=stacklevel)
    elif not loss.from_logits and isinstance(last, Dense):
        warnings.warn(
            f"{name}(from_logits=False) expects probabilities, but the model ends with a Dense "
            f"layer, whose outputs are logits (any real number): add a "
            f"{'Softmax' if isinstance(loss, losses_mod.CrossEntropy) else 'Sigmoid'} layer, or "
            f"use {name}(from_logits=True).",
            LogitsWarning, stacklevel=stacklevel)


# data ---------------------------------------------------------------------------------------------
def as_array(model, data, argname):
    """``(array, on_device)``: ``data`` as an array of the model's backend (kept as it is) or as
    NumPy (anything else: lists, NumPy, other libraries' arrays)."""
    if model.backend.owns(data):
        xp = model.xp
        if not xp.isdtype(data.dtype, ("bool", "integral", "real floating")):
            raise TypeError(f"{argname} must hold real numbers, got dtype {data.dtype}")
        return model.backend.admit(data), True  # (a torch tensor comes detached)
    if data is None:
        raise TypeError(f"{argname} is required, got None")
    try:
        arr = np.asarray(data) if isinstance(data, (list, tuple)) else np.asarray(host_array(data))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{argname} must be a rectangular numeric array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{argname} must hold real numbers, got dtype {arr.dtype}")
    return arr, False


def check_numbers(a, argname, dtype_name):
    """Raise if a floating array has NaN/Inf (naming how many rows and the first one) or values
    that the model's float dtype cannot hold (they would turn into inf there)."""
    xp = array_namespace(a)
    if a.shape[0] == 0 or not xp.isdtype(a.dtype, ("real floating", "integral")):
        return
    limit = _LIMIT[dtype_name]
    # two reductions and no temporary of a's size; NaN propagates through both
    with np.errstate(over="ignore", invalid="ignore"):
        top = max(float(xp.max(a)), -float(xp.min(a)))
    if math.isfinite(top) and top <= limit:
        return
    if xp.isdtype(a.dtype, "real floating"):
        rows = a if a.ndim == 2 else xp.reshape(a, (a.shape[0], -1))
        bad = xp.logical_not(xp.all(xp.isfinite(rows), axis=1))
        count = int(xp.sum(xp.astype(bad, xp.int64)))
        if count:
            first = int(xp.argmax(xp.astype(bad, xp.int32)))
            raise ValueError(
                f"{argname} contains NaN or Inf in {count} of {a.shape[0]} rows (first: row "
                f"{first}); clean or impute the data before training"
            )
    raise ValueError(
        f"{argname} has values up to {top:.3g} in magnitude, beyond the largest {dtype_name} "
        f"({limit:.3g}): they would become inf in the model's dtype; scale the data, or use "
        "dtype='float64'"
    )


def features(model, X, argname="X"):
    """X checked (rows, numbers, finite in the model's dtype) as ``(array, on_device)``. A model
    whose first layer takes integer indices (``Embedding``) takes integer X of any rank."""
    arr, on_dev = as_array(model, X, argname)
    xp = array_namespace(arr)
    if model.integer_input:
        if arr.ndim < 1 or not xp.isdtype(arr.dtype, "integral"):
            raise TypeError(
                f"{argname} must be integer indices of shape (samples, ...) for a model that "
                f"starts with {type(model.layers[0]).__name__}, got dtype {arr.dtype} of shape "
                f"{tuple(arr.shape)}")
    elif arr.ndim < 2:
        raise ValueError(
            f"{argname} must be at least 2-D, of shape (samples, features) or (samples, "
            f"channels, ...), got shape {tuple(arr.shape)}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{argname} is empty (0 rows): there is nothing to train or predict on")
    if not model.integer_input:
        check_numbers(arr, argname, model.dtype_name)
    return arr, on_dev


def input_dtype(model):
    """The dtype batches of X are given to the model in: int64 indices, else the model's."""
    return model.xp.int64 if model.integer_input else model.dtype_name


def output_width(model, X, argname="X"):
    """Run one row through the model (inference mode) to learn the output width; this also checks
    that X fits the model (feature count, channels, index range)."""
    x1 = model.backend.asarray(X[:1, ...], dtype=input_dtype(model))
    try:
        out = model.forward(x1, training=False)
    except ValueError as exc:
        raise ValueError(f"{argname} does not fit the model: {exc}") from None
    finally:
        model.clear_cache()
    if out.ndim != 2:
        raise ValueError(f"the model's output must be 2-D (samples, outputs), got shape "
                         f"{tuple(out.shape)}: end it with Flatten or a global pooling layer")
    return out.shape[1]


def targets(model, loss, y, n, k, argname="y"):
    """Check ``y`` against ``n`` rows, ``k`` outputs and the loss; returns ``(array, on_device,
    dtype)`` where dtype is what the batches use: int64 class labels, else the model's float."""
    t, on_dev = as_array(model, y, argname)
    xp = array_namespace(t)
    if t.ndim not in (1, 2):
        raise ValueError(f"{argname} must be 1-D (one label or target per row) or 2-D "
                         f"(samples, outputs), got shape {tuple(t.shape)}")
    if t.shape[0] != n:
        raise ValueError(f"X has {n} rows but {argname} has {t.shape[0]}: they must match")
    check_numbers(t, argname, model.dtype_name)
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
    dtype = model.xp.int64 if labels else model.dtype_name
    return t, on_dev, dtype


def _class_labels(loss, t, argname):
    """Host integer labels of each row, for class weights: CrossEntropy's labels (or the argmax
    of one-hot rows), BinaryCrossEntropy's 0/1 targets of one output."""
    h = host_array(t)
    if isinstance(loss, losses_mod.CrossEntropy):
        return h.astype(np.int64) if h.ndim == 1 else np.argmax(h, axis=1)
    if isinstance(loss, losses_mod.BinaryCrossEntropy) and h.ndim == 2 and h.shape[1] == 1:
        col = h[:, 0]
        if np.all((col == 0) | (col == 1)):
            return col.astype(np.int64)
    raise ValueError(
        f"class_weight needs class labels: integer labels or one-hot rows with CrossEntropy, or "
        f"0/1 targets of one output with BinaryCrossEntropy; {argname} with "
        f"{type(loss).__name__} has none")


def class_weights(class_weight, labels, num_classes):
    """Per-row weights from ``{label: weight}`` or ``"balanced"`` (scikit-learn's
    ``n_samples / (n_classes · count(label))``, over the classes present)."""
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be a dict {{label: weight}} or 'balanced', got "
                             f"{class_weight!r}")
        present, counts = np.unique(labels, return_counts=True)
        table = dict(zip(present.tolist(), (labels.shape[0] / (present.size * counts)).tolist()))
    elif isinstance(class_weight, dict):
        table = {}
        for label, weight in class_weight.items():
            if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or \
                    not 0 <= label < num_classes:
                raise ValueError(f"class_weight: {label!r} is not a class label of this model "
                                 f"(labels are 0 to {num_classes - 1})")
            if isinstance(weight, bool) or not isinstance(weight, (int, float, np.number)) or \
                    not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"class_weight[{label!r}] must be a finite number >= 0, got "
                                 f"{weight!r}")
            table[int(label)] = float(weight)
    else:
        raise TypeError(f"class_weight must be a dict {{label: weight}} or 'balanced', got "
                        f"{type(class_weight).__name__}")
    lookup = np.ones(num_classes)  # a class the dict leaves out weighs 1, as in Keras
    for label, weight in table.items():
        lookup[label] = weight
    return lookup[labels]


def sample_weights(sample_weight, class_weight, loss, t, n, k, argname="sample_weight"):
    """The rows' weights as a host float64 array (``None`` when neither is given):
    ``sample_weight`` times the class weight of each row's label."""
    if sample_weight is None and class_weight is None:
        return None
    w = np.ones(n)
    if sample_weight is not None:
        arr = np.asarray(host_array(sample_weight)) if not isinstance(sample_weight, (list, tuple)) \
            else np.asarray(sample_weight)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{argname} must hold real numbers, got dtype {arr.dtype}")
        if arr.shape != (n,):
            raise ValueError(f"{argname} must be 1-D with one weight per row ({n}), got shape "
                             f"{arr.shape}")
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(f"{argname} must be finite and >= 0")
        w = arr
    if class_weight is not None:
        w = w * class_weights(class_weight, _class_labels(loss, t, "y"),
                              k if isinstance(loss, losses_mod.CrossEntropy) else 2)
    if not w.sum() > 0:
        raise ValueError(f"the weights of the rows ({argname} times class_weight) sum to 0: "
                         "nothing would be learned")
    return w
