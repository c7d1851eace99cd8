"""Estimators: scikit-learn's machinery, fitted attributes, accuracy, errors, the fallback base."""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import warnings

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.backends import BackendUnavailableError
from portable_nn.estimators import (
    LinearRegression,
    LogisticRegression,
    MLPClassifier,
    MLPRegressor,
)

try:
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
except ImportError:  # the fallback base is still tested
    HAVE_SKLEARN = False
else:
    HAVE_SKLEARN = True

needs_sklearn = pytest.mark.skipif(not HAVE_SKLEARN, reason="scikit-learn is not installed")


def _blobs(n=150, centers=3, seed=0):
    """Well separated clusters in 4-D."""
    X, y = pnn.datasets.blobs(n, centers=centers, features=4, std=1.0, seed=seed)
    return X, y


def _small_mlp(**kw):
    """A small, quick MLPClassifier; keyword arguments override."""
    params = {"hidden_layer_sizes": (8,), "max_epochs": 15, "learning_rate": 0.01,
              "random_state": 0}
    params.update(kw)
    return MLPClassifier(**params)


# scikit-learn's machinery -----------------------------------------------------------------------
@needs_sklearn
def test_pipeline_with_standard_scaler():
    X, y = _blobs(200)
    pipe = make_pipeline(StandardScaler(), _small_mlp())
    pipe.fit(X[:150], y[:150])
    assert pipe.score(X[150:], y[150:]) >= 0.95
    assert pipe[-1].n_features_in_ == 4


@needs_sklearn
def test_grid_search_and_cross_val_score():
    X, y = _blobs(120)
    grid = GridSearchCV(_small_mlp(max_epochs=8), {"hidden_layer_sizes": [(2,), (8,)],
                                                   "learning_rate": [1e-4, 0.02]}, cv=3)
    grid.fit(X, y)
    # 1e-4 for 8 epochs barely moves the weights: the search must find the useful rate
    assert grid.best_params_["learning_rate"] == 0.02
    assert grid.best_score_ >= 0.9
    scores = cross_val_score(LogisticRegression(max_epochs=10, random_state=0), X, y, cv=3)
    assert scores.shape == (3,) and scores.min() >= 0.9


@needs_sklearn
@pytest.mark.parametrize("est", [
    # float64: in float32 a matrix product over the rows in
    # another order or of a subset differs in the last bits (BLAS blocks by row count and thread),
    # which check_methods_subset_invariance / sample_order_invariance (rtol 1e-7) count as failures
    LinearRegression(max_epochs=50, dtype="float64", random_state=0),
    LogisticRegression(max_epochs=30, learning_rate=0.05, dtype="float64", random_state=0),
    MLPClassifier(hidden_layer_sizes=(16,), learning_rate=0.02, max_epochs=40, dtype="float64",
                  random_state=0),
    MLPRegressor(hidden_layer_sizes=(16,), learning_rate=0.02, max_epochs=40, dtype="float64",
                 random_state=0),
], ids=lambda est: type(est).__name__)
def test_scikit_learn_estimator_checks(est):
    import warnings

    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checks provoke warnings on purpose
        # weighted mini-batch SGD is not repeated-row SGD: the batches hold other rows (the
        # weighted full-batch fit is, as test_integer_sample_weights_equal_repeated_rows checks)
        minibatch = not isinstance(est, LinearRegression)
        expected = {"check_sample_weight_equivalence_on_dense_data":
                    "mini-batch SGD: weighted and repeated rows fill the batches differently"}
        results = check_estimator(est, on_fail=None,
                                  expected_failed_checks=expected if minibatch else None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]
    assert len(results) > 40 and failed == []


def test_fitted_estimators_pickle(device):
    import pickle

    X, y = _blobs(90)
    est = _small_mlp(device=device, max_epochs=3).fit(X, y)
    copy = pickle.loads(pickle.dumps(est))
    assert copy.model_ is not est.model_ and copy.model_.device == est.model_.device
    np.testing.assert_array_equal(copy.predict_proba(X), est.predict_proba(X))
    np.testing.assert_array_equal(copy.classes_, est.classes_)


