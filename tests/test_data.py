"""Host-side data utilities: one_hot, train_test_split, Standardizer, batches."""

import numpy as np
import pytest

from portable_nn import data


def test_one_hot_values():
    out = data.one_hot([2, 0, 1, 2])
    np.testing.assert_array_equal(out, [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert out.dtype == np.float32
    wide = data.one_hot(np.array([1]), num_classes=4, dtype="float64")
    np.testing.assert_array_equal(wide, [[0, 1, 0, 0]])
    assert wide.dtype == np.float64
    np.testing.assert_array_equal(data.one_hot(np.array([1.0, 0.0])), [[0, 1], [1, 0]])


@pytest.mark.parametrize("labels, k, message", [
    ([0, 3], 3, r"in \[0, 2\]"),
    ([-1, 0], None, "labels must be in"),
    ([0.5], None, "whole numbers"),
    ([[0, 1]], None, "1-D"),
    ([], None, "num_classes is required"),
])
def test_one_hot_errors(labels, k, message):
    with pytest.raises(ValueError, match=message):
        data.one_hot(labels, num_classes=k)


def test_one_hot_rejects_non_numbers():
    with pytest.raises(TypeError, match="hold numbers"):
        data.one_hot(["a", "b"])


def test_train_test_split_partitions_and_is_reproducible():
    X = np.arange(40).reshape(20, 2)
    y = np.arange(20)
    Xtr, Xte, ytr, yte = data.train_test_split(X, y, test_size=0.25, seed=3)
    assert Xtr.shape == (15, 2) and Xte.shape == (5, 2)
    # rows stay paired with their labels, and the two parts cover every row exactly once
    np.testing.assert_array_equal(Xtr[:, 0] // 2, ytr)
    np.testing.assert_array_equal(Xte[:, 0] // 2, yte)
    assert sorted(np.concatenate([ytr, yte]).tolist()) == list(range(20))
    again = data.train_test_split(X, y, test_size=0.25, seed=3)
    np.testing.assert_array_equal(again[3], yte)
    other = data.train_test_split(X, y, test_size=0.25, seed=4)
    assert not np.array_equal(other[3], yte)
    # ceil(0.1 * 20) = 2 test rows; a row count works too; shuffle=False keeps the last rows
    assert data.train_test_split(X, y, test_size=0.1)[1].shape[0] == 2
    Xtr, Xte = data.train_test_split(X, test_size=3, shuffle=False)
    np.testing.assert_array_equal(Xte, X[-3:])
    np.testing.assert_array_equal(Xtr, X[:-3])


@pytest.mark.parametrize("kwargs, exc", [
    ({"test_size": 0.0}, ValueError), ({"test_size": 1.0}, ValueError),
    ({"test_size": 10}, ValueError), ({"test_size": "half"}, TypeError),
    ({"seed": 1.5}, TypeError),
])
def test_train_test_split_errors(kwargs, exc):
    with pytest.raises(exc):
        data.train_test_split(np.zeros((10, 2)), np.zeros(10), **kwargs)
    with pytest.raises(ValueError, match="rows"):
        data.train_test_split(np.zeros((10, 2)), np.zeros(9))


def test_standardizer_zero_mean_unit_std_and_inverse():
    rng = np.random.default_rng(0)
    X = rng.normal(loc=[5.0, -3.0, 2.0], scale=[2.0, 0.5, 1.0], size=(200, 3))
    X[:, 2] = 7.0                                   # a constant column
    s = data.Standardizer()
    Z = s.fit_transform(X)
    np.testing.assert_allclose(Z[:, :2].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Z[:, :2].std(axis=0), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(Z[:, 2], 0.0)     # centred, not divided by zero
    assert s.scale_[2] == 1.0
    np.testing.assert_allclose(s.inverse_transform(Z), X, rtol=1e-12)
    np.testing.assert_allclose(s.mean_, X.mean(axis=0))


def test_standardizer_dtypes_and_errors():
    X32 = np.array([[1.0, 2.0], [3.0, 6.0]], dtype=np.float32)
    s = data.Standardizer().fit(X32)
    assert s.transform(X32).dtype == np.float32
    np.testing.assert_allclose(s.transform(X32), [[-1, -1], [1, 1]])
    assert data.Standardizer().fit_transform([[1, 2], [3, 4]]).dtype == np.float64
    with pytest.raises(RuntimeError, match="not fitted"):
        data.Standardizer().transform(X32)
    with pytest.raises(ValueError, match="3 columns"):
        s.transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        data.Standardizer().fit(np.array([[1.0], [np.nan]]))
    with pytest.raises(ValueError, match="2-D"):
        data.Standardizer().fit(np.zeros(3))


def test_batches_cover_rows_once_and_keep_pairs():
    X = np.arange(20).reshape(10, 2)
    y = np.arange(10)
    sizes, seen = [], []
    for xb, yb in data.batches(X, y, batch_size=4, shuffle=True, seed=0):
        np.testing.assert_array_equal(xb[:, 0] // 2, yb)
        sizes.append(len(yb))
        seen += yb.tolist()
    assert sizes == [4, 4, 2]
    assert sorted(seen) == list(range(10)) and seen != list(range(10))
    plain = [xb for xb in data.batches(X, batch_size=3)]
    np.testing.assert_array_equal(np.concatenate(plain), X)
    with pytest.raises(ValueError, match="batch_size"):
        data.batches(X, batch_size=0)
    with pytest.raises(ValueError, match="rows"):
        data.batches(X, y[:5])
