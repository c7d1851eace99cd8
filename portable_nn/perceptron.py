"""The classic perceptron (Rosenblatt, 1958) and its learning rule.

For a sample ``x_j`` with class ``C_j`` in {0, 1} the prediction is a step of a weighted sum,

    P(x_j) = step(w · x_j + b),   step(z) = 1 if z >= 0 else 0,

and after each sample the weights move by

    w ← w + r (C_j − P(x_j)) x_j,     b ← b + r (C_j − P(x_j)).

A correct prediction changes nothing; a mistake tilts the line towards the missed sample. On
linearly separable data the rule stops making mistakes after finitely many updates (Novikoff's
theorem); on XOR it never does, and ``fit`` warns with a `ConvergenceWarning`.

The step has a zero derivative, so there is no backpropagation here: this is the rule the course
starts from, not a layer. The per-sample loop is the rule itself; the arithmetic runs on the chosen
backend and the host sees one number per epoch (the mistake count).
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from .backends import get_backend, host_array

__all__ = ["ConvergenceWarning", "Perceptron"]


class ConvergenceWarning(UserWarning):
    """A learning algorithm stopped at its iteration limit before it converged."""


_NONE = object()


def _host_numbers(x, name):
    """``x`` as a NumPy array of real numbers (bool, int or float), or a TypeError naming
    ``name``: NumPy would turn strings into floats and drop imaginary parts without asking."""
    try:
        a = np.asarray(host_array(x))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of real numbers, got {type(x).__name__}: "
                        f"{exc}") from None
    if a.dtype.kind == "O":  # lists mixing numbers with None, strings, ...
        bad = next((v for v in a.flat if not isinstance(v, numbers.Real)), _NONE)
        if bad is not _NONE:
            raise TypeError(f"{name} must hold real numbers, got an element {bad!r} of type "
                            f"{type(bad).__name__}")
        a = a.astype(np.float64)
    if a.dtype.kind not in "biuf":
        what = {"c": "complex numbers", "U": "strings", "S": "bytes", "M": "datetimes",
                "m": "time deltas"}.get(a.dtype.kind, f"dtype {a.dtype}")
        raise TypeError(f"{name} must hold real numbers (bool, int or float), got {what}")
    return a


def _host_X(X, dtype, name="X"):
    """``X`` as a finite 2-D float64 NumPy array whose values fit ``dtype`` (the dtype the
    perceptron computes in), or a ValueError/TypeError naming the problem."""
    a = _host_numbers(X, name)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {a.shape}; "
                         "reshape one sample x to (1, features) with x[None, :]")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must have at least one sample and one feature, got shape "
                         f"{a.shape}")
    a = a.astype(np.float64, copy=False)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    _check_fits(float(np.max(np.abs(a))), dtype, name)
    return a


def _check_fits(largest, dtype, name):
    limit = float(np.finfo(dtype).max)
    if largest > limit:
        raise ValueError(f"{name} holds values up to {largest:.3g}, beyond {dtype}'s largest "
                         f"{limit:.3g} (the dtype the perceptron computes in): scale {name} "
                         "(e.g. pnn.data.standardize) or use dtype='float64'")


def _host_labels(y, n):
    """0/1 labels (ints, floats or bools) as an int64 NumPy vector of length ``n``."""
    a = _host_numbers(y, "y")
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"y must be a vector of {n} labels (one per row of X), got shape "
                         f"{a.shape}")
    if not np.all(np.isin(a, (0, 1))):
        raise ValueError("y must contain only the class labels 0 and 1 (the perceptron is a "
                         f"binary classifier), got values {np.unique(a)[:5].tolist()}")
    return a.astype(np.int64)


class Perceptron:
    """A single perceptron trained sample by sample with the perceptron rule.

    ``Perceptron(learning_rate=1.0, max_epochs=100, device="cpu", dtype="float64", seed=None)``

    Weights and bias start at zero. ``seed=None`` visits the samples in their given order every
    epoch (the textbook run, reproducible by hand); an int shuffles the order anew each epoch with a
    generator seeded by it. Training stops after the first epoch without a mistake.

    After ``fit``: ``weights`` (features,) and ``bias`` (a 0-d array), both arrays of the chosen
    backend; ``converged_`` (an epoch without mistakes was reached), ``n_epochs_`` (epochs run),
    ``errors_`` (mistakes in each epoch, a list of ints), ``n_features_in_``.
    """

    def __init__(self, learning_rate=1.0, max_epochs=100, device="cpu", dtype="float64",
                 seed=None):
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)):
            raise TypeError(f"learning_rate must be a positive finite number, got "
                            f"{type(learning_rate).__name__} {learning_rate!r}")
        if not (math.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive finite number, got "
                             f"{learning_rate!r}")
        if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
            raise ValueError(f"max_epochs must be an int >= 1, got {max_epochs!r}")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        self.backend = get_backend(device)
        self.learning_rate = float(learning_rate)
        self.max_epochs = max_epochs
        self.device = self.backend.device_string
        self.dtype = dtype
        self.seed = seed
        self.weights = None
        self.bias = None
        self.converged_ = False
        self.n_epochs_ = 0
        self.errors_ = []

    def fit(self, X, y):
        """Run the perceptron rule on ``X`` (n, features) and labels ``y`` in {0, 1}; returns self.

        Stops after the first epoch without a mistake, or after ``max_epochs`` with a
        `ConvergenceWarning` (then ``converged_`` is False). Bad input raises before anything
        changes.
        """
        Xh = _host_X(X, self.dtype)
        yh = _host_labels(y, Xh.shape[0])
        backend, xp = self.backend, self.backend.xp
        Xd = backend.asarray(Xh, dtype=self.dtype)
        yd = backend.asarray(yh, dtype=self.dtype)
        w = xp.zeros(Xh.shape[1], dtype=backend.dtype(self.dtype), device=backend.device)
        b = xp.zeros((), dtype=backend.dtype(self.dtype), device=backend.device)
        r = self.learning_rate
        order_rng = None if self.seed is None else np.random.default_rng(self.seed)
        errors, converged = [], False
        # an overflow is reported below, naming its cause, instead of as NumPy warnings
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(self.max_epochs):
                n = Xh.shape[0]
                order = range(n) if order_rng is None else order_rng.permutation(n)
                mistakes = xp.zeros((), dtype=backend.dtype(self.dtype), device=backend.device)
                for j in order:
                    j = int(j)
                    x_j = Xd[j, :]
                    p = xp.astype(xp.sum(x_j * w) + b >= 0.0, w.dtype)
                    delta = yd[j] - p  # C_j − P(x_j): 0 when right, ±1 when wrong
                    # always applied (a zero update when right): no host round trip per sample
                    w = w + (r * delta) * x_j
                    b = b + r * delta
                    mistakes = mistakes + xp.abs(delta)
                errors.append(round(float(mistakes)))  # the one host sync per epoch
                if errors[-1] == 0:
                    converged = True
                    break
        if not bool(xp.all(xp.isfinite(w)) & xp.isfinite(b)):
            # X fits the dtype, but the updates r·x_j or their sums did not
            raise ValueError(
                f"the perceptron's weights overflowed {self.dtype} on X (values up to "
                f"{float(np.max(np.abs(Xh))):.3g}, learning_rate {self.learning_rate:.3g}): "
                "scale X (e.g. pnn.data.standardize), lower learning_rate or use "
                "dtype='float64'; the perceptron was left as it was"
            )
        # NumPy turns 0-d results into scalars; keep the bias an array of the backend
        self.weights, self.bias = w, xp.asarray(b)
        self.errors_, self.n_epochs_, self.converged_ = errors, len(errors), converged
        self.n_features_in_ = Xh.shape[1]
        if not converged:
            warnings.warn(
                f"the perceptron made {errors[-1]} mistake(s) in its last epoch and did not "
                f"converge in max_epochs={self.max_epochs}: the data may not be linearly "
                "separable (XOR is not), or it needs more epochs",
                ConvergenceWarning, stacklevel=2,
            )
        return self

    def _check_fitted(self):
        """Raise before ``fit`` has run."""
        if self.weights is None:
            raise RuntimeError("this Perceptron is not fitted yet: call fit(X, y) first")

    def decision_function(self, X):
        """``w · x + b`` for each row of ``X`` (NumPy in, NumPy out; a backend array in, a
        backend array out). ``X`` is checked as in ``fit`` (2-D, real, finite, fitting the
        dtype) and must have the features it was fitted on."""
        self._check_fitted()
        if self.backend.owns(X) and not isinstance(X, np.ndarray):  # NumPy: the host path
            Xd = self._device_X(X)
            return Xd @ self.weights + self.bias
        Xh = _host_X(X, self.dtype)
        self._check_features(Xh.shape)
        z = self.backend.asarray(Xh, dtype=self.dtype) @ self.weights + self.bias
        return self.backend.to_numpy(z)

    def _check_features(self, shape):
        if shape[1] != self.n_features_in_:
            raise ValueError(f"X has shape {tuple(shape)}, expected (n, {self.n_features_in_}) "
                             "as in fit")

    def _device_X(self, X):
        """An array of the backend, checked (one host sync) and cast to the model's dtype."""
        xp = self.backend.xp
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (samples, features), got shape {tuple(X.shape)}; "
                             "reshape one sample x to (1, features) with x[None, :]")
        self._check_features(X.shape)
        if not (xp.isdtype(X.dtype, ("real floating", "integral", "bool"))):
            raise TypeError(f"X must hold real numbers (bool, int or float), got dtype {X.dtype}")
        if xp.isdtype(X.dtype, "real floating"):
            if not bool(xp.all(xp.isfinite(X))):
                raise ValueError("X contains NaN or infinite values")
            if X.dtype != self.weights.dtype:  # float64 values may not fit a float32 model
                _check_fits(float(xp.max(xp.abs(X))), self.dtype, "X")
        return xp.astype(X, self.weights.dtype)

    def predict(self, X):
        """Class labels ``step(w · x + b)`` in {0, 1} as int64 (NumPy in, NumPy out)."""
        z = self.decision_function(X)
        if isinstance(z, np.ndarray):
            return (z >= 0).astype(np.int64)
        xp = self.backend.xp
        return xp.astype(z >= 0.0, xp.int64)

    def score(self, X, y):
        """Accuracy: the fraction of rows of ``X`` whose prediction equals ``y``."""
        pred = np.asarray(host_array(self.predict(X)))
        yh = _host_labels(y, pred.shape[0])
        return float(np.mean(pred == yh))

    def __repr__(self):
        return (f"Perceptron(learning_rate={self.learning_rate}, max_epochs={self.max_epochs}, "
                f"device={self.device!r}, dtype={self.dtype!r}, seed={self.seed})")