@needs_sklearn
def test_parallel_cross_validation_returns_working_estimators():
    from sklearn.model_selection import cross_validate

    X, y = _blobs(90)
    # n_jobs=2 pickles the fitted estimators back from the worker processes
    out = cross_validate(LogisticRegression(max_epochs=5, random_state=0), X, y, cv=2,
                         n_jobs=2, return_estimator=True)
    assert all(e.score(X, y) >= 0.9 for e in out["estimator"])


def test_clone_and_params_round_trip():
    est = MLPClassifier(hidden_layer_sizes=[5, 3], activation="tanh", alpha=0.5, random_state=3)
    params = est.get_params()
    assert params["hidden_layer_sizes"] == [5, 3] and params["alpha"] == 0.5
    copy = clone(est)
    assert copy is not est and copy.get_params() == params
    assert est.set_params(alpha=2.0, solver="sgd") is est
    assert est.get_params()["alpha"] == 2.0 and est.get_params()["solver"] == "sgd"
    assert MLPClassifier(**params).get_params() == params
    with pytest.raises(ValueError, match="nonsense"):
        est.set_params(nonsense=1)
    for cls in (MLPRegressor, LogisticRegression, LinearRegression):
        p = cls().get_params()
        assert cls(**p).get_params() == p and clone(cls(**p)).get_params() == p


def test_constructor_stores_arguments_unchanged_and_fit_validates():
    est = MLPClassifier(hidden_layer_sizes=(0,), learning_rate="fast")  # no error yet
    assert est.learning_rate == "fast" and est.hidden_layer_sizes == (0,)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        est.fit(*_blobs(30))


@pytest.mark.parametrize("make, match", [
    (lambda: MLPClassifier(hidden_layer_sizes=(4, -1)), "hidden_layer_sizes"),
    (lambda: MLPClassifier(activation="swish"), "activation"),
    (lambda: MLPClassifier(solver="lbfgs"), "solver"),
    (lambda: MLPClassifier(learning_rate=-0.1), "learning_rate"),
    (lambda: MLPClassifier(alpha=-1.0), "alpha"),
    (lambda: MLPClassifier(batch_size=0), "batch_size"),
    (lambda: MLPClassifier(max_epochs=2.5), "max_epochs"),
    (lambda: MLPClassifier(early_stopping="yes"), "early_stopping"),
    (lambda: MLPClassifier(validation_fraction=1.0), "validation_fraction"),
    (lambda: MLPClassifier(patience=0), "patience"),
    (lambda: MLPClassifier(dtype="float16"), "dtype"),
    (lambda: MLPClassifier(random_state=-3), "random_state"),
    (lambda: MLPClassifier(verbose=-1), "verbose"),
    (lambda: MLPClassifier(device="gpu"), "device"),
    (lambda: LogisticRegression(C=0.0), "C"),
    (lambda: LinearRegression(learning_rate=2.5), "learning_rate"),
    (lambda: LinearRegression(momentum=1.0), "momentum"),
    (lambda: LinearRegression(tol=-1.0), "tol"),
])
def test_bad_parameters_raise_value_error_naming_them(make, match):
    X, y = _blobs(30)
    with pytest.raises(ValueError, match=match):
        make().fit(X, y)


# learning ---------------------------------------------------------------------------------------
def test_string_labels_probabilities_and_decision(device):
    X, y = _blobs(150)
    names = np.array(["cat", "dog", "emu"])[y]
    clf = _small_mlp(device=device).fit(X, names)
    assert clf.classes_.tolist() == ["cat", "dog", "emu"]
    proba = clf.predict_proba(X)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(clf.classes_[np.argmax(proba, axis=1)], clf.predict(X))
    assert clf.score(X, names) >= 0.95
    assert isinstance(clf.model_, pnn.Sequential) and clf.model_.device == pnn.get_backend(
        device).device_string
    assert clf.n_iter_ == 15 == len(clf.history_.history["loss"]) == len(clf.loss_curve_)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_same_random_state_same_model_on_every_backend(device):
    X, y = _blobs(90)
    ref = _small_mlp(max_epochs=5).fit(X, y).predict_proba(X)
    again = _small_mlp(max_epochs=5, device=device).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(again, ref, atol=1e-4)


