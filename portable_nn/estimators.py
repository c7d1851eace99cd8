"""scikit-learn style estimators around portable_nn models.

    clf = MLPClassifier(hidden_layer_sizes=(64,), max_epochs=50, random_state=0).fit(X, y)
    clf.predict(X_test); clf.predict_proba(X_test); clf.score(X_test, y_test)

===========================  ======================================================================
``MLPClassifier``            Dense layers with a hidden activation; softmax + cross-entropy (one
                             sigmoid output + binary cross-entropy for two classes)
``MLPRegressor``             the same with a linear output and the mean squared error
``LogisticRegression``       one Dense layer, sigmoid/softmax + cross-entropy, L2 strength ``1/C``
``LinearRegression``         one Dense layer fitted by full-batch gradient descent on the L2 loss
===========================  ======================================================================

When scikit-learn is installed they are real scikit-learn estimators (``BaseEstimator`` and the
classifier/regressor mixins), so ``Pipeline``, ``GridSearchCV``, ``cross_val_score`` and ``clone``
work. Without it a small fallback base provides ``get_params``/``set_params`` and ``score``.

Conventions (scikit-learn's): the constructor stores its arguments unchanged; ``fit`` validates
them (a bad value raises ``ValueError`` naming the parameter) and the data, and sets the fitted
attributes (ending in ``_``): ``model_`` (the `Sequential`), ``history_``, ``n_features_in_``,
``loss_curve_``, ``n_iter_`` and, for classifiers, ``classes_`` (any labels: ints, strings, ...).
A failed ``fit`` leaves a fitted estimator as it was.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from array_api_compat import array_namespace

from . import layers as L
from . import losses, optimizers, regularizers
from .backends import get_backend, host_array
from .functional import sigmoid, softmax
from .layers.containers import Sequential
from .parameter import all_finite

__all__ = ["HAVE_SKLEARN", "LinearRegression", "LogisticRegression", "MLPClassifier",
           "MLPRegressor"]

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    HAVE_SKLEARN = True
except ImportError:  # scikit-learn is optional: the same interface, minus its machinery
    import inspect

    HAVE_SKLEARN = False

    class BaseEstimator:
        """``get_params``/``set_params`` read the constructor's signature, as scikit-learn's do."""

        @classmethod
        def _get_param_names(cls):
            """The constructor's argument names, sorted."""
            sig = inspect.signature(cls.__init__)
            return sorted(p.name for p in sig.parameters.values()
                          if p.name != "self" and p.kind != p.VAR_KEYWORD)

        def get_params(self, deep=True):
            """The constructor's arguments as stored (``deep`` is accepted for compatibility)."""
            return {name: getattr(self, name) for name in self._get_param_names()}

        def set_params(self, **params):
            """Set constructor arguments by name; an unknown name raises ``ValueError``."""
            valid = self._get_param_names()
            for key in params:
                if key not in valid:
                    raise ValueError(f"invalid parameter {key!r} for {type(self).__name__}; "
                                     f"valid parameters: {valid}")
            for key, value in params.items():
                setattr(self, key, value)
            return self

        def __repr__(self):
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
            return f"{type(self).__name__}({args})"

    class ClassifierMixin:
        """``score`` is the accuracy of ``predict``."""

        _estimator_type = "classifier"

        def score(self, X, y, sample_weight=None):
            """Fraction of rows of ``X`` whose predicted label equals ``y``."""
            if sample_weight is not None:
                raise ValueError("sample_weight is not supported without scikit-learn")
            return float(np.mean(self.predict(X) == np.asarray(y)))

    class RegressorMixin:
        """``score`` is the coefficient of determination R² of ``predict``."""

        _estimator_type = "regressor"

        def score(self, X, y, sample_weight=None):
            """R² of the predictions (averaged over outputs)."""
            if sample_weight is not None:
                raise ValueError("sample_weight is not supported without scikit-learn")
            t = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
            p = np.asarray(self.predict(X), dtype=np.float64).reshape(t.shape)
            ss_res = ((t - p) ** 2).sum(axis=0)
            ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
            return float(np.mean(1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0)))


