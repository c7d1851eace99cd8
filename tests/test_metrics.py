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


# -- sample weights, against scikit-learn -----------------------------------------------------------
def _weighted_case(seed=0, n=40, k=3):
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.0, 3.0, size=n)
    w[:5] = 0.0  # rows that do not count
    return rng, w


def test_weighted_accuracy_matches_scikit_learn(backend):
    skm = pytest.importorskip("sklearn.metrics")
    rng, w = _weighted_case()
    scores = rng.normal(size=(40, 3))
    labels = rng.integers(0, 3, size=40)
    expected = skm.accuracy_score(labels, scores.argmax(1), sample_weight=w)
    sw = _dev(backend, w)
    assert _val(metrics.accuracy(_dev(backend, labels), _dev(backend, scores), sample_weight=sw)) \
        == pytest.approx(expected, rel=1e-12)
    one_hot = _dev(backend, np.eye(3)[labels])
    assert _val(metrics.accuracy(one_hot, _dev(backend, scores), sample_weight=sw)) == \
        pytest.approx(expected, rel=1e-12)
    # binary, with a logit threshold of 0 (the convention fit uses for logits)
    z = rng.normal(size=(40, 1))
    bits = rng.integers(0, 2, size=40)
    expected = skm.accuracy_score(bits, (z[:, 0] > 0.0).astype(int), sample_weight=w)
    assert _val(metrics.accuracy(_dev(backend, bits), _dev(backend, z), threshold=0.0,
                                 sample_weight=sw)) == pytest.approx(expected, rel=1e-12)
    # unweighted accuracy differs (so the weights are really used)
    assert _val(metrics.accuracy(_dev(backend, bits), _dev(backend, z), threshold=0.0)) != \
        pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("k", [1, 3])
def test_weighted_regression_metrics_match_scikit_learn(backend, k):
    skm = pytest.importorskip("sklearn.metrics")
    rng, w = _weighted_case(k=k)
    t = rng.normal(size=(40, k))
    p = t + rng.normal(scale=0.7, size=(40, k))
    sw = _dev(backend, w)
    for ours, theirs in ((metrics.mse, skm.mean_squared_error),
                         (metrics.mae, skm.mean_absolute_error),
                         (metrics.r2_score, skm.r2_score)):
        expected = theirs(t, p, sample_weight=w)
        got = _val(ours(_dev(backend, t), _dev(backend, p), sample_weight=sw))
        assert got == pytest.approx(expected, rel=1e-10), ours.__name__
        assert _val(ours(_dev(backend, t), _dev(backend, p))) != pytest.approx(expected, rel=1e-6)
    # a 1-D target of a single-column output, and weights given as a list
    if k == 1:
        got = _val(metrics.r2_score(_dev(backend, t[:, 0]), _dev(backend, p),
                                    sample_weight=w.tolist()))
        assert got == pytest.approx(skm.r2_score(t, p, sample_weight=w), rel=1e-10)


def test_integer_weights_equal_repeating_rows(backend):
    rng = np.random.default_rng(2)
    t, p = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    w = np.array([0, 1, 2, 3, 1, 1])
    rep = np.repeat(np.arange(6), w)
    for fn in (metrics.mse, metrics.mae, metrics.r2_score):
        weighted = _val(fn(_dev(backend, t), _dev(backend, p), sample_weight=_dev(backend, w)))
        assert weighted == pytest.approx(_val(fn(_dev(backend, t[rep]), _dev(backend, p[rep]))),
                                         rel=1e-12)


def test_weights_are_checked_and_keep_the_dtype(backend):
    p = _dev(backend, [[0.2], [0.7], [0.9]], dtype="float32")
    t = _dev(backend, np.array([0, 1, 0]))
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(3,\).*got \(2,\)"):
        metrics.accuracy(t, p, sample_weight=_dev(backend, [1.0, 2.0]))
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(3,\)"):
        metrics.mse(p, p, sample_weight=_dev(backend, np.ones((3, 1))))
    with pytest.raises(TypeError, match="sample_weight must hold real numbers"):
        metrics.mae(p, p, sample_weight=_dev(backend, np.array([True, False, True])))
    with pytest.raises(TypeError, match="threshold must be a number"):
        metrics.accuracy(t, p, threshold="0.5")
    out = metrics.accuracy(t, p, sample_weight=_dev(backend, [1.0, 1.0, 2.0]))  # float64 weights
    assert backend.dtype_name(out.dtype) == "float32"
    assert _val(out) == pytest.approx(0.5)  # right: rows 0 and 1, weight 2 of 4
    if backend.name != "numpy":
        with pytest.raises(TypeError, match="sample_weight must be an array of the predictions'"):
            metrics.mse(p, p, sample_weight=np.ones(3))