def test_binary_classifiers_use_one_sigmoid_output():
    X, y = _blobs(120, centers=2, seed=4)
    labels = np.where(y == 1, "yes", "no")
    for est in (_small_mlp(), LogisticRegression(max_epochs=20, random_state=0)):
        est.fit(X, labels)
        assert est.model_.layers[-1].out_features == 1
        proba = est.predict_proba(X)
        assert proba.shape == (120, 2)
        assert np.array_equal(est.predict(X), est.classes_[(proba[:, 1] > 0.5).astype(int)])
        assert est.score(X, labels) >= 0.95
        assert est.decision_function(X).shape == (120,)


@needs_sklearn
def test_logistic_regression_agrees_with_scikit_learn():
    from sklearn.linear_model import LogisticRegression as SkLogistic

    X, y = pnn.datasets.load_breast_cancer()
    X = StandardScaler().fit_transform(X)
    ours = LogisticRegression(C=1.0, max_epochs=60, dtype="float64", random_state=0).fit(X, y)
    theirs = SkLogistic(C=1.0, max_iter=1000).fit(X, y)
    assert ours.coef_.shape == theirs.coef_.shape == (1, 30)
    # the same regularised objective: predictions agree, and so do the weights' directions
    assert np.mean(ours.predict(X) == theirs.predict(X)) >= 0.98
    cos = float(ours.coef_[0] @ theirs.coef_[0]
                / np.linalg.norm(ours.coef_[0]) / np.linalg.norm(theirs.coef_[0]))
    assert cos > 0.95


def test_linear_regression_recovers_known_weights(device):
    X, y = pnn.datasets.linear(400, weights=(2.0, -3.0, 0.5), bias=5.0, noise=0.0, seed=1)
    est = LinearRegression(device=device, dtype="float64").fit(X, y[:, 0])
    np.testing.assert_allclose(est.coef_, [2.0, -3.0, 0.5], atol=1e-5)
    assert abs(est.intercept_ - 5.0) < 1e-5
    # the model takes raw inputs: the standardisation is folded into its weights
    np.testing.assert_allclose(to_np_weight(est), [[2.0], [-3.0], [0.5]], atol=1e-5)
    assert est.predict(X).shape == (400,) and est.score(X, y[:, 0]) > 1 - 1e-9


def to_np_weight(est):
    """The fitted Dense weight as NumPy."""
    return est.model_.backend.to_numpy(est.model_.layers[0].weight.value)


@needs_sklearn
def test_linear_regression_matches_least_squares_on_ill_conditioned_data():
    from sklearn.linear_model import LinearRegression as SkLinear

    X, y = pnn.datasets.load_diabetes()  # condition number of the standardised X'X is about 470
    ours = LinearRegression(dtype="float64").fit(X, y)
    theirs = SkLinear().fit(X, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=0, atol=1e-4 * np.abs(
        theirs.coef_).max())
    assert abs(ours.intercept_ - theirs.intercept_) < 1e-3
    assert ours.n_iter_ < ours.max_epochs  # stopped by the gradient tolerance


def test_linear_regression_multi_output():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    W = np.array([[1.0, -1.0], [2.0, 0.0], [0.0, 3.0]])
    Y = X @ W + np.array([0.5, -0.5])
    est = LinearRegression(dtype="float64").fit(X, Y)
    assert est.coef_.shape == (2, 3) and est.predict(X).shape == (100, 2)
    np.testing.assert_allclose(est.coef_, W.T, atol=1e-5)
    np.testing.assert_allclose(est.intercept_, [0.5, -0.5], atol=1e-5)


