"""The perceptron rule: a hand-run epoch, convergence on separable data, failure on XOR, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.perceptron import ConvergenceWarning, Perceptron
from tests.conftest import to_np

# Three points run through the rule by hand with r = 0.5, w = (0, 0), b = 0 and step(0) = 1:
#   x1 = ( 1,  2), C = 1: z = 0 -> P = 1, right, no change
#   x2 = ( 2, -1), C = 0: z = 0 -> P = 1, wrong: w = (0, 0) - 0.5 (2, -1) = (-1, 0.5), b = -0.5
#   x3 = (-1, -1), C = 0: z = 1 - 0.5 - 0.5 = 0 -> P = 1, wrong:
#                         w = (-1, 0.5) - 0.5 (-1, -1) = (-0.5, 1), b = -1
# Epoch 2: z = 0.5, -3, -1.5 -> predictions 1, 0, 0: all right, converged.
HAND_X = np.array([[1.0, 2.0], [2.0, -1.0], [-1.0, -1.0]])
HAND_Y = np.array([1, 0, 0])


def test_one_epoch_matches_the_rule_by_hand(device):
    p = Perceptron(learning_rate=0.5, max_epochs=1, device=device)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        p.fit(HAND_X, HAND_Y)
    np.testing.assert_allclose(to_np(p.weights), [-0.5, 1.0], atol=0)
    assert float(to_np(p.bias)) == -1.0
    assert p.errors_ == [2] and p.n_epochs_ == 1 and p.converged_ is False
    assert p.backend.owns(p.weights) and p.backend.owns(p.bias)


def test_second_epoch_is_clean_and_stops(device):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a converged run must not warn
        p = Perceptron(learning_rate=0.5, max_epochs=50, device=device).fit(HAND_X, HAND_Y)
    assert p.errors_ == [2, 0] and p.n_epochs_ == 2 and p.converged_ is True
    np.testing.assert_allclose(to_np(p.weights), [-0.5, 1.0])
    np.testing.assert_array_equal(p.predict(HAND_X), HAND_Y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_converges_on_separable_data_and_separates_it(device, dtype):
    X, y = pnn.datasets.cuteness(120, seed=3)
    p = Perceptron(device=device, dtype=dtype, seed=1).fit(X, y)
    assert p.converged_ and p.errors_[-1] == 0 and len(p.errors_) == p.n_epochs_
    assert p.score(X, y) == 1.0
    # the learned line classifies every sample by the sign of w.x + b, as the rule promises
    z = X @ to_np(p.weights).astype(np.float64) + float(to_np(p.bias))
    np.testing.assert_array_equal((z >= 0).astype(int), y)
    assert p.weights.dtype == p.backend.dtype(dtype)


def test_same_order_gives_same_weights_on_every_backend(device):
    X, y = pnn.datasets.cuteness(60, seed=5)
    ref = Perceptron(device="cpu", seed=7).fit(X, y)
    other = Perceptron(device=device, seed=7).fit(X, y)
    assert other.errors_ == ref.errors_
    np.testing.assert_allclose(to_np(other.weights), to_np(ref.weights), rtol=1e-12)


def test_xor_warns_and_flags_not_converged():
    X, y = pnn.datasets.xor()
    p = Perceptron(max_epochs=25)
    with pytest.warns(ConvergenceWarning):
        p.fit(X, y)
    assert p.converged_ is False and p.n_epochs_ == 25 and min(p.errors_) > 0
    assert p.score(X, y) < 1.0


def test_seed_changes_order_but_still_converges():
    X, y = pnn.datasets.cuteness(80, seed=2)
    a = Perceptron(seed=0).fit(X, y)
    b = Perceptron(seed=1).fit(X, y)
    assert a.converged_ and b.converged_
    assert not np.array_equal(to_np(a.weights), to_np(b.weights))


def test_predict_follows_the_input(backend):
    p = Perceptron(device=backend, learning_rate=0.5).fit(HAND_X, HAND_Y)
    out = p.predict(backend.asarray(HAND_X))
    assert backend.owns(out)
    np.testing.assert_array_equal(to_np(out), HAND_Y)
    assert isinstance(p.predict(HAND_X.tolist()), np.ndarray)
    np.testing.assert_allclose(p.decision_function(HAND_X), [0.5, -3.0, -1.5])


@pytest.mark.parametrize("kwargs, match", [
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"max_epochs": 0}, "max_epochs"),
    ({"max_epochs": 2.5}, "max_epochs"),
    ({"dtype": "int32"}, "dtype"),
    ({"device": "gpu"}, "device"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Perceptron(**kwargs)
    with pytest.raises(TypeError, match="learning_rate"):
        Perceptron(learning_rate="1")


def _fitted(dtype="float64", device="cpu"):
    p = Perceptron(learning_rate=0.5, dtype=dtype, device=device).fit(HAND_X, HAND_Y)
    return p, (to_np(p.weights).copy(), float(to_np(p.bias)), list(p.errors_))


def _unchanged(p, saved):
    w, b, errs = saved
    np.testing.assert_array_equal(to_np(p.weights), w)
    assert float(to_np(p.bias)) == b and p.errors_ == errs


DATES = np.array([["2020-01-01", "2020-01-02"]] * 3, dtype="datetime64[D]")
BAD_X = [
    ("nan", np.where(np.eye(3, 2) > 0, np.nan, HAND_X), ValueError, "NaN"),
    ("inf", HAND_X * np.array([np.inf, 1.0]), ValueError, "infinite"),
    ("complex", HAND_X + 1j, TypeError, "X must hold real numbers.*complex"),
    ("strings", HAND_X.astype(str), TypeError, "X must hold real numbers.*strings"),
    ("datetimes", DATES, TypeError, "X must hold real numbers.*datetimes"),
    ("None inside", [[1.0, None]] * 3, TypeError, "X must hold real numbers.*None"),
    ("1-D", HAND_X[:, 0], ValueError, "X must be 2-D"),
    ("3-D", HAND_X[None], ValueError, "X must be 2-D"),
    ("empty", np.zeros((3, 0)), ValueError, "at least one"),
]


@pytest.mark.parametrize("label,X,error,match", BAD_X, ids=[c[0] for c in BAD_X])
def test_fit_and_predict_refuse_bad_X_naming_it(label, X, error, match):
    p, saved = _fitted()
    with pytest.raises(error, match=match):
        p.fit(X, HAND_Y)
    if label != "empty":  # an empty X has the wrong feature count in predict: checked below
        with pytest.raises(error, match=match):
            p.predict(X)
    _unchanged(p, saved)


@pytest.mark.parametrize("y,error,match", [
    (HAND_Y.astype(str), TypeError, "y must hold real numbers.*strings"),
    (HAND_Y + 0j, TypeError, "y must hold real numbers.*complex"),
    (np.array([1.0, np.nan, 0.0]), ValueError, "labels 0 and 1"),
    (np.array(["2020-01-01"] * 3, dtype="datetime64[D]"), TypeError, "y .*datetimes"),
    ([1, None, 0], TypeError, "y must hold real numbers"),
])
def test_fit_and_score_refuse_bad_y_naming_it(y, error, match):
    p, saved = _fitted()
    with pytest.raises(error, match=match):
        p.fit(HAND_X, y)
    with pytest.raises(error, match=match):
        p.score(HAND_X, y)
    _unchanged(p, saved)


def test_predict_on_device_arrays_is_validated_too(backend):
    p, saved = _fitted(device=backend)
    one_row = backend.asarray(HAND_X[0], dtype="float64")
    with pytest.raises(ValueError, match="X must be 2-D"):  # an IndexError before
        p.predict(one_row)
    np.testing.assert_array_equal(to_np(p.predict(one_row[None, :])), HAND_Y[:1])
    with pytest.raises(ValueError, match=r"expected \(n, 2\)"):
        p.predict(backend.asarray(np.ones((2, 3)), dtype="float64"))
    with pytest.raises(ValueError, match="NaN"):
        p.predict(backend.asarray(HAND_X * np.nan, dtype="float64"))
    ints = p.predict(backend.asarray(HAND_X.astype(np.int64)))
    np.testing.assert_array_equal(to_np(ints), HAND_Y)
    _unchanged(p, saved)


def test_values_beyond_the_compute_dtype_are_refused():
    """1e39 is a float64 but not a float32: refused, not turned into inf on the device."""
    p, saved = _fitted("float32")
    with pytest.raises(ValueError, match="X holds values up to 2e\\+39, beyond float32"):
        p.fit(HAND_X * 1e39, HAND_Y)
    with pytest.raises(ValueError, match="beyond float32"):
        p.predict(HAND_X * 1e39)
    with pytest.raises(ValueError, match="beyond float32"):
        p.predict(p.backend.asarray(HAND_X * 1e39, dtype="float64"))
    _unchanged(p, saved)
    Perceptron(learning_rate=0.5, dtype="float64").fit(HAND_X * 1e39, HAND_Y)  # fits float64
    # values that fit, but whose updates overflow: refused, and nothing is kept
    big = Perceptron(learning_rate=1e38, dtype="float32")
    with pytest.raises(ValueError, match="weights overflowed float32.*lower learning_rate"):
        big.fit(HAND_X * 10, HAND_Y)
    assert big.weights is None and big.errors_ == []


def test_bad_fit_input_leaves_a_fitted_perceptron_unchanged():
    p = Perceptron(learning_rate=0.5).fit(HAND_X, HAND_Y)
    w, b, errs = to_np(p.weights).copy(), float(to_np(p.bias)), list(p.errors_)
    bad_x = HAND_X.copy()
    bad_x[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        p.fit(bad_x, HAND_Y)
    with pytest.raises(ValueError, match="2-D"):
        p.fit(HAND_X[0], HAND_Y)
    with pytest.raises(ValueError, match="one per row"):
        p.fit(HAND_X, HAND_Y[:2])
    with pytest.raises(ValueError, match="labels 0 and 1"):
        p.fit(HAND_X, np.array([1, 2, 0]))
    with pytest.raises(ValueError, match=r"expected \(n, 2\)"):
        p.predict(np.ones((2, 3)))
    np.testing.assert_array_equal(to_np(p.weights), w)
    assert float(to_np(p.bias)) == b and p.errors_ == errs


def test_predict_before_fit_raises():
    with pytest.raises(RuntimeError, match="not fitted"):
        Perceptron().predict(HAND_X)


def test_lazy_public_name():
    assert pnn.Perceptron is Perceptron
