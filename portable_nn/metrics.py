"""Metrics: ``metric(y_true, y_pred)`` -> a 0-d array on the arrays' device (no host sync).

``y_pred`` is the model's output of shape (n, outputs); ``y_true`` holds integer class labels of
shape (n,), one-hot rows of shape (n, classes), or targets of ``y_pred``'s shape (a 1-D ``y_true``
goes with a single-column ``y_pred``). Convert with ``float(metric(...))`` when you need a number.

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

__all__ = ["accuracy", "get", "mae", "metric_name", "mse", "r2_score"]


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


def accuracy(y_true, y_pred, threshold=0.5):
    """Fraction of correct predictions (0-d array).

    Binary when ``y_pred`` has one column (or is 1-D): predicted positive where
    ``y_pred > threshold``, true positive where ``y_true > 0.5``. Categorical otherwise: the class
    is ``argmax(y_pred, axis=1)``, compared with integer labels or with the argmax of one-hot rows.
    """
    xp = array_namespace(y_true, y_pred)
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
    return xp.mean(xp.astype(correct, ftype))


def mse(y_true, y_pred):
    """Mean squared error over every element (0-d array)."""
    xp = array_namespace(y_true, y_pred)
    d = y_pred - _as_pred_shape(xp, y_true, y_pred)
    return xp.mean(d * d)


def mae(y_true, y_pred):
    """Mean absolute error over every element (0-d array)."""
    xp = array_namespace(y_true, y_pred)
    return xp.mean(xp.abs(y_pred - _as_pred_shape(xp, y_true, y_pred)))


def r2_score(y_true, y_pred):
    """``1 − Σ(t − y)² / Σ(t − mean t)²`` per column, averaged over columns (0-d array)."""
    xp = array_namespace(y_true, y_pred)
    pred = y_pred if y_pred.ndim == 2 else xp.reshape(y_pred, (-1, 1))
    t = _as_pred_shape(xp, y_true, pred)
    ss_res = xp.sum((t - pred) ** 2, axis=0)
    centred = t - xp.mean(t, axis=0)
    ss_tot = xp.sum(centred * centred, axis=0)
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