def test_mlp_regressor_learns_a_curve():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(300, 1))
    y = np.sin(2 * X[:, 0])
    est = MLPRegressor(hidden_layer_sizes=(32,), activation="tanh", learning_rate=0.01,
                       max_epochs=60, random_state=0).fit(X, y)
    assert est.predict(X).shape == (300,)
    assert est.score(X, y) > 0.95
    lin = LinearRegression().fit(X, y)
    assert est.score(X, y) > lin.score(X, y) + 0.3  # a line cannot follow a sine


def test_early_stopping_stops_on_noise():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 5)), rng.integers(0, 2, size=200)  # nothing to learn
    est = MLPClassifier(hidden_layer_sizes=(64,), learning_rate=0.01, max_epochs=200,
                        early_stopping=True, patience=2, random_state=0).fit(X, y)
    hist = est.history_.history
    assert "val_loss" in hist and est.n_iter_ < 200
    # EarlyStopping waits `patience` epochs after the best one
    assert est.n_iter_ == int(np.argmin(hist["val_loss"])) + 1 + 2


def test_alpha_shrinks_the_weights():
    X, y = _blobs(120)
    norms = []
    for alpha in (0.0, 50.0):
        est = _small_mlp(alpha=alpha, max_epochs=20).fit(X, y)
        norms.append(sum(float(np.sum(est.model_.backend.to_numpy(p.value) ** 2))
                         for k, p in est.model_.named_parameters().items() if k.endswith("weight")))
    assert norms[1] < 0.7 * norms[0]


# errors -----------------------------------------------------------------------------------------
def test_data_errors_match_the_training_api():
    X, y = _blobs(30)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN or Inf in 1 of 30 rows \(first: row 3\)"):
        _small_mlp().fit(bad, y)
    # the same words as model.fit's own check
    model = pnn.Sequential(pnn.layers.Dense(4, 3))
    with pytest.raises(ValueError, match=r"X contains NaN or Inf in 1 of 30 rows \(first: row 3\)"):
        model.fit(bad, y, loss="cross_entropy", optimizer="sgd", verbose=0)
    with pytest.raises(ValueError, match="2-D"):
        _small_mlp().fit(X[:, 0], y)
    with pytest.raises(ValueError, match="X has no features: Found array with 0 feature"):
        _small_mlp().fit(X[:, :0], y)
    with pytest.raises(ValueError, match="requires y"):
        _small_mlp().fit(X, None)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        _small_mlp().fit(X, y + 0.5)
    with pytest.raises(ValueError, match="one entry per row"):
        _small_mlp().fit(X, y[:-1])
    with pytest.raises(ValueError, match="only one class"):
        _small_mlp().fit(X, np.zeros(30))
    with pytest.raises(ValueError, match="y contains NaN"):
        MLPRegressor().fit(X, np.where(y == 0, np.nan, 1.0))
    with pytest.raises(TypeError, match="numbers"):
        MLPRegressor().fit(X, np.array(["a"] * 30))


def test_failed_fit_leaves_the_fitted_estimator_unchanged():
    X, y = _blobs(60)
    est = _small_mlp(max_epochs=3).fit(X, y)
    model, proba = est.model_, est.predict_proba(X)
    bad = X.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError):
        est.fit(bad, y)
    with pytest.raises(ValueError, match="learning_rate"):
        est.set_params(learning_rate=0.0).fit(X, y)
    assert est.model_ is model
    np.testing.assert_array_equal(est.predict_proba(X), proba)


