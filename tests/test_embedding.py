"""Embedding: lookups, the accumulated weight gradient (both algorithms), PyTorch agreement,
index errors, and a small model chained by hand."""

from __future__ import annotations

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.layers import Dense, Embedding, layer_from_config
from portable_nn.layers import embedding as embedding_module
from tests.conftest import to_np

# the weight gradient is a one-hot product up to _ONE_HOT_MAX_ROWS rows, a sorted segmented sum
# beyond: every test that cares runs one table of each kind
SMALL, LARGE = 7, 130
assert SMALL <= embedding_module._ONE_HOT_MAX_ROWS < LARGE
TABLES = pytest.mark.parametrize("rows", [SMALL, LARGE], ids=["one-hot", "sorted"])


def _indices(rows, shape, seed=0):
    """Random indices with guaranteed repeats (the gradient must add them up)."""
    idx = np.random.default_rng(seed).integers(0, rows, size=shape)
    flat = idx.reshape(-1)
    flat[:4] = 2
    flat[-3:] = rows - 1
    return idx


def _scatter_add(rows, idx, g):
    """The reference dL/dW: np.add.at accumulates repeated indices."""
    out = np.zeros((rows, g.shape[-1]))
    np.add.at(out, idx.reshape(-1), g.reshape(-1, g.shape[-1]))
    return out


@TABLES
def test_gradcheck_weight_with_repeated_indices(backend, rows):
    layer = Embedding(rows, 2).build(backend, "float64", seed=0)
    idx = backend.asarray(_indices(rows, (2, 5)))
    result = pnn.gradcheck(layer, idx, check_input=False)
    assert set(result.errors) == {"weight"}
    assert result.max_error < 1e-6, result