_ACTIVATIONS = {
    "relu": L.ReLU, "tanh": L.Tanh, "logistic": L.Sigmoid, "sigmoid": L.Sigmoid,
    "identity": L.Identity, "leaky_relu": L.LeakyReLU, "softplus": L.Softplus,
}
_SOLVERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
_DTYPES = ("float32", "float64")
_EPS = {"float32": 2.0**-23, "float64": 2.0**-52}


# parameter checks (run in fit, never in __init__: scikit-learn's convention) -------------------
def _check_int(value, name, minimum):
    """``value`` as an int >= ``minimum``, or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_float(value, name, low=0.0, low_open=True, high=None, high_open=True):
    """``value`` as a finite float in the given interval, or a ValueError naming ``name``."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        rng = f"{lo}{low}, {high if high is not None else 'inf'}{hi}"
        raise ValueError(f"{name} must be a finite number in {rng}, got {value!r}")
    return float(value)


def _check_choice(value, name, choices):
    """``value`` lower-cased if it is one of ``choices``, or a ValueError naming ``name``."""
    if not isinstance(value, str) or value.lower() not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value.lower()


def _check_common(est):
    """Checks shared by every estimator: device, dtype, verbose, random_state -> (backend, seed)."""
    if est.dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {est.dtype!r}")
    if isinstance(est.verbose, bool) or est.verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0 (silent), 1 (a line per epoch) or 2 (a progress "
                         f"bar), got {est.verbose!r}")
    backend = get_backend(est.device)  # "cuda" without a GPU: the registry's clear error
    return backend, _seed_from(est.random_state)


def _seed_from(random_state):
    """An int seed from ``random_state``: None (fresh), an int, or a NumPy RandomState/Generator
    (as scikit-learn allows), so one value drives the weights, the shuffling and the split."""
    if random_state is None:
        return int(np.random.default_rng().integers(2**31 - 1))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be >= 0, got {random_state}")
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    raise ValueError(f"random_state must be None, an int, or a numpy RandomState/Generator, "
                     f"got {random_state!r}")


# data checks ----------------------------------------------------------------------------------
def _check_X(X, n_features=None, owner=None, dtype="float64"):
    """``X`` as a finite 2-D float64 NumPy array (with ``n_features`` columns when given) whose
    values fit the estimator's ``dtype``; the messages name X and follow scikit-learn's wording
    where it has one, so its tooling recognises them."""
    if type(X).__module__.startswith("scipy.sparse"):
        raise TypeError("a sparse matrix was passed, but dense data is required: sparse input is "
                        "not supported, use X.toarray()")
    try:
        a = np.asarray(host_array(X))
    except ValueError as exc:
        raise ValueError(f"X must be a rectangular 2-D array of numbers: {exc}") from None
    if a.dtype.kind == "c":
        raise ValueError("Complex data not supported: X must hold real numbers")
    if a.dtype.kind == "O":  # e.g. a pandas frame of mixed ints and floats
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"X must hold numbers: {exc}") from None
    if a.dtype.kind not in "biuf":
        raise TypeError(f"X must hold numbers, got dtype {a.dtype}")
    if a.ndim != 2:
        hint = ("; Reshape your data with X.reshape(-1, 1) if it has a single feature"
                if a.ndim == 1 else "")
        raise ValueError(f"X must be 2-D (samples, features), got shape {a.shape}{hint}")
    for axis, what in ((0, "sample"), (1, "feature")):
        if a.shape[axis] == 0:
            raise ValueError(f"X has no {what}s: Found array with 0 {what}(s) (shape={a.shape}) "
                             "while a minimum of 1 is required.")
    a = a.astype(np.float64, copy=False)
    _check_finite(a, "X", dtype)
    if n_features is not None and a.shape[1] != n_features:
        raise ValueError(f"X has {a.shape[1]} features, but {type(owner).__name__} is expecting "
                         f"{n_features} features as input")
    return a


def _check_finite(a, argname, dtype="float64"):
    """The training API's errors for NaN/Inf and for values the estimator's dtype cannot hold,
    worded the same way (rows counted, first named)."""
    from .training.checks import check_numbers

    check_numbers(a, argname, dtype)


def _check_y_rows(y, n, owner):
    """``y`` as NumPy with one entry per row of X."""
    if y is None:
        raise ValueError(f"{type(owner).__name__} requires y to be passed, but the target y is "
                         "None")
    a = np.asarray(host_array(y))
    if a.ndim == 0 or a.shape[0] != n:
        got = a.shape[0] if a.ndim else "a scalar"
        raise ValueError(f"y must have one entry per row of X ({n}), got {got}")
    return a