@pytest.mark.parametrize("cls", [MLPRegressor, MLPClassifier])
def test_a_diverged_fit_is_a_value_error_and_keeps_the_fitted_model(cls):
    """As in scikit-learn ("Solver produced non-finite parameter weights"): weights that ran off
    to NaN or infinity fail the fit, and the estimator keeps the model it had."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=64)
    if cls is MLPClassifier:
        y = (y > 0).astype(int)
    est = cls(hidden_layer_sizes=(8,), solver="sgd", learning_rate=1e-3, max_epochs=5,
              random_state=0).fit(X, y)
    model, pred = est.model_, est.predict(X)
    est.set_params(learning_rate=1e6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fit's own NonFiniteLossWarning, numpy's overflow
        with pytest.raises(ValueError, match="non-finite weights"):
            est.fit(X, y)
    assert est.model_ is model
    np.testing.assert_array_equal(est.predict(X), pred)


@needs_sklearn
def test_predict_errors():
    X, y = _blobs(30)
    with pytest.raises(NotFittedError):
        _small_mlp().predict(X)
    est = _small_mlp(max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        est.predict(X[:, :3])
    bad = X.copy()
    bad[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.predict(bad)


def test_cuda_without_gpu_gives_the_registry_error():
    X, y = _blobs(30)
    try:
        pnn.get_backend("cuda")
    except BackendUnavailableError as exc:
        with pytest.raises(BackendUnavailableError) as info:
            _small_mlp(device="cuda").fit(X, y)
        assert str(info.value) == str(exc)
    else:  # a GPU is usable here: the estimator must run on it and agree with the CPU
        gpu = _small_mlp(device="cuda", max_epochs=3).fit(X, y).predict_proba(X)
        cpu = _small_mlp(max_epochs=3).fit(X, y).predict_proba(X)
        np.testing.assert_allclose(gpu, cpu, atol=1e-4)


# without scikit-learn -------------------------------------------------------------------------
def test_fallback_base_without_scikit_learn(monkeypatch):
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn...` now fails
    path = pathlib.Path(pnn.__file__).parent / "estimators.py"
    spec = importlib.util.spec_from_file_location("portable_nn._estimators_without_sklearn", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.HAVE_SKLEARN is False
    est = mod.MLPClassifier(hidden_layer_sizes=(8,), max_epochs=15, learning_rate=0.01,
                            random_state=0)
    params = est.get_params()
    assert params["hidden_layer_sizes"] == (8,) and type(est)(**params).get_params() == params
    with pytest.raises(ValueError, match="invalid parameter 'bogus'"):
        est.set_params(bogus=1)
    with pytest.raises(RuntimeError, match="not fitted"):
        est.predict(np.zeros((1, 4)))
    X, y = _blobs(150)
    assert est.fit(X, y).score(X, y) >= 0.95
    reg = mod.LinearRegression(dtype="float64")
    Xl, yl = pnn.datasets.linear(100, noise=0.0, seed=0)
    assert reg.fit(Xl, yl[:, 0]).score(Xl, yl[:, 0]) > 1 - 1e-9
    assert "MLPClassifier(" in repr(est)


def test_lazy_submodule():
    assert pnn.estimators.MLPClassifier is MLPClassifier


# weights, values in the estimator's dtype, label order -------------------------------------------
def _coef(est):
    return np.concatenate([p.ravel() for p in est.model_.state_dict().values()])


@pytest.mark.parametrize("make", [
    lambda: MLPClassifier(hidden_layer_sizes=(6,), max_epochs=5, batch_size=1000,
                          dtype="float64", random_state=0, solver="sgd", learning_rate=0.1),
    lambda: MLPRegressor(hidden_layer_sizes=(6,), max_epochs=5, batch_size=1000,
                         dtype="float64", random_state=0, solver="sgd", learning_rate=0.1),
    lambda: LogisticRegression(max_epochs=5, batch_size=1000, dtype="float64", random_state=0,
                               solver="sgd", learning_rate=0.1),
], ids=["MLPClassifier", "MLPRegressor", "LogisticRegression"])
def test_integer_sample_weights_equal_repeated_rows(make):
    X, y = _blobs(40)
    w = np.random.default_rng(2).integers(0, 3, size=40)
    weighted = make().fit(X, y, sample_weight=w)
    repeated = make().fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    np.testing.assert_allclose(_coef(weighted), _coef(repeated), rtol=1e-10, atol=1e-12)


def test_linear_regression_sample_weight_is_weighted_least_squares():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 3.0 + rng.normal(scale=0.5, size=60)
    w = rng.uniform(0.1, 3.0, size=60)
    est = LinearRegression(dtype="float64", max_epochs=5000, tol=1e-12).fit(X, y, sample_weight=w)
    A = np.hstack([X, np.ones((60, 1))]) * np.sqrt(w)[:, None]
    exact = np.linalg.lstsq(A, y * np.sqrt(w), rcond=None)[0]
    np.testing.assert_allclose(est.coef_, exact[:3], rtol=1e-6)
    assert est.intercept_ == pytest.approx(exact[3], rel=1e-6)
    unweighted = LinearRegression(dtype="float64", max_epochs=5000, tol=1e-12).fit(X, y)
    assert not np.allclose(unweighted.coef_, est.coef_, rtol=1e-4)


def test_class_weight_matches_sample_weights_and_balanced_is_scikit_learns():
    X, y = _blobs(60)
    labels = np.array(["cat", "dog", "eel"])[y]
    cw = {"cat": 2.0, "eel": 0.5}
    a = _small_mlp(class_weight=cw).fit(X, labels)
    b = _small_mlp().fit(X, labels, sample_weight=np.array([cw.get(v, 1.0) for v in labels]))
    np.testing.assert_array_equal(_coef(a), _coef(b))
    c = LogisticRegression(class_weight="balanced", random_state=0, max_epochs=3).fit(X[:45],
                                                                                      labels[:45])
    if HAVE_SKLEARN:
        from sklearn.utils.class_weight import compute_class_weight

        expect = compute_class_weight("balanced", classes=np.unique(labels[:45]), y=labels[:45])
        counts = np.unique(labels[:45], return_counts=True)[1]
        np.testing.assert_allclose(expect, 45 / (3 * counts))
        d = LogisticRegression(random_state=0, max_epochs=3).fit(
            X[:45], labels[:45],
            sample_weight=expect[np.searchsorted(np.unique(labels[:45]), labels[:45])])
        np.testing.assert_allclose(_coef(c), _coef(d), rtol=1e-6)
    with pytest.raises(ValueError, match="not classes of y"):
        _small_mlp(class_weight={"cow": 1.0}).fit(X, labels)
    with pytest.raises(ValueError, match="class_weight"):
        _small_mlp(class_weight="even").fit(X, labels)
    with pytest.raises(ValueError, match="sample_weight"):
        _small_mlp().fit(X, labels, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        _small_mlp().fit(X, labels, sample_weight=-np.ones(60))


@pytest.mark.parametrize("make", [_small_mlp, lambda: MLPRegressor(max_epochs=2),
                                  lambda: LogisticRegression(max_epochs=2),
                                  lambda: LinearRegression(max_epochs=10)],
                         ids=["MLPClassifier", "MLPRegressor", "LogisticRegression",
                              "LinearRegression"])
def test_values_beyond_float32_are_errors_naming_x_or_y(make):
    X, y = _blobs(30)
    with pytest.raises(ValueError, match="^X has values up to .* float32"):
        make().fit(X * 1e39, y)
    est = make().fit(X, y)
    with pytest.raises(ValueError, match="^X has values"):
        est.predict(X * 1e39)
    if hasattr(est, "predict_proba"):
        with pytest.raises(ValueError, match="^X has values"):
            est.predict_proba(X * 1e39)
    else:
        with pytest.raises(ValueError, match="^y has values"):
            make().fit(X, y * 1e39)
    with pytest.raises(ValueError, match="^X has no samples"):
        make().fit(X[:0], y[:0])


def test_labels_that_first_appear_out_of_order_are_learned():
    """classes_ is sorted (np.unique), and predictions map back through it whatever order the
    labels first appear in."""
    X, y = _blobs(90)
    names = np.array(["zebra", "ant", "moose"])  # sorted: ant, moose, zebra
    order = np.argsort(y != 2, kind="stable")  # rows of class 2 ("moose") come first
    labels = names[y][order]
    est = _small_mlp(max_epochs=60).fit(X[order], labels)
    assert est.classes_.tolist() == ["ant", "moose", "zebra"]
    assert np.mean(est.predict(X[order]) == labels) > 0.95
    proba = est.predict_proba(X[order])
    assert np.mean(est.classes_[proba.argmax(axis=1)] == labels) > 0.95
