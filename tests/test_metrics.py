"""Metrics against values computed by hand, on every backend."""

import numpy as np
import pytest
from conftest import to_np

from portable_nn import metrics


def _dev(backend, a, dtype="float64"):
    """Host data as a backend array (floats in ``dtype``, ints kept)."""
    a = np.asarray(a)
    return backend.asarray(a, dtype=dtype if a.dtype.kind == "f" else None)


def _val(x):
    """A 0-d metric result as a float."""
    assert tuple(x.shape) == ()  # metrics return 0-d arrays, not Python floats
    return float(to_np(x))


def test_accuracy_categorical_with_labels_and_one_hot(backend):
    pred = _dev(backend, [[0.1, 0.7, 0.2], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.3, 0.4, 0.3]])
    labels = _dev(backend, np.array([1, 0, 0, 1]))           # rows 0, 1, 3 right: 3/4
    assert _val(metrics.accuracy(labels, pred)) == pytest.approx(0.75)
    one_hot = _dev(backend, np.eye(3)[[1, 0, 0, 1]])
    assert _val(metrics.accuracy(one_hot, pred)) == pytest.approx(0.75)
    int32 = backend.asarray(np.array([1, 0, 2, 1], dtype=np.int32))   # all right
    assert _val(metrics.accuracy(int32, pred)) == pytest.approx(1.0)


def test_accuracy_binary_thresholds(backend):
    pred = _dev(backend, [[0.9], [0.4], [0.6], [0.1], [0.55]])
    t = _dev(backend, np.array([1, 0, 0, 0, 1]))              # wrong only at row 2: 4/5
    assert _val(metrics.accuracy(t, pred)) == pytest.approx(0.8)
    t_col = _dev(backend, [[1.0], [0.0], [0.0], [0.0], [1.0]])
    assert _val(metrics.accuracy(t_col, pred)) == pytest.approx(0.8)
    # threshold 0.58: row 4 (0.55) becomes negative, so 3/5
    assert _val(metrics.accuracy(t, pred, threshold=0.58)) == pytest.approx(0.6)


def test_mse_mae_hand_values(backend):
    t = _dev(backend, [[1.0, 2.0], [3.0, 4.0]])
    p = _dev(backend, [[1.5, 2.0], [2.0, 6.0]])
    # errors 0.5, 0, -1, 2 -> squares 0.25, 0, 1, 4 (mean 1.3125); abs 0.5, 0, 1, 2 (mean 0.875)
    assert _val(metrics.mse(t, p)) == pytest.approx(1.3125)
    assert _val(metrics.mae(t, p)) == pytest.approx(0.875)
    one_d = _dev(backend, [1.0, 2.0, 3.0])
    col = _dev(backend, [[2.0], [2.0], [2.0]])
    assert _val(metrics.mse(one_d, col)) == pytest.approx(2.0 / 3.0)


def test_r2_hand_values(backend):
    t = _dev(backend, [1.0, 2.0, 3.0, 4.0])
    p = _dev(backend, [[1.0], [2.0], [3.0], [5.0]])
    # SS_res = 1, SS_tot = 1.5^2 + 0.5^2 + 0.5^2 + 1.5^2 = 5 -> 1 - 1/5
    assert _val(metrics.r2_score(t, p)) == pytest.approx(0.8)
    # two columns averaged; the second is constant and predicted exactly -> 1, so (0.8 + 1) / 2
    t2 = _dev(backend, [[1.0, 7.0], [2.0, 7.0], [3.0, 7.0], [4.0, 7.0]])
    p2 = _dev(backend, [[1.0, 7.0], [2.0, 7.0], [3.0, 7.0], [5.0, 7.0]])
    assert _val(metrics.r2_score(t2, p2)) == pytest.approx(0.9)
    # a constant column predicted wrongly scores 0 (no division by zero)
    p3 = _dev(backend, [[1.0, 6.0], [2.0, 7.0], [3.0, 7.0], [5.0, 7.0]])
    assert _val(metrics.r2_score(t2, p3)) == pytest.approx(0.4)


def test_r2_matches_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    t = rng.normal(size=(50, 3))
    p = t + rng.normal(scale=0.5, size=(50, 3))
    assert float(metrics.r2_score(t, p)) == pytest.approx(sklearn_metrics.r2_score(t, p))


def test_float32_stays_float32(backend):
    p = _dev(backend, [[0.2, 0.8]], dtype="float32")
    t = _dev(backend, np.array([1]))
    for fn in (metrics.accuracy,):
        assert backend.dtype_name(fn(t, p).dtype) == "float32"
    y = _dev(backend, [[0.5]], dtype="float32")
    for fn in (metrics.mse, metrics.mae):
        assert backend.dtype_name(fn(y, y).dtype) == "float32"


def test_get_and_names():
    assert metrics.get("accuracy") is metrics.accuracy
    assert metrics.get("ACC") is metrics.accuracy
    assert metrics.get("r2") is metrics.r2_score
    assert metrics.get("mse") is metrics.mse and metrics.get("mae") is metrics.mae

    def my_metric(t, p):
        """A user metric (its name is the key it is logged under)."""
        return p

    assert metrics.get(my_metric) is my_metric
    assert metrics.metric_name("mse") == "mse"
    assert metrics.metric_name(my_metric) == "my_metric"
    with pytest.raises(ValueError, match="metric must be"):
        metrics.get("precision@k")


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="does not fit y_pred"):
        metrics.mse(np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="columns"):
        metrics.accuracy(np.eye(3), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="rows"):
        metrics.accuracy(np.zeros(4, dtype=int), np.zeros((3, 2)))
