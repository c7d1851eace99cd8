"""Data utilities on the host: one-hot labels, a train/test split, standardisation, batches.

Everything here takes and returns NumPy arrays (lists are accepted as input); ``fit`` moves the
result to the model's device. Randomness comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Standardizer", "batches", "one_hot", "train_test_split"]


def _numeric(x, argname, ndim=None):
    """``x`` as a NumPy array of numbers with one of the allowed ``ndim``."""
    try:
        arr = np.asarray(x)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"{argname} must be a rectangular numeric array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{argname} must hold numbers, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim not in ndim:
        raise ValueError(
            f"{argname} must be {' or '.join(f'{d}-D' for d in ndim)}, got shape {arr.shape}"
        )
    return arr


def _check_seed(seed):
    """Raise unless ``seed`` is an int or None."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int or None, got {seed!r}")


def one_hot(labels, num_classes=None, dtype="float32"):
    """Integer labels of shape (n,) -> rows of shape (n, num_classes) with a 1 at each label.

    ``num_classes`` defaults to ``max(labels) + 1``; labels must lie in ``[0, num_classes)``.
    """
    arr = _numeric(labels, "labels", ndim=(1,))
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError("labels must be whole numbers (class indices)")
        arr = arr.astype(np.int64)
    if num_classes is None:
        if arr.size == 0:
            raise ValueError("num_classes is required when labels is empty")
        num_classes = int(arr.max()) + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"num_classes must be an int, got {num_classes!r}")
    num_classes = int(num_classes)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(
            f"labels must be in [0, {num_classes - 1}] for num_classes={num_classes}, got "
            f"labels from {arr.min()} to {arr.max()}"
        )
    out = np.zeros((arr.shape[0], num_classes), dtype=dtype)
    out[np.arange(arr.shape[0]), arr.astype(np.intp)] = 1
    return out


def train_test_split(X, y=None, test_size=0.2, seed=None, shuffle=True):
    """Split rows into a training and a test part: ``X_train, X_test, y_train, y_test``
    (``X_train, X_test`` without ``y``).

    ``test_size`` is a fraction in (0, 1) (the test part gets ``ceil(test_size * n)`` rows) or a
    row count. With ``shuffle=False`` the last rows are the test part.
    """
    Xa = np.asarray(X)
    if Xa.ndim < 1:
        raise ValueError("X must have one row per sample, got a scalar")
    n = Xa.shape[0]
    ya = None
    if y is not None:
        ya = np.asarray(y)
        if ya.ndim < 1 or ya.shape[0] != n:
            raise ValueError(f"X has {n} rows but y has {ya.shape[0] if ya.ndim else 0}")
    _check_seed(seed)
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)):
        raise TypeError(f"test_size must be a fraction or a row count, got {test_size!r}")
    if isinstance(test_size, float):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"test_size as a fraction must be in (0, 1), got {test_size}")
        n_test = math.ceil(test_size * n)
    else:
        n_test = test_size
    if not 1 <= n_test < n:
        raise ValueError(
            f"test_size={test_size!r} leaves {n_test} test and {n - n_test} training rows out of "
            f"{n}; both parts need at least one row"
        )
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    train, test = order[: n - n_test], order[n - n_test:]
    if ya is None:
        return Xa[train], Xa[test]
    return Xa[train], Xa[test], ya[train], ya[test]


class Standardizer:
    """Per-column ``z = (x − mean) / std`` (population std), fitted on the training data.

    A column with zero spread is only centred (its scale is 1), so it maps to zeros instead of
    dividing by zero. Float input keeps its dtype; integer input becomes float64.
    """

    def __init__(self):
        self.mean_ = None
        self.scale_ = None

    def fit(self, X):
        """Learn ``mean_`` and ``scale_`` from the rows of ``X`` (n, features); returns self."""
        arr = _numeric(X, "X", ndim=(2,))
        if arr.shape[0] == 0:
            raise ValueError("X is empty: Standardizer needs at least one row to fit")
        if not np.all(np.isfinite(arr)):
            raise ValueError("X contains NaN or Inf; Standardizer needs finite values")
        arr = arr.astype(np.float64)
        self.mean_ = arr.mean(axis=0)
        std = arr.std(axis=0)
        self.scale_ = np.where(std > 0.0, std, 1.0)
        return self

    def _check(self, X):
        """``X`` as an array that fits the fitted columns, and the dtype to return."""
        if self.mean_ is None:
            raise RuntimeError("Standardizer is not fitted: call fit(X) first")
        arr = _numeric(X, "X", ndim=(2,))
        if arr.shape[1] != self.mean_.shape[0]:
            raise ValueError(
                f"X has {arr.shape[1]} columns, the Standardizer was fitted on "
                f"{self.mean_.shape[0]}"
            )
        return arr, (arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64))

    def transform(self, X):
        """``(X − mean_) / scale_``."""
        arr, dt = self._check(X)
        return ((arr - self.mean_) / self.scale_).astype(dt, copy=False)

    def fit_transform(self, X):
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)

    def inverse_transform(self, Z):
        """``Z * scale_ + mean_``: back to the original units."""
        arr, dt = self._check(Z)
        return (arr * self.scale_ + self.mean_).astype(dt, copy=False)


def batches(X, y=None, batch_size=32, shuffle=False, seed=None):
    """Iterate over ``(X_batch, y_batch)`` (or ``X_batch`` without ``y``) of ``batch_size`` rows;
    the last batch holds the remainder. ``shuffle`` draws a new order from ``seed``."""
    Xa = np.asarray(X)
    if Xa.ndim < 1:
        raise ValueError("X must have one row per sample, got a scalar")
    ya = None if y is None else np.asarray(y)
    if ya is not None and (ya.ndim < 1 or ya.shape[0] != Xa.shape[0]):
        raise ValueError(f"X has {Xa.shape[0]} rows but y has {ya.shape[0] if ya.ndim else 0}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"batch_size must be an int, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_seed(seed)
    return _batch_iter(Xa, ya, batch_size, shuffle, seed)


def _batch_iter(Xa, ya, batch_size, shuffle, seed):
    """The generator behind ``batches`` (arguments already checked)."""
    n = Xa.shape[0]
    order = np.random.default_rng(seed).permutation(n) if shuffle else None
    for start in range(0, n, batch_size):
        rows = slice(start, start + batch_size) if order is None else order[start:start + batch_size]
        yield Xa[rows] if ya is None else (Xa[rows], ya[rows])
