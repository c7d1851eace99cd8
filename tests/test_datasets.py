"""Data sets: synthetic generators' properties, sklearn wrappers, the IDX reader's every path."""

from __future__ import annotations

import gzip
import importlib.util
import struct
import sys

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import datasets as ds


# synthetic sets -------------------------------------------------------------------------------
def test_xor_truth_table():
    X, y = ds.xor()
    assert X.shape == (4, 2) and y.dtype == np.int64
    np.testing.assert_array_equal(y, np.logical_xor(X[:, 0] > 0.5, X[:, 1] > 0.5).astype(int))


def test_linear_is_the_minimal_example():
    X, y = ds.linear(2000, seed=0)
    assert X.shape == (2000, 2) and y.shape == (2000, 1)
    assert X.min() >= -10 and X.max() <= 10
    noise = y[:, 0] - (2 * X[:, 0] - 3 * X[:, 1] + 5)
    assert np.abs(noise).max() <= 1.0 and abs(noise.mean()) < 0.05
    assert 0.3 < noise.std() < 0.65  # uniform on [-1, 1]: std 1/sqrt(3) = 0.577
    # least squares on the noisy data finds the generating weights
    A = np.column_stack([X, np.ones(len(X))])
    np.testing.assert_allclose(np.linalg.lstsq(A, y[:, 0], rcond=None)[0], [2, -3, 5], atol=0.03)
    X0, y0 = ds.linear(5, weights=[1.0, 2.0, 3.0], bias=-1.0, noise=0.0, seed=1)
    np.testing.assert_allclose(y0[:, 0], X0 @ [1.0, 2.0, 3.0] - 1.0)


def test_same_seed_same_data_and_different_seed_differs():
    for make in (ds.spirals, ds.blobs, ds.linear, ds.cuteness):
        a, b, c = make(seed=4), make(seed=4), make(seed=5)
        np.testing.assert_array_equal(a[0], b[0])
        assert not np.array_equal(a[0], c[0])


def test_spirals_shapes_and_radius():
    X, y = ds.spirals(301, classes=4, noise=0.0, seed=0)
    assert X.shape == (301, 2) and sorted(np.bincount(y)) == [75, 75, 75, 76]
    np.testing.assert_allclose(np.linalg.norm(X[y == 1], axis=1), np.linspace(0, 1, 75), atol=1e-12)


def test_blobs_given_centres():
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 10.0, 10.0]])
    X, y = ds.blobs(400, centers=centres, std=0.5, seed=0)
    assert X.shape == (400, 3) and np.bincount(y).tolist() == [200, 200]
    for k in range(2):
        np.testing.assert_allclose(X[y == k].mean(axis=0), centres[k], atol=0.15)
        assert abs(X[y == k].std() - 0.5) < 0.05


def test_cuteness_is_separable_with_a_margin():
    X, y = ds.cuteness(500, seed=0, margin=0.5)
    assert X.shape == (500, 2) and set(np.unique(y)) == {0, 1}
    assert X.min() >= 0 and X.max() <= 10
    np.testing.assert_array_equal(y, (X[:, 1] > X[:, 0]).astype(int))
    assert (np.abs(X[:, 1] - X[:, 0]) / np.sqrt(2)).min() >= 0.5
    _, y2 = ds.cuteness(2, seed=0)
    assert sorted(y2.tolist()) == [0, 1]


@pytest.mark.parametrize("call, match", [
    (lambda: ds.spirals(0), "n"),
    (lambda: ds.spirals(10, classes=1), "classes"),
    (lambda: ds.spirals(10, noise=-1.0), "noise"),
    (lambda: ds.blobs(10, centers=np.ones(3)), "centers"),
    (lambda: ds.linear(10, weights=[]), "weights"),
    (lambda: ds.linear(10, noise=float("nan")), "noise"),
    (lambda: ds.cuteness(10, margin=5.0), "margin"),
])
def test_bad_arguments_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_seed_type():
    with pytest.raises(TypeError, match="seed"):
        ds.linear(10, seed=1.5)


# scikit-learn's bundled sets ------------------------------------------------------------------
@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                    reason="scikit-learn is not installed")
def test_sklearn_wrappers():
    X, y = ds.load_digits()
    assert X.shape == (1797, 64) and set(np.unique(y)) == set(range(10)) and X.max() == 16
    X, y = ds.load_breast_cancer()
    assert X.shape == (569, 30) and set(np.unique(y)) == {0, 1}
    X, y = ds.load_diabetes()
    assert X.shape == (442, 10) and y.dtype == np.float64 and 25 <= y.min() < y.max() <= 346