def _check_targets(y, n, owner, dtype="float64"):
    """Regression targets: finite floats of shape (n,) or (n, outputs) that fit ``dtype``."""
    a = _check_y_rows(y, n, owner)
    if a.dtype.kind == "O":
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError):
            pass
    if a.dtype.kind not in "biuf":
        raise TypeError(f"Unknown label type: y must hold numbers for a regressor, got dtype "
                        f"{a.dtype}")
    if a.ndim not in (1, 2):
        raise ValueError(f"y must be 1-D or 2-D, got shape {a.shape}")
    a = a.astype(np.float64)
    _check_finite(a, "y", dtype)
    return a


def _check_sample_weight(sample_weight, n):
    """Per-row weights as float64 (n,), scikit-learn's ``_check_sample_weight`` rules."""
    if sample_weight is None:
        return None
    w = np.asarray(host_array(sample_weight))
    if w.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must hold numbers, got dtype {w.dtype}")
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise ValueError(f"sample_weight.shape == {w.shape}, expected ({n},): one weight per "
                         "row of X")
    w = w.astype(np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite and non-negative")
    if not w.sum() > 0:
        raise ValueError("sample_weight sums to zero: nothing would be learned")
    return w


def _class_weight_rows(class_weight, classes, idx):
    """Per-row weights from scikit-learn's ``class_weight`` (a dict of original labels, or
    "balanced": ``n / (n_classes · count)``), or None."""
    if class_weight is None:
        return None
    if isinstance(class_weight, str) and class_weight == "balanced":
        counts = np.bincount(idx, minlength=classes.shape[0])
        table = idx.shape[0] / (classes.shape[0] * counts)
    elif isinstance(class_weight, dict):
        table = np.ones(classes.shape[0])
        known = {label: i for i, label in enumerate(classes.tolist())}
        unknown = [k for k in class_weight if k not in known]
        if unknown:
            raise ValueError(f"class_weight names labels {unknown} that are not classes of y "
                             f"({classes.tolist()})")
        for label, weight in class_weight.items():
            if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or \
                    not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"class_weight[{label!r}] must be a finite number >= 0, got "
                                 f"{weight!r}")
            table[known[label]] = float(weight)
    else:
        raise ValueError(f"class_weight must be None, 'balanced' or a dict {{label: weight}}, "
                         f"got {class_weight!r}")
    return table[idx]


def _combine(sample_weight, class_rows):
    if class_rows is None:
        return sample_weight
    w = class_rows if sample_weight is None else sample_weight * class_rows
    if not w.sum() > 0:
        raise ValueError("the rows' weights (sample_weight times class_weight) sum to 0")
    return w


def _check_labels(y, n, owner):
    """Class labels -> (classes, indices). A single column is taken as labels, with scikit-learn's
    DataConversionWarning; float labels must be whole numbers (else: a regression target)."""
    a = _check_y_rows(y, n, owner)
    if a.ndim == 2 and a.shape[1] == 1:
        _column_warning()
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"y must be a 1-D array of class labels, got shape {a.shape}")
    if a.dtype.kind == "f":
        _check_finite(a, "y")
        if not np.all(a == np.round(a)):
            raise ValueError("Unknown label type: continuous. y holds non-integer floats: a "
                             "classifier needs class labels (use a regressor for such targets)")
    classes, idx = np.unique(a, return_inverse=True)
    if classes.shape[0] < 2:
        raise ValueError(f"y must contain at least two classes, got only one class: "
                         f"{classes.tolist()}")
    return classes, idx.reshape(-1).astype(np.int64)


def _column_warning():
    """Warn, as scikit-learn does, that a column vector of labels was flattened."""
    import warnings

    try:
        from sklearn.exceptions import DataConversionWarning
    except ImportError:
        DataConversionWarning = UserWarning
    # scikit-learn's own words, which its estimator checks look for
    warnings.warn("A column-vector y was passed when a 1d array was expected. Please change the "
                  "shape of y to (n_samples, ), for example using ravel().",
                  DataConversionWarning, stacklevel=4)


