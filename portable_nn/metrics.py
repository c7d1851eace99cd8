"""Metrics: ``metric(y_true, y_pred, sample_weight=None)`` -> a 0-d array on the arrays' device
(no host sync).

``y_pred`` is the model's output of shape (n, outputs); ``y_true`` holds integer class labels of
shape (n,), one-hot rows of shape (n, classes), or targets of ``y_pred``'s shape (a 1-D ``y_true``
goes with a single-column ``y_pred``). Convert with ``float(metric(...))`` when you need a number.

``sample_weight`` (an (n,) array of the predictions' library, or a list): each row's metric is
weighted, ``Σ_i w_i m_i / Σ_i w_i`` (scikit-learn's ``sample_weight``; integer weights equal
repeating rows). The weights are not checked for sign (that would cost a host sync per batch):
``fit`` checks them once for the whole data set.

Outputs are read with the loss's convention: several columns are scores whose argmax is the class
(logits and probabilities agree); a single column is a score against ``threshold``: 0.5 for a
probability (a sigmoid output, ``BinaryCrossEntropy(from_logits=False)``), 0.0 for a logit
(``BinaryCrossEntropy()``, whose ``σ(z) > 0.5`` is ``z > 0``); ``fit`` passes the right one.

=============  ===============================================================================
``accuracy``   fraction of rows classified right: argmax of ``y_pred`` against the label (or the
               argmax of a one-hot row); with one output column, ``y_pred > threshold`` (0.5, the
               probability; ``fit`` uses 0 when the loss takes logits) against ``y_true > 0.5``
``mse``        mean of ``(y_pred − y_true)²`` over every element
``mae``        mean of ``|y_pred − y_true|`` over every element
``r2``         coefficient of determination ``1 − SS_res / SS_tot`` per output column, averaged
               over the columns (scikit-learn's ``r2_score``; a constant column scores 1 when
               predicted exactly, else 0)
=============  ===============================================================================
"""

from __future__ import annotations

from array_api_compat import array_namespace
from array_api_compat import device as device_of

__all__ = ["accuracy", "get", "mae", "metric_name", "mse", "r2_score"]


def _namespace(y_true, y_pred, sample_weight):
    """The arrays' namespace, and the weights as an (n,) array of y_pred's dtype (or None)."""
    if sample_weight is None or isinstance(sample_weight, (list, tuple)):
        xp = array_namespace(y_true, y_pred)
    else:
        try:
            xp = array_namespace(y_true, y_pred, sample_weight)
        except TypeError:
            raise TypeError(
                f"sample_weight must be an array of the predictions' library, got "
                f"{type(sample_weight).__module__}.{type(sample_weight).__name__}") from None
    if sample_weight is None:
        return xp, None
    w = sample_weight
    if isinstance(w, (list, tuple)):
        w = xp.asarray(w, device=device_of(y_pred))
        if xp.isdtype(w.dtype, ("integral", "real floating")):
            # read again in y_pred's dtype: torch would have read Python floats as float32
            w = xp.asarray(sample_weight, dtype=y_pred.dtype, device=device_of(y_pred))
    if not xp.isdtype(w.dtype, ("integral", "real floating")):
        raise TypeError(f"sample_weight must hold real numbers, got dtype {w.dtype}")
    n = y_pred.shape[0]
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(f"sample_weight must have shape ({n},), one weight per row of y_pred, "
                         f"got {tuple(w.shape)}")
    return xp, (w if w.dtype == y_pred.dtype else xp.astype(w, y_pred.dtype))


def _average(xp, per_row, w):
    """The mean of ``per_row`` (n,), weighted by ``w`` when given."""
    if w is None:
        return xp.mean(per_row)
    return xp.sum(w * per_row) / xp.sum(w)


def _as_pred_shape(xp, y_true, y_pred):
    """``y_true`` as floats of ``y_pred``'s dtype and shape (a 1-D target of a 1-column output is
    reshaped), or a ValueError naming both shapes."""
    t = y_true
    if t.ndim == 1 and y_pred.ndim == 2 and y_pred.shape[1] == 1:
        t = xp.reshape(t, (t.shape[0], 1))
    if tuple(t.shape) != tuple(y_pred.shape):
        raise ValueError(
            f"y_true of shape {tuple(y_true.shape)} does not fit y_pred of shape "
            f"{tuple(y_pred.shape)}"
        )
    return t if t.dtype == y_pred.dtype else xp.astype(t, y_pred.dtype)