def test_sklearn_missing_names_the_examples_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn` fail
    with pytest.raises(ImportError, match=r"portable-nn\[examples\]"):
        ds.load_digits()


# IDX ------------------------------------------------------------------------------------------
ARRAYS = {
    "uint8": np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
    "float32": np.linspace(-1, 1, 10, dtype=np.float32).reshape(5, 2),
    "int16": np.array([-300, 0, 300], dtype=np.int16),
    "float64": np.array([[np.pi]]),
}


@pytest.mark.parametrize("kind", sorted(ARRAYS))
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, kind, compress):
    a = ARRAYS[kind]
    path = tmp_path / "data.bin"  # the name says nothing: gzip is detected by its magic bytes
    ds.write_idx(path, a, compress=compress)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == compress
    b = ds.read_idx(path)
    assert b.dtype == a.dtype and b.shape == a.shape and b.dtype.isnative
    np.testing.assert_array_equal(b, a)


def test_idx_header_is_the_mnist_format(tmp_path):
    path = tmp_path / "labels.idx1-ubyte.gz"
    ds.write_idx(path, np.array([7, 2, 1], dtype=np.uint8))  # .gz name -> compressed
    raw = gzip.decompress(path.read_bytes())
    assert raw == bytes([0, 0, 8, 1]) + struct.pack(">I", 3) + bytes([7, 2, 1])
    # big-endian data: a hand-written float32 file
    hand = tmp_path / "f32"
    hand.write_bytes(bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 2) + struct.pack(">ff", 1.5, -2.0))
    np.testing.assert_array_equal(ds.read_idx(hand), np.array([1.5, -2.0], dtype=np.float32))


def _header(code, dims):
    """An IDX header: magic with ``code``, then the dimensions."""
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


@pytest.mark.parametrize("payload, match", [
    (b"\x00\x00", "truncated"),
    (b"\x01\x02\x08\x01" + struct.pack(">I", 1) + b"\x00", "bad magic number 01020801"),
    (_header(0x07, [1]) + b"\x00", "unknown data type code 0x07"),
    (bytes([0, 0, 8, 3]) + struct.pack(">I", 2), "truncated: its header announces 3 dimensions"),
    (_header(0x08, [2, 3]) + bytes(5),
     r"truncated: shape \(2, 3\) of uint8 needs 6 data bytes, found 5"),
    (_header(0x0D, [2]) + bytes(12), "longer than its header says"),
])
@pytest.mark.parametrize("compress", [False, True])
def test_idx_errors_name_the_file_and_the_problem(tmp_path, payload, match, compress):
    path = tmp_path / "broken.idx"
    path.write_bytes(gzip.compress(payload) if compress else payload)
    with pytest.raises(ValueError, match=match) as info:
        ds.read_idx(path)
    assert "broken.idx" in str(info.value)


def test_idx_missing_file_and_corrupt_gzip(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.idx"):
        ds.read_idx(tmp_path / "nothere.idx")
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(_header(0x08, [100]) + bytes(100))[:20])
    with pytest.raises(ValueError, match="cut.gz.*gzip"):
        ds.read_idx(cut)
    with pytest.raises(ValueError, match="directory"):
        ds.read_idx(tmp_path)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="int64"):
        ds.write_idx(tmp_path / "x", np.arange(3, dtype=np.int64))


def _fake_mnist(tmp_path, n=6, gz=False, kind="train"):
    """Write random MNIST-named IDX files; returns the images and labels written."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    suffix = ".gz" if gz else ""
    ds.write_idx(tmp_path / f"{kind}-images-idx3-ubyte{suffix}", images)
    ds.write_idx(tmp_path / f"{kind}-labels-idx1-ubyte{suffix}", labels)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist(tmp_path, gz):
    images, labels = _fake_mnist(tmp_path, gz=gz, kind="t10k")
    X, y = ds.load_mnist(tmp_path, kind="t10k")
    np.testing.assert_array_equal(X, images)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)
    X2, _ = ds.load_mnist(tmp_path, kind="test")
    np.testing.assert_array_equal(X2, images)


def test_load_mnist_errors(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        ds.load_mnist(tmp_path, kind="validation")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        ds.load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="data_dir"):
        ds.load_mnist(tmp_path / "absent")
    _fake_mnist(tmp_path, n=4)
    ds.write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"labels .* shape \(3,\), expected \(4,\)"):
        ds.load_mnist(tmp_path)


def test_lazy_submodule():
    assert pnn.datasets is ds
