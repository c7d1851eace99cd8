"""Losses: gradient checks, closed forms, stability, reductions, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.losses import L2, MSE, BinaryCrossEntropy, CrossEntropy
from tests.conftest import to_np


def _cases(backend, rng):
    pred = rng.normal(size=(5, 3))
    labels = np.array([0, 2, 1, 1, 0])
    onehot = np.eye(3)[labels]
    bits = (rng.uniform(size=(5, 3)) > 0.5).astype(float)
    probs = rng.uniform(0.05, 0.95, size=(5, 3))
    soft = probs / probs.sum(1, keepdims=True)
    a = lambda v: backend.asarray(v, dtype="float64")
    return [
        (L2(), a(pred), a(rng.normal(size=(5, 3)))),
        (L2(reduction="sum"), a(pred), a(rng.normal(size=(5, 3)))),
        (MSE(), a(pred), a(rng.normal(size=(5, 3)))),
        (MSE(reduction="sum"), a(pred), a(rng.normal(size=(5, 3)))),
        (BinaryCrossEntropy(), a(pred), a(bits)),
        (BinaryCrossEntropy(reduction="sum"), a(pred), a(bits)),
        (BinaryCrossEntropy(from_logits=False), a(probs), a(bits)),
        (CrossEntropy(), a(pred), backend.asarray(labels)),
        (CrossEntropy(), a(pred), a(onehot)),
        (CrossEntropy(reduction="sum"), a(pred), a(soft)),
        (CrossEntropy(from_logits=False), a(soft), backend.asarray(labels)),
    ]


def test_every_loss_gradcheck_float64(backend, rng):
    for loss, pred, target in _cases(backend, rng):
        result = pnn.gradcheck(loss, pred, target=target)
        assert result.max_error < 1e-6, (loss, result)


def test_closed_forms(backend):
    a = lambda v: backend.asarray(np.array(v, dtype=float), dtype="float64")
    y, t = a([[1.0, 2.0], [3.0, 5.0]]), a([[0.0, 2.0], [1.0, 1.0]])
    # L2: ½ Σ (y − t)² per sample, mean over the batch: (½·1 + ½·20) / 2
    assert float(L2().forward(y, t)) == pytest.approx(5.25)
    assert float(L2(reduction="sum").forward(y, t)) == pytest.approx(10.5)
    assert float(MSE().forward(y, t)) == pytest.approx(21 / 4)
    np.testing.assert_allclose(to_np(_grad(MSE(), y, t)),
                               2 * (to_np(y) - to_np(t)) / 4)
    z = a([[0.0], [2.0]])
    bits = a([[1.0], [0.0]])
    expected = (math.log(2) + math.log(1 + math.exp(2))) / 2
    assert float(BinaryCrossEntropy().forward(z, bits)) == pytest.approx(expected)
    logits = a([[1.0, 2.0, 3.0]])
    lse = math.log(math.exp(1) + math.exp(2) + math.exp(3))
    ce = CrossEntropy()
    assert float(ce.forward(logits, backend.asarray(np.array([0])))) == pytest.approx(lse - 1.0)
    soft = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    # the lecture's gradient of softmax + cross-entropy: ŷ − t
    np.testing.assert_allclose(to_np(ce.backward()), [soft - [1, 0, 0]], rtol=1e-12)


def _grad(loss, y, t):
    loss.forward(y, t)
    return loss.backward()


def test_integer_and_one_hot_targets_agree(backend, rng):
    pred = backend.asarray(rng.normal(size=(6, 4)), dtype="float64")
    labels = np.array([3, 0, 1, 2, 2, 1])
    a, b = CrossEntropy(), CrossEntropy()
    va = float(a.forward(pred, backend.asarray(labels)))
    vb = float(b.forward(pred, backend.asarray(np.eye(4)[labels], dtype="float64")))
    assert va == pytest.approx(vb, rel=1e-12)
    np.testing.assert_allclose(to_np(a.backward()), to_np(b.backward()), rtol=1e-12)


def test_logits_and_probabilities_paths_agree(backend, rng):
    z = rng.normal(size=(4, 3))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    labels = backend.asarray(np.array([0, 1, 2, 1]))
    from_logits = float(CrossEntropy().forward(backend.asarray(z, dtype="float64"), labels))
    from_probs = float(CrossEntropy(from_logits=False).forward(
        backend.asarray(p, dtype="float64"), labels))
    assert from_logits == pytest.approx(from_probs, rel=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", [BinaryCrossEntropy(), CrossEntropy()])
def test_cross_entropies_are_stable_for_huge_logits(backend, loss, dtype):
    import warnings

    z = backend.asarray([[1e4, -1e4], [-1e4, 1e4]], dtype=dtype)
    t = (backend.asarray(np.array([[1.0, 0.0], [1.0, 0.0]]), dtype=dtype)
         if isinstance(loss, BinaryCrossEntropy) else backend.asarray(np.array([0, 0])))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings on the way either
        value = float(loss.forward(z, t))
        g = to_np(loss.backward())
    assert g.dtype == np.dtype(dtype)
    assert math.isfinite(value) and np.all(np.isfinite(g))
    # the second sample is confidently wrong: the loss is about 1e4 (halved by the mean), not inf
    assert 1e3 < value < 1e5


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_loss_dtype_follows_predictions(backend, rng, dtype):
    pred = backend.asarray(rng.normal(size=(3, 2)), dtype=dtype)
    for loss, target in [(L2(), pred), (MSE(), pred),
                         (BinaryCrossEntropy(), backend.asarray(np.ones((3, 2)), dtype=dtype)),
                         (CrossEntropy(), backend.asarray(np.array([0, 1, 1])))]:
        assert loss.forward(pred, target).dtype == backend.dtype(dtype)
        assert loss.backward().dtype == backend.dtype(dtype)


def test_mismatched_shapes_and_bad_labels_raise(backend):
    pred = backend.asarray(np.zeros((4, 3)), dtype="float32")
    with pytest.raises(ValueError, match=r"target shape \(4, 2\) does not match prediction shape \(4, 3\)"):
        MSE().forward(pred, backend.asarray(np.zeros((4, 2)), dtype="float32"))
    with pytest.raises(ValueError, match=r"class labels must be in \[0, 2\] for 3 outputs, got labels from 0 to 3"):
        CrossEntropy().forward(pred, backend.asarray(np.array([0, 1, 2, 3])))
    with pytest.raises(ValueError, match="got labels from -1"):
        CrossEntropy().forward(pred, backend.asarray(np.array([0, -1, 2, 1])))
    with pytest.raises(ValueError, match="3 labels for 4 predictions"):
        CrossEntropy().forward(pred, backend.asarray(np.array([0, 1, 2])))
    with pytest.raises(ValueError, match="must be integer class labels"):
        CrossEntropy().forward(pred, backend.asarray(np.array([0.0, 1.0, 2.0, 1.0]), dtype="float32"))
    with pytest.raises(ValueError, match="one-hot rows of shape"):
        CrossEntropy().forward(pred, backend.asarray(np.zeros((4, 5)), dtype="float32"))
    with pytest.raises(ValueError, match="expects predictions of shape"):
        L2().forward(backend.asarray(np.zeros(4), dtype="float32"),
                     backend.asarray(np.zeros(4), dtype="float32"))
    with pytest.raises(RuntimeError, match="before forward"):
        MSE().backward()


def test_dtype_mismatches_and_mixed_libraries_raise_type_errors(backend):
    pred = backend.asarray(np.zeros((4, 3)), dtype="float32")
    wide = backend.asarray(np.zeros((4, 3)), dtype="float64")
    for loss in (L2(), MSE(), BinaryCrossEntropy(), CrossEntropy()):
        with pytest.raises(TypeError, match="target has dtype .*float64.*pred has .*float32"):
            loss.forward(pred, wide)
    ints = backend.asarray(np.zeros((4, 3), dtype=np.int64))
    with pytest.raises(TypeError, match="target has dtype"):
        MSE().forward(pred, ints)
    with pytest.raises(TypeError, match="pred must be a floating-point array"):
        MSE().forward(ints, ints)
    if backend.name != "numpy":
        with pytest.raises(TypeError, match="pred and target must be arrays of one library"):
            MSE().forward(pred, np.zeros((4, 3), dtype=np.float32))


def test_an_empty_batch_is_refused(backend):
    empty = backend.asarray(np.zeros((0, 3)), dtype="float32")
    for loss, target in ((MSE(), empty), (L2(), empty), (BinaryCrossEntropy(), empty),
                         (CrossEntropy(), backend.asarray(np.zeros(0, dtype=np.int64)))):
        with pytest.raises(ValueError, match="no rows"):
            loss.forward(empty, target)


def test_cross_entropy_refuses_a_single_output(backend):
    pred = backend.asarray(np.zeros((4, 1)), dtype="float32")
    with pytest.raises(ValueError, match="at least 2 outputs.*BinaryCrossEntropy"):
        CrossEntropy().forward(pred, backend.asarray(np.zeros(4, dtype=np.int64)))
    model = pnn.Sequential(pnn.layers.Dense(2, 1), device=backend, seed=0)
    before = model.state_dict()
    with pytest.raises(ValueError, match="at least 2 outputs"):
        model.fit(np.zeros((8, 2)), np.zeros(8, dtype=int), loss="cross_entropy",
                  optimizer="sgd", epochs=1, verbose=0)
    assert model.optimizer is None
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_constructor_validation():
    with pytest.raises(ValueError, match="reduction must be"):
        MSE(reduction="avg")
    with pytest.raises(TypeError, match="from_logits"):
        CrossEntropy(from_logits="yes")
    with pytest.raises(ValueError, match="loss must be"):
        pnn.losses.get("hinge")
    assert isinstance(pnn.losses.get("cross_entropy"), CrossEntropy)