def accuracy(y_true, y_pred, threshold=0.5, sample_weight=None):
    """Fraction of correct predictions (0-d array); weighted: ``Σ w_i [right_i] / Σ w_i``.

    Binary when ``y_pred`` has one column (or is 1-D): predicted positive where
    ``y_pred > threshold`` (0.5 for probabilities, 0.0 for logits), true positive where
    ``y_true > 0.5``. Categorical otherwise: the class is ``argmax(y_pred, axis=1)``, compared with
    integer labels or with the argmax of one-hot rows.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"threshold must be a number, got {type(threshold).__name__} "
                        f"{threshold!r}")
    xp, w = _namespace(y_true, y_pred, sample_weight)
    if y_pred.ndim not in (1, 2):
        raise ValueError(f"y_pred must be 1-D or 2-D, got shape {tuple(y_pred.shape)}")
    n = y_pred.shape[0]
    if y_true.shape[0] != n:
        raise ValueError(f"y_true has {y_true.shape[0]} rows but y_pred has {n}")
    ftype = y_pred.dtype
    if y_pred.ndim == 1 or y_pred.shape[1] == 1:
        p = xp.reshape(y_pred, (n,))
        t = xp.reshape(y_true, (-1,))
        if t.shape[0] != n:
            raise ValueError(
                f"binary accuracy needs one target per row, got y_true of shape "
                f"{tuple(y_true.shape)}"
            )
        # labels may be integers; compare them as floats (no int/float mixing on strict arrays)
        t = t if t.dtype == ftype else xp.astype(t, ftype)
        correct = (p > threshold) == (t > 0.5)
    else:
        k = y_pred.shape[1]
        if y_true.ndim == 2:
            if y_true.shape[1] != k:
                raise ValueError(
                    f"one-hot y_true has {y_true.shape[1]} columns but y_pred has {k}"
                )
            t = xp.argmax(y_true, axis=1)
        elif y_true.ndim == 1:
            t = y_true if xp.isdtype(y_true.dtype, "integral") else xp.astype(y_true, xp.int64)
        else:
            raise ValueError(f"y_true must be labels or one-hot rows, got shape {tuple(y_true.shape)}")
        pred_cls = xp.argmax(y_pred, axis=1)
        if t.dtype != pred_cls.dtype:
            t = xp.astype(t, pred_cls.dtype)
        correct = pred_cls == t
    return _average(xp, xp.astype(correct, ftype), w)


def _row_means(xp, e):
    """Each row's mean of an (n, m) array, or the (n,) array itself."""
    return e if e.ndim == 1 else xp.mean(e, axis=1)


def mse(y_true, y_pred, sample_weight=None):
    """Mean squared error over every element (0-d array); weighted: ``Σ w_i mse_i / Σ w_i``
    with ``mse_i`` the row's mean (scikit-learn's ``mean_squared_error`` with sample_weight)."""
    xp, w = _namespace(y_true, y_pred, sample_weight)
    d = y_pred - _as_pred_shape(xp, y_true, y_pred)
    return xp.mean(d * d) if w is None else _average(xp, _row_means(xp, d * d), w)


def mae(y_true, y_pred, sample_weight=None):
    """Mean absolute error over every element (0-d array); weighted as ``mse``."""
    xp, w = _namespace(y_true, y_pred, sample_weight)
    e = xp.abs(y_pred - _as_pred_shape(xp, y_true, y_pred))
    return xp.mean(e) if w is None else _average(xp, _row_means(xp, e), w)


def r2_score(y_true, y_pred, sample_weight=None):
    """``1 − Σ w(t − y)² / Σ w(t − t̄)²`` per column (``t̄`` the weighted mean; ``w = 1`` without
    weights), averaged over columns (0-d array), as scikit-learn's ``r2_score``."""
    xp, w = _namespace(y_true, y_pred, sample_weight)
    pred = y_pred if y_pred.ndim == 2 else xp.reshape(y_pred, (-1, 1))
    t = _as_pred_shape(xp, y_true, pred)
    if w is None:
        ss_res = xp.sum((t - pred) ** 2, axis=0)
        centred = t - xp.mean(t, axis=0)
        ss_tot = xp.sum(centred * centred, axis=0)
    else:
        wc = w[:, None]
        ss_res = xp.sum(wc * (t - pred) ** 2, axis=0)
        centred = t - xp.sum(wc * t, axis=0) / xp.sum(w)
        ss_tot = xp.sum(wc * centred * centred, axis=0)
    ones = xp.ones_like(ss_tot)
    varying = ss_tot > 0.0
    # divide only where the column varies (no 0/0 warning); constant columns score 1 or 0
    score = 1.0 - ss_res / xp.where(varying, ss_tot, ones)
    exact = xp.where(ss_res == 0.0, ones, xp.zeros_like(ss_tot))
    return xp.mean(xp.where(varying, score, exact))


_BY_NAME = {
    "accuracy": accuracy, "acc": accuracy,
    "mse": mse, "mean_squared_error": mse,
    "mae": mae, "mean_absolute_error": mae,
    "r2": r2_score, "r2_score": r2_score,
}


def get(spec):
    """A metric function from a name ('accuracy', 'mse', 'mae', 'r2') or a callable."""
    if callable(spec):
        return spec
    if isinstance(spec, str) and spec.lower() in _BY_NAME:
        return _BY_NAME[spec.lower()]
    raise ValueError(
        f"metric must be a callable or one of {sorted(_BY_NAME)}, got {spec!r}"
    )


def metric_name(spec):
    """The key a metric is logged under: the name as given, or the function's ``__name__``."""
    if isinstance(spec, str):
        return spec
    return getattr(spec, "__name__", type(spec).__name__)
