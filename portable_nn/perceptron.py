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
import warnings

import numpy as np

from .backends import get_backend, host_array

__all__ = ["ConvergenceWarning", "Perceptron"]


class ConvergenceWarning(UserWarning):
    """A learning algorithm stopped at its iteration limit before it converged."""


def _host_X(X, name="X"):
    """``X`` as a finite 2-D float64 NumPy array, or a ValueError/TypeError naming the problem."""
    try:
        a = np.asarray(host_array(X), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a 2-D array of numbers, got {type(X).__name__}: {exc}") \
            from None
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must have at least one sample and one feature, got shape "
                         f"{a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _host_labels(y, n):
    """0/1 labels (ints, floats or bools) as an int64 NumPy vector of length ``n``."""
    a = np.asarray(host_array(y))
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"y must be a vector of {n} labels (one per row of X), got shape "
                         f"{a.shape}")
    if a.dtype.kind not in "biuf" or not np.all(np.isin(a, (0, 1))):
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
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) \
                or not (math.isfinite(learning_rate) and learning_rate > 0):
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
        Xh = _host_X(X)
        yh = _host_labels(y, Xh.shape[0])
        backend, xp = self.backend, self.backend.xp
        Xd = backend.asarray(Xh, dtype=self.dtype)
        yd = backend.asarray(yh, dtype=self.dtype)
        w = xp.zeros(Xh.shape[1], dtype=backend.dtype(self.dtype), device=backend.device)
        b = xp.zeros((), dtype=backend.dtype(self.dtype), device=backend.device)
        r = self.learning_rate
        order_rng = None if self.seed is None else np.random.default_rng(self.seed)
        errors, converged = [], False
        for _ in range(self.max_epochs):
            order = range(Xh.shape[0]) if order_rng is None else order_rng.permutation(Xh.shape[0])
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
        backend array out)."""
        self._check_fitted()
        on_device = self.backend.owns(X)
        Xh = None if on_device else _host_X(X)
        if (X.shape[1] if on_device else Xh.shape[1]) != self.n_features_in_:
            shape = tuple(X.shape) if on_device else Xh.shape
            raise ValueError(f"X has shape {shape}, expected (n, {self.n_features_in_}) as in fit")
        Xd = X if on_device else self.backend.asarray(Xh, dtype=self.dtype)
        z = self.backend.xp.astype(Xd, self.weights.dtype) @ self.weights + self.bias
        return z if on_device else self.backend.to_numpy(z)

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