# the shared machinery -------------------------------------------------------------------------
class _NetworkEstimator(BaseEstimator):
    """What every estimator here shares: building the model, training it, predicting."""

    def _check_fitted(self):
        """Raise the not-fitted error before ``fit`` has succeeded."""
        if getattr(self, "model_", None) is None:
            raise _not_fitted(self)

    def _train(self, model, X, t, loss, optimizer, *, epochs, batch_size, seed, early_stopping,
               validation_fraction, patience, weights=None):
        """``model.fit`` with the estimator's settings and the rows' ``weights``; returns the
        History."""
        from . import callbacks, data

        kwargs = {}
        if early_stopping:
            train, val = data.train_test_split(np.arange(X.shape[0]),
                                               test_size=validation_fraction, seed=seed)
            kwargs["validation_data"] = (X[val], t[val]) if weights is None else \
                (X[val], t[val], weights[val])
            X, t = X[train], t[train]
            weights = None if weights is None else weights[train]
            kwargs["callbacks"] = [callbacks.EarlyStopping(
                monitor="val_loss", patience=patience, restore_best_weights=True)]
        return model.fit(X, t, loss=loss, optimizer=optimizer, epochs=epochs,
                         batch_size=min(batch_size, X.shape[0]), shuffle=True, seed=seed,
                         verbose=self.verbose, sample_weight=weights, **kwargs)

    def __getstate__(self):
        """Picklable state (joblib, ``cross_validate(return_estimator=True)``): the fitted model
        travels as its config and host weights, since device arrays and the array libraries
        behind them do not pickle. It is rebuilt on the same device string when unpickled."""
        parent = getattr(super(), "__getstate__", None)
        state = dict(parent() if parent is not None else self.__dict__)
        model = state.pop("model_", None)
        if model is not None:
            state["_model_blob"] = {"config": model.get_config(), "weights": model.state_dict(),
                                    "device": model.device}
        return state

    def __setstate__(self, state):
        """Inverse of ``__getstate__``: rebuild ``model_`` on its device."""
        state = dict(state)
        blob = state.pop("_model_blob", None)
        parent = getattr(super(), "__setstate__", None)
        if parent is not None:
            parent(state)
        else:
            self.__dict__.update(state)
        if blob is not None:
            model = Sequential.from_config(blob["config"], device=blob["device"])
            model.load_state_dict(blob["weights"])
            self.model_ = model

    def _outputs(self, X):
        """The network's raw outputs (logits or values) for ``X`` as float64 NumPy."""
        self._check_fitted()
        Xa = _check_X(X, self.n_features_in_, self, self.dtype)
        return np.asarray(self.model_.predict(Xa), dtype=np.float64)

    def _set_fitted(self, model, history, n_features, **extra):
        """Set every fitted attribute at once, after training succeeded. Weights that diverged
        to NaN or infinity are a failed fit, as in scikit-learn: a ValueError, and the estimator
        keeps what it had."""
        if not all_finite(model.parameters()):
            raise ValueError(
                f"{type(self).__name__}: training produced non-finite weights (the loss "
                f"diverged); try a smaller learning rate or standardised inputs")
        self.model_ = model
        self.history_ = history
        self.n_features_in_ = n_features
        self.loss_curve_ = [float(v) for v in history.history.get("loss", [])]
        self.n_iter_ = len(self.loss_curve_)
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else float("nan")
        for k, v in extra.items():
            setattr(self, k, v)




def _not_fitted(est):
    """scikit-learn's NotFittedError when it is installed, else a RuntimeError."""
    try:
        from sklearn.exceptions import NotFittedError
    except ImportError:
        return RuntimeError(f"this {type(est).__name__} is not fitted yet: call fit(X, y) first")
    return NotFittedError(f"this {type(est).__name__} is not fitted yet: call fit(X, y) first")


def _make_optimizer(solver, learning_rate):
    """A fresh optimizer of the named kind with the given learning rate."""
    cls = type(optimizers.get(solver))
    return cls(learning_rate=learning_rate)