@TABLES
def test_forward_and_weight_gradient_equal_torch(backend, rows):
    torch = pytest.importorskip("torch")
    layer = Embedding(rows, 4).build(backend, "float64", seed=1)
    idx = _indices(rows, (3, 4, 5))
    g = np.random.default_rng(2).normal(size=(3, 4, 5, 4))
    y = to_np(layer.forward(backend.asarray(idx)))
    assert layer.backward(backend.asarray(g, dtype="float64"), need_input_grad=True) is None
    tw = torch.tensor(to_np(layer.weight.value), requires_grad=True)
    ty = torch.nn.functional.embedding(torch.tensor(idx), tw)
    ty.backward(torch.tensor(g))
    assert y.shape == (3, 4, 5, 4)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_allclose(to_np(layer.weight.grad), tw.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(to_np(layer.weight.grad), _scatter_add(rows, idx, g), rtol=1e-12,
                               atol=1e-14)


def test_the_two_gradient_algorithms_agree(backend, monkeypatch):
    rows = 50
    layer = Embedding(rows, 3).build(backend, "float64", seed=0)
    grads = {}
    for name, limit in (("one-hot", rows), ("sorted", 0)):
        monkeypatch.setattr(embedding_module, "_ONE_HOT_MAX_ROWS", limit)
        for shape in ((6, 9), (0, 4)):  # an empty batch too: zero gradient, no error
            idx = _indices(rows, shape) if shape[0] else np.zeros(shape, dtype=np.int64)
            g = np.random.default_rng(1).normal(size=(*shape, 3))
            layer.forward(backend.asarray(idx))
            layer.backward(backend.asarray(g, dtype="float64"))
            grads[name, shape] = to_np(layer.weight.grad)
            np.testing.assert_allclose(grads[name, shape], _scatter_add(rows, idx, g),
                                       rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(grads["sorted", (0, 4)], np.zeros((rows, 3)))


def test_sorted_sum_keeps_the_rare_rows_digits_in_float32(backend):
    """A frequent token with large gradients sorts first; a running sum over all lookups
    (cumsum, then differences) would leave each rare row with an error of ~eps·4e6 ≈ 0.25,
    far above its true value ~1e-3. The segmented sum never mixes runs."""
    rows = 200
    layer = Embedding(rows, 2).build(backend, "float32", seed=0)
    rng = np.random.default_rng(0)
    idx = np.concatenate([np.zeros(4000, dtype=np.int64), np.arange(1, 151)])
    rng.shuffle(idx)
    g = np.where((idx == 0)[:, None], 1000.0 + rng.normal(size=(4150, 2)),
                 1e-3 * rng.normal(size=(4150, 2)))
    layer.forward(backend.asarray(idx))
    layer.backward(backend.asarray(g, dtype="float32"))
    grad = to_np(layer.weight.grad)
    assert grad.dtype == np.float32
    ref = _scatter_add(rows, idx, g)
    np.testing.assert_allclose(grad[1:151], ref[1:151], rtol=1e-6)
    np.testing.assert_allclose(grad[0], ref[0], rtol=1e-5)
    np.testing.assert_array_equal(grad[151:], 0.0)


@pytest.mark.parametrize("dtype", ["int32", "uint8"])
def test_any_integer_dtype(backend, dtype):
    layer = Embedding(LARGE, 3).build(backend, "float64", seed=0)
    idx = _indices(LARGE, (4, 6))
    g = backend.asarray(np.random.default_rng(1).normal(size=(4, 6, 3)), dtype="float64")
    ref_y = to_np(layer.forward(backend.asarray(idx)))
    layer.backward(g)
    ref_grad = to_np(layer.weight.grad)
    y = to_np(layer.forward(backend.xp.astype(backend.asarray(idx), getattr(backend.xp, dtype))))
    layer.backward(g)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(to_np(layer.weight.grad), ref_grad)


def test_narrow_index_dtypes_against_a_larger_table(backend):
    """A table longer than the dtype's range: no uint8 value is out of range (torch would wrap
    a comparison with 300 around to 44; the standard refuses it)."""
    layer = Embedding(300, 2).build(backend, "float64", seed=0)
    xp = backend.xp
    idx = backend.asarray(np.array([1, 200, 255]))
    y = to_np(layer.forward(xp.astype(idx, xp.uint8)))
    np.testing.assert_array_equal(y, to_np(layer.weight.value)[[1, 200, 255]])
    with pytest.raises(ValueError, match="got 1 outside, with the values -2$"):
        layer.forward(xp.astype(backend.asarray(np.array([1, -2, 100])), xp.int8))


def test_bad_indices_raise_before_any_change(backend):
    layer = Embedding(10, 3).build(backend, "float64", seed=0)
    good = _indices(10, (2, 3))
    g = backend.asarray(np.ones((2, 3, 3)), dtype="float64")
    layer.forward(backend.asarray(good))
    for bad, match in [
        (np.array([[1, 10, 12, 10]]), (r"Embedding\(10, 3\): indices must be in \[0, 10\), got 3 "
                                      r"outside, with the values 10, 12$")),
        (np.array([3, -1, 4]), r"got 1 outside, with the values -1$"),
        (np.arange(-20, 40), (r"got 50 outside, with the values -20, -19, -18, -17, -16, -15, "
                             r"-14, -13, \.\.\.$")),
    ]:
        with pytest.raises(ValueError, match=match):
            layer.forward(backend.asarray(bad))
    with pytest.raises(TypeError, match="integer indices x, got an array of dtype .*float64"):
        layer.forward(backend.asarray(np.array([[1.0, 2.0]]), dtype="float64"))
    with pytest.raises(TypeError, match="integer indices x, got an array of dtype .*bool"):
        layer.forward(backend.asarray(np.array([True, False])))
    with pytest.raises(TypeError, match="x must be an array"):
        layer.forward([[1, 2]])
    # the failed calls left the last good forward's cache: its backward still runs
    layer.backward(g)
    np.testing.assert_array_equal(to_np(layer.weight.grad), _scatter_add(10, good, np.ones(
        (2, 3, 3))))
    with pytest.raises(ValueError, match=r"grad_out of shape \(2, 3, 3\), got \(2, 3\)"):
        layer.backward(backend.asarray(np.ones((2, 3)), dtype="float64"))


def test_unbuilt_and_backward_before_forward():
    with pytest.raises(RuntimeError, match="Embedding is not built"):
        Embedding(4, 2).forward(np.array([1, 2]))
    layer = Embedding(4, 2).build("cpu", "float64")
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones((2, 2)))


@pytest.mark.parametrize("args,exc,match", [
    ((0, 3), ValueError, "num_embeddings must be >= 1"),
    ((3, 0), ValueError, "embedding_dim must be >= 1"),
    ((3.0, 2), TypeError, "num_embeddings must be an int"),
    ((3, "2"), TypeError, "embedding_dim must be an int"),
    ((3, 2, "nope"), ValueError, "unknown init 'nope'"),
])
def test_bad_constructor_arguments(args, exc, match):
    with pytest.raises(exc, match=match):
        Embedding(*args)


def test_frozen_weight_gets_no_gradient(backend):
    layer = Embedding(5, 2).build(backend, "float64", seed=0)
    layer.weight.trainable = False
    layer.forward(backend.asarray(np.array([1, 1, 3])))
    assert layer.backward(backend.asarray(np.ones((3, 2)), dtype="float64")) is None
    assert layer.weight.grad is None


def test_config_init_and_shapes(backend):
    layer = Embedding(1000, 10)
    assert layer.integer_input is True
    assert layer.output_shape((None, 7)) == (None, 7, 10)
    assert layer.state_shapes() == {"weight": (1000, 10)}
    clone = layer_from_config({"class": "Embedding", "config": layer.get_config()})
    a, b = layer.build(backend, "float64", seed=4), clone.build(backend, "float64", seed=4)
    w = to_np(a.weight.value)
    np.testing.assert_array_equal(to_np(b.weight.value), w)
    assert abs(w.mean()) < 0.05 and abs(w.std() - 1.0) < 0.05  # N(0, 1), as torch
    zeros = Embedding(3, 2, init="zeros").build(backend, "float64")
    np.testing.assert_array_equal(to_np(zeros.weight.value), np.zeros((3, 2)))
    assert Embedding(3, 2, init={"name": "uniform"}).get_config()["init"]["name"] == "uniform"


def test_a_model_chained_by_hand_learns(backend):
    """Embedding → reshape → Dense → CrossEntropy, the label being the first token's class:
    only the embedding rows and the dense weights together can carry it."""
    rng = np.random.default_rng(0)
    rows, length, dim, n = 12, 4, 5, 96
    tokens = rng.integers(0, rows, size=(n, length))
    labels = tokens[:, 0] % 3
    emb = Embedding(rows, dim).build(backend, "float32", seed=0)
    dense = Dense(length * dim, 3).build(backend, "float32", seed=1)
    loss = pnn.losses.CrossEntropy()
    opt = pnn.optimizers.SGD(learning_rate=0.5, momentum=0.9)
    x, t = backend.asarray(tokens), backend.asarray(labels)
    xp = backend.xp
    losses = []
    for _ in range(60):
        h = xp.reshape(emb.forward(x, training=True), (n, length * dim))
        losses.append(float(loss.forward(dense.forward(h, training=True), t)))
        gh = dense.backward(loss.backward())
        assert emb.backward(xp.reshape(gh, (n, length, dim)), need_input_grad=False) is None
        opt.step(emb.parameters() + dense.parameters())
    assert losses[-1] < 0.1 * losses[0]