class _ClassifierOutputs:
    """predict / predict_proba from logits: one column (sigmoid) or k columns (softmax)."""

    def predict_proba(self, X):
        """Class probabilities, one column per class of ``classes_`` (rows sum to 1)."""
        z = self._outputs(X)
        xp = array_namespace(z)
        if z.shape[1] == 1:
            p = np.asarray(sigmoid(xp, z))
            return np.concatenate([1.0 - p, p], axis=1)
        return np.asarray(softmax(xp, z))

    def predict(self, X):
        """The most probable class of ``classes_`` for each row of ``X``."""
        z = self._outputs(X)
        idx = (z[:, 0] >= 0.0).astype(np.int64) if z.shape[1] == 1 else np.argmax(z, axis=1)
        return self.classes_[idx]

    def decision_function(self, X):
        """The logits: shape (n,) for two classes, (n, classes) otherwise."""
        z = self._outputs(X)
        return z[:, 0] if z.shape[1] == 1 else z


def _classification_setup(classes, idx):
    """Output width, loss and training targets for ``len(classes)`` classes."""
    if classes.shape[0] == 2:
        return 1, losses.BinaryCrossEntropy(), idx.astype(np.float64)[:, None]
    return classes.shape[0], losses.CrossEntropy(), idx


class _MLP(_NetworkEstimator):
    """The parameters, checks and network shared by `MLPClassifier` and `MLPRegressor`."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", solver="adam",
                 learning_rate=1e-3, alpha=1e-4, batch_size=32, max_epochs=200,
                 early_stopping=False, validation_fraction=0.1, patience=10, device="cpu",
                 dtype="float32", random_state=None, verbose=0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.learning_rate = learning_rate
        self.alpha = alpha
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self):
        """Validate every constructor argument; returns them converted, plus backend and seed."""
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = (sizes,)
        try:
            sizes = tuple(sizes)
        except TypeError:
            sizes = None
        if sizes is None or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool)
                                    and s >= 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be a tuple of ints >= 1 (or an int), got "
                             f"{self.hidden_layer_sizes!r}")
        act = _check_choice(self.activation, "activation", _ACTIVATIONS)
        solver = _check_choice(self.solver, "solver", _SOLVERS)
        lr = _check_float(self.learning_rate, "learning_rate")
        alpha = _check_float(self.alpha, "alpha", low_open=False)
        batch = _check_int(self.batch_size, "batch_size", 1)
        epochs = _check_int(self.max_epochs, "max_epochs", 1)
        if not isinstance(self.early_stopping, (bool, np.bool_)):
            # ValueError, not TypeError: scikit-learn reports every bad parameter that way
            raise ValueError(  # noqa: TRY004
                f"early_stopping must be True or False, got {self.early_stopping!r}")
        frac = _check_float(self.validation_fraction, "validation_fraction", 0.0, True, 1.0, True)
        patience = _check_int(self.patience, "patience", 1)
        backend, seed = _check_common(self)
        return {"sizes": [int(s) for s in sizes], "act": act, "solver": solver, "lr": lr,
                "alpha": alpha, "batch": batch, "epochs": epochs,
                "early": bool(self.early_stopping), "frac": frac, "patience": patience,
                "backend": backend, "seed": seed}

    def _build(self, p, n_in, n_out):
        """The Sequential: hidden Dense + activation blocks, then a linear output layer."""
        # sklearn's objective: mean loss + alpha / (2 n) ||W||², n the training samples
        reg = regularizers.L2(p["alpha"] / (2.0 * p["n"])) if p["alpha"] > 0 else None
        init = "he" if p["act"] in ("relu", "leaky_relu") else "glorot_uniform"
        layers, width = [], n_in
        for size in p["sizes"]:
            layers += [L.Dense(width, size, init=init, regularizer=reg), _ACTIVATIONS[p["act"]]()]
            width = size
        layers.append(L.Dense(width, n_out, regularizer=reg))
        return Sequential(*layers, device=p["backend"], dtype=self.dtype, seed=p["seed"])

    def _fit(self, X, y, classifier, sample_weight=None):
        """Validate, build, train, and only then set the fitted attributes."""
        p = self._check_params()
        Xa = _check_X(X, dtype=self.dtype)
        weights = _check_sample_weight(sample_weight, Xa.shape[0])
        if classifier:
            classes, idx = _check_labels(y, Xa.shape[0], self)
            n_out, loss, t = _classification_setup(classes, idx)
            weights = _combine(weights, _class_weight_rows(self.class_weight, classes, idx))
        else:
            t = _check_targets(y, Xa.shape[0], self, self.dtype)
            single = t.ndim == 1
            t = t[:, None] if single else t
            n_out, loss = t.shape[1], losses.MSE()
        if p["early"] and Xa.shape[0] < 4:
            raise ValueError("early_stopping needs at least 4 samples to hold some out")
        p["n"] = Xa.shape[0]
        model = self._build(p, Xa.shape[1], n_out)
        history = self._train(model, Xa, t, loss, _make_optimizer(p["solver"], p["lr"]),
                              epochs=p["epochs"], batch_size=p["batch"], seed=p["seed"],
                              early_stopping=p["early"], validation_fraction=p["frac"],
                              patience=p["patience"], weights=weights)
        extra = {"classes_": classes} if classifier else {"n_outputs_": n_out,
                                                          "_single_output": single}
        self._set_fitted(model, history, Xa.shape[1], **extra)
        return self


class MLPClassifier(ClassifierMixin, _ClassifierOutputs, _MLP):
    """A multi-layer perceptron classifier trained by backpropagation.

    ``hidden_layer_sizes`` widths of the hidden Dense layers, each followed by ``activation``
    ("relu", "tanh", "logistic"/"sigmoid", "identity", "leaky_relu", "softplus"); the output layer
    gives logits: softmax + cross-entropy for k > 2 classes, one sigmoid unit + binary
    cross-entropy for two. ``solver``: "adam", "adamw", "sgd", "rmsprop", "adagrad" with
    ``learning_rate``. ``alpha``: L2 penalty on the weights, the objective being
    ``mean loss + alpha / (2 n) ΣW²`` as in scikit-learn. ``early_stopping`` holds out
    ``validation_fraction`` of the rows (a random split) and stops when the validation loss has
    not improved for ``patience`` epochs, restoring the best weights. ``random_state`` seeds the
    weights, the shuffling and the split. ``class_weight``: ``None``, ``"balanced"`` (weights
    ``n / (n_classes · count(label))``) or ``{label: weight}`` with the labels of ``y`` (a
    label left out weighs 1), multiplying ``fit``'s ``sample_weight``, as in scikit-learn.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", solver="adam",
                 learning_rate=1e-3, alpha=1e-4, batch_size=32, max_epochs=200,
                 early_stopping=False, validation_fraction=0.1, patience=10, device="cpu",
                 dtype="float32", random_state=None, verbose=0, class_weight=None):
        super().__init__(hidden_layer_sizes, activation, solver, learning_rate, alpha, batch_size,
                         max_epochs, early_stopping, validation_fraction, patience, device, dtype,
                         random_state, verbose)
        self.class_weight = class_weight

    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (n, features) and labels ``y`` (n,) of any type, each row weighted by
        ``sample_weight`` (n,) in the loss (a weighted mean); returns self."""
        return self._fit(X, y, classifier=True, sample_weight=sample_weight)


class MLPRegressor(RegressorMixin, _MLP):
    """A multi-layer perceptron regressor: the same network as `MLPClassifier` with a linear
    output layer (one unit per target column) and the mean squared error. Targets are not
    rescaled: standardise them (or use ``TransformedTargetRegressor``) when they are large."""

    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (n, features) and targets ``y`` of shape (n,) or (n, outputs), each row
        weighted by ``sample_weight`` (n,) in the loss (a weighted mean); returns self."""
        return self._fit(X, y, classifier=False, sample_weight=sample_weight)

    if HAVE_SKLEARN:
        def __sklearn_tags__(self):
            """Several target columns are supported (one output unit each)."""
            tags = super().__sklearn_tags__()
            tags.target_tags.multi_output = True
            return tags

    def predict(self, X):
        """Predicted targets: shape (n,) when fitted on a 1-D ``y``, else (n, outputs)."""
        out = self._outputs(X)
        return out[:, 0] if self._single_output else out


class LogisticRegression(ClassifierMixin, _ClassifierOutputs, _NetworkEstimator):
    """Logistic regression as a network: one Dense layer, then a sigmoid (two classes) or a
    softmax (more), trained with cross-entropy by ``solver`` on mini-batches.

    ``C``: inverse L2 strength as in scikit-learn: the objective is
    ``mean loss + ΣW² / (2 C n)`` (``C=None`` or ``inf``: no penalty; the bias is not penalised).
    Standardise the features first (a ``Pipeline`` with ``StandardScaler``): gradient descent on
    features of very different scales is slow. ``class_weight``: as `MLPClassifier`'s.
    """

    def __init__(self, C=1.0, solver="adam", learning_rate=0.01, batch_size=32, max_epochs=100,
                 device="cpu", dtype="float32", random_state=None, verbose=0, class_weight=None):
        self.class_weight = class_weight
        self.C = C
        self.solver = solver
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (n, features) and labels ``y`` (n,) of any type, each row weighted by
        ``sample_weight`` (n,) in the loss; returns self."""
        C = self.C
        if C is not None and not (isinstance(C, numbers.Real) and not isinstance(C, bool)
                                  and C > 0):
            raise ValueError(f"C must be a positive number, inf or None, got {C!r}")
        solver = _check_choice(self.solver, "solver", _SOLVERS)
        lr = _check_float(self.learning_rate, "learning_rate")
        batch = _check_int(self.batch_size, "batch_size", 1)
        epochs = _check_int(self.max_epochs, "max_epochs", 1)
        backend, seed = _check_common(self)
        Xa = _check_X(X, dtype=self.dtype)
        weights = _check_sample_weight(sample_weight, Xa.shape[0])
        classes, idx = _check_labels(y, Xa.shape[0], self)
        n_out, loss, t = _classification_setup(classes, idx)
        weights = _combine(weights, _class_weight_rows(self.class_weight, classes, idx))
        penalised = C is not None and math.isfinite(C)
        reg = regularizers.L2(1.0 / (2.0 * C * Xa.shape[0])) if penalised else None
        model = Sequential(L.Dense(Xa.shape[1], n_out, init="zeros", regularizer=reg),
                           device=backend, dtype=self.dtype, seed=seed)
        history = self._train(model, Xa, t, loss, _make_optimizer(solver, lr), epochs=epochs,
                              batch_size=batch, seed=seed, early_stopping=False,
                              validation_fraction=None, patience=None, weights=weights)
        self._set_fitted(model, history, Xa.shape[1], classes_=classes)
        w, b = (model.backend.to_numpy(p.value).astype(np.float64) for p in model.parameters())
        self.coef_, self.intercept_ = w.T.copy(), b.copy()
        return self


class LinearRegression(RegressorMixin, _NetworkEstimator):
    """Ordinary least squares by the course's gradient descent (not the closed form).

    One ``Dense(features, outputs)`` trained full-batch on the L2 loss ``½ mean Σ (y − t)²``.
    To converge accurately on any data the features and targets are standardised internally, the
    step is ``learning_rate / λ_max`` with ``λ_max`` the largest eigenvalue of the standardised
    ``XᵀX / n`` (estimated by power iteration; any ``learning_rate`` < 2 is stable), with Nesterov
    momentum ``momentum``. Training stops when the gradient's norm (in standardised units, checked
    every 25 steps) falls below ``tol``, or after ``max_epochs`` steps. The result is folded back
    into the original units, so ``model_`` takes raw inputs; ``coef_`` and ``intercept_`` are as
    in scikit-learn.
    """

    def __init__(self, learning_rate=1.0, momentum=0.9, max_epochs=2000, tol=1e-7,
                 device="cpu", dtype="float32", random_state=None, verbose=0):
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.max_epochs = max_epochs
        self.tol = tol
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    if HAVE_SKLEARN:
        def __sklearn_tags__(self):
            """Several target columns are supported (one output unit each)."""
            tags = super().__sklearn_tags__()
            tags.target_tags.multi_output = True
            return tags

    def fit(self, X, y, sample_weight=None):
        """Fit ``y ≈ X coef_ᵀ + intercept_`` by gradient descent, each row weighted by
        ``sample_weight`` (n,) in the squared error (weighted least squares); returns self."""
        lr = _check_float(self.learning_rate, "learning_rate", 0.0, True, 2.0, True)
        momentum = _check_float(self.momentum, "momentum", 0.0, False, 1.0, True)
        epochs = _check_int(self.max_epochs, "max_epochs", 1)
        tol = _check_float(self.tol, "tol", 0.0, False)
        backend, seed = _check_common(self)
        Xa = _check_X(X, dtype=self.dtype)
        t = _check_targets(y, Xa.shape[0], self, self.dtype)
        w = _check_sample_weight(sample_weight, Xa.shape[0])
        single = t.ndim == 1
        t = t[:, None] if single else t
        p = np.full(Xa.shape[0], 1.0 / Xa.shape[0]) if w is None else w / w.sum()
        x_mean, t_mean = p @ Xa, p @ t  # (weighted) means and standard deviations
        x_scale = _scale(np.sqrt(p @ (Xa - x_mean) ** 2))
        t_scale = _scale(np.sqrt(p @ (t - t_mean) ** 2))
        Z, T = (Xa - x_mean) / x_scale, (t - t_mean) / t_scale
        step = lr / _largest_eigenvalue(Z * np.sqrt(p * Xa.shape[0])[:, None], seed)

        model = Sequential(L.Dense(Z.shape[1], T.shape[1], init="zeros"), device=backend,
                           dtype=self.dtype, seed=seed)
        loss = losses.L2()
        opt = optimizers.SGD(learning_rate=step, momentum=momentum, nesterov=momentum > 0)
        z, target = backend.asarray(Z, dtype=self.dtype), backend.asarray(T, dtype=self.dtype)
        weight = None if w is None else backend.asarray(w, dtype=self.dtype)
        xp = backend.xp
        floor = max(tol, 10.0 * _EPS[self.dtype])  # below this the gradient is rounding noise
        values, curve = [], []
        for i in range(epochs):
            pred = model.forward(z, training=True)
            values.append(loss.forward(pred, target) if weight is None else
                          loss.forward(pred, target, sample_weight=weight))
            model.backward(loss.backward(), need_input_grad=False)
            if (i + 1) % 25 == 0:  # one host sync per 25 steps
                # the gradient, not the loss: along a flat direction of an ill-conditioned
                # problem the loss stops moving long before the weights are right
                gnorm = math.sqrt(sum(float(xp.sum(p.grad * p.grad)) for p in model.parameters()))
                curve += [float(v) for v in values]
                values = []
                if self.verbose:
                    print(f"LinearRegression step {i + 1}: loss {curve[-1]:.6g}, "
                          f"gradient norm {gnorm:.3g}")
                if gnorm <= floor:
                    break
            opt.step(model.parameters())
        curve += [float(v) for v in values]

        w_std, b_std = (backend.to_numpy(p.value).astype(np.float64) for p in model.parameters())
        coef = w_std * t_scale[None, :] / x_scale[:, None]              # (features, outputs)
        intercept = t_mean + b_std * t_scale - x_mean @ coef
        model.load_state_dict({"0.weight": coef, "0.bias": intercept})
        # the loss was computed on standardised targets; for one output this is the exact
        # L2 loss in the targets' units
        curve = [v * float(np.mean(t_scale ** 2)) for v in curve]
        from .training import History

        history = History()  # one entry per gradient-descent step, so that plot() works
        history.history, history.epoch = {"loss": curve}, list(range(len(curve)))
        self._set_fitted(model, history, Xa.shape[1], n_outputs_=T.shape[1],
                         _single_output=single)
        self.coef_ = coef[:, 0].copy() if single else coef.T.copy()
        self.intercept_ = float(intercept[0]) if single else intercept.copy()
        return self

    def predict(self, X):
        """``X coef_ᵀ + intercept_`` computed by the fitted model on its device."""
        out = self._outputs(X)
        return out[:, 0] if self._single_output else out


def _scale(std):
    """Standard deviations with zeros replaced by 1 (a constant column is only centred)."""
    return np.where(std > 0.0, std, 1.0)


def _largest_eigenvalue(Z, seed, steps=100):
    """Largest eigenvalue of ``ZᵀZ / n`` by power iteration (matrix-vector products only)."""
    v = np.random.default_rng(seed).normal(size=Z.shape[1])
    lam = 1.0
    for _ in range(steps):
        w = Z.T @ (Z @ v) / Z.shape[0]
        norm = float(np.linalg.norm(w))
        if norm == 0.0:
            return 1.0  # every column constant: any step works, the weights stay 0
        v, lam = w / norm, norm
    return lam
