"""Losses: gradient checks, closed forms, stability, reductions, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.losses import L2, MAE, MSE, BinaryCrossEntropy, CrossEntropy, Huber, Loss
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


# -- the protocol: per_sample / per_sample_grad, sample weights, MAE, Huber ----------------------


def _all_losses():
    """Every built-in loss in every configuration, with a maker of (pred, target) host data."""
    rng = np.random.default_rng(7)
    pred = rng.normal(size=(6, 3)) * 2.0
    reg_t = rng.normal(size=(6, 3))
    bits = (rng.uniform(size=(6, 3)) > 0.5).astype(float)
    probs = rng.uniform(0.05, 0.95, size=(6, 3))
    labels = np.array([0, 2, 1, 1, 0, 2])
    soft = probs / probs.sum(1, keepdims=True)
    out = []
    for red in ("mean", "sum"):
        out += [
            (L2(reduction=red), pred, reg_t), (MSE(reduction=red), pred, reg_t),
            (MAE(reduction=red), pred, reg_t), (Huber(0.7, reduction=red), pred, reg_t),
            (BinaryCrossEntropy(reduction=red), pred, bits),
            (BinaryCrossEntropy(from_logits=False, reduction=red), probs, bits),
            (CrossEntropy(reduction=red), pred, labels),
            (CrossEntropy(reduction=red), pred, soft),
            (CrossEntropy(reduction=red), pred, 1.7 * soft),  # rows that do not sum to 1
            (CrossEntropy(from_logits=False, reduction=red), soft, labels),
            (CrossEntropy(from_logits=False, reduction=red), soft, np.eye(3)[labels]),
        ]
    return out


def _dev(backend, a):
    a = np.asarray(a)
    return backend.asarray(a, dtype="float64" if a.dtype.kind == "f" else None)


def test_fast_path_and_per_sample_path_agree(backend):
    """Every built-in loss: the fused ``_forward`` (no weights) and the generic reduction of
    ``per_sample``/``per_sample_grad`` give the same value and gradient, both reductions."""
    for loss, p, t in _all_losses():
        pred, target = _dev(backend, p), _dev(backend, t)
        xp = backend.xp
        fast = float(loss._forward(xp, pred, target))
        g_fast = to_np(loss.backward())
        rows = loss.per_sample(xp, pred, target)
        assert tuple(rows.shape) == (6,), loss
        generic = float(loss._forward_per_sample(xp, pred, target, None))
        g_generic = to_np(loss.backward())
        assert generic == pytest.approx(fast, rel=1e-12), loss
        np.testing.assert_allclose(g_generic, g_fast, rtol=1e-12, atol=1e-15, err_msg=repr(loss))
        # and the reduction of the rows is the loss
        total = float(backend.xp.sum(rows))
        assert fast == pytest.approx(total / 6 if loss.reduction == "mean" else total, rel=1e-12)


def test_unit_weights_change_nothing_and_weights_are_a_weighted_mean(backend):
    w = np.array([0.5, 2.0, 0.0, 1.0, 3.0, 1.5])
    for loss, p, t in _all_losses():
        pred, target = _dev(backend, p), _dev(backend, t)
        plain = float(loss(pred, target))
        g_plain = to_np(loss.backward())
        ones = float(loss(pred, target, sample_weight=np.ones(6)))
        assert ones == pytest.approx(plain, rel=1e-12), loss
        np.testing.assert_allclose(to_np(loss.backward()), g_plain, rtol=1e-12, atol=1e-15)
        rows = to_np(loss.per_sample(backend.xp, pred, target))
        weighted = float(loss(pred, target, sample_weight=backend.asarray(w)))
        expected = (w * rows).sum() / (w.sum() if loss.reduction == "mean" else 1.0)
        assert weighted == pytest.approx(expected, rel=1e-12), loss


def test_integer_weights_equal_repeating_rows(backend, rng):
    """PyTorch's class-weight convention: weight 2 is the row twice, weight 0 drops it."""
    pred = rng.normal(size=(4, 3))
    labels = np.array([2, 0, 1, 1])
    w = np.array([2, 1, 0, 3])
    rep = np.repeat(np.arange(4), w)
    for loss in (CrossEntropy(), MSE(), Huber(0.5), BinaryCrossEntropy()):
        t = labels if isinstance(loss, CrossEntropy) else (pred > 0.3).astype(float)
        weighted = float(loss(_dev(backend, pred), _dev(backend, t), sample_weight=w.tolist()))
        g_w = to_np(loss.backward())
        repeated = float(loss(_dev(backend, pred[rep]), _dev(backend, t[rep])))
        g_rep = to_np(loss.backward())
        assert weighted == pytest.approx(repeated, rel=1e-12), loss
        summed = np.zeros_like(g_w)
        np.add.at(summed, rep, g_rep)  # a repeated row's gradient is the sum over its copies
        np.testing.assert_allclose(g_w, summed, rtol=1e-12, atol=1e-15, err_msg=repr(loss))


def test_weighted_losses_match_torch():
    """Weighted value and gradient against torch: the element losses (reduction='none') reduced
    by hand to rows (their mean under "mean", sum under "sum", as torch reduces elements), then
    ``Σ w_i l_i / Σ w_i`` or ``Σ w_i l_i``; the gradient by autograd."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(3)
    z, y = rng.normal(size=(5, 4)) * 2, rng.normal(size=(5, 4)) * 0.5
    labels, w = np.array([3, 0, 1, 2, 1]), np.array([1.0, 0.0, 2.5, 1.0, 0.5])
    bits = (rng.uniform(size=(5, 4)) > 0.5).astype(float)
    ty, tb, tl = torch.tensor(y), torch.tensor(bits), torch.tensor(labels)
    cases = [
        (MSE, y, lambda a: F.mse_loss(a, ty, reduction="none")),
        (MAE, y, lambda a: F.l1_loss(a, ty, reduction="none")),
        (lambda reduction: Huber(0.8, reduction), y,
         lambda a: F.huber_loss(a, ty, reduction="none", delta=0.8)),
        (BinaryCrossEntropy, bits,
         lambda a: F.binary_cross_entropy_with_logits(a, tb, reduction="none")),
        (CrossEntropy, labels, lambda a: F.cross_entropy(a, tl, reduction="none")),
    ]
    b = pnn.backends.get_backend("cpu")
    tw = torch.tensor(w)
    for make, t, ref in cases:
        for red in ("mean", "sum"):
            loss = make(reduction=red)
            value = float(loss(b.asarray(z, dtype="float64"), _dev(b, t), sample_weight=w))
            a = torch.tensor(z, requires_grad=True)
            el = ref(a)
            rows = el if el.ndim == 1 else (el.mean(1) if red == "mean" else el.sum(1))
            expected = (tw * rows).sum() / (tw.sum() if red == "mean" else 1.0)
            expected.backward()
            assert value == pytest.approx(expected.item(), rel=1e-12), loss
            np.testing.assert_allclose(to_np(loss.backward()), a.grad.numpy(), rtol=1e-10,
                                       atol=1e-14, err_msg=repr(loss))


@pytest.mark.parametrize("red", ["mean", "sum"])
def test_mae_and_huber_match_torch(red):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    y, t = rng.normal(size=(6, 3)) * 2, rng.normal(size=(6, 3))
    y[0, 0] = t[0, 0]  # a zero difference: torch's gradient there is 0
    b = pnn.backends.get_backend("cpu")
    for loss, fn in [(MAE(reduction=red), lambda a: F.l1_loss(a, torch.tensor(t), reduction=red)),
                     (Huber(reduction=red), lambda a: F.huber_loss(a, torch.tensor(t),
                                                                   reduction=red)),
                     (Huber(0.3, reduction=red), lambda a: F.huber_loss(
                         a, torch.tensor(t), reduction=red, delta=0.3))]:
        a = torch.tensor(y, requires_grad=True)
        ref = fn(a)
        ref.backward()
        assert float(loss(b.asarray(y, dtype="float64"), b.asarray(t, dtype="float64"))) == \
            pytest.approx(ref.item(), rel=1e-12)
        np.testing.assert_allclose(to_np(loss.backward()), a.grad.numpy(), rtol=1e-12)
    assert to_np(_grad(MAE(), b.asarray(y), b.asarray(t)))[0, 0] == 0.0


def test_gradcheck_of_mae_huber_and_weighted_losses(backend, rng):
    y = rng.normal(size=(5, 3)) * 2
    t = y + np.where(rng.uniform(size=(5, 3)) > 0.5, 1.0, -1.0) * rng.uniform(0.1, 3.0, (5, 3))
    a = lambda v: backend.asarray(v, dtype="float64")
    d = np.abs(y - t)
    assert (d < 0.9).any() and (d > 1.1).any()  # both sides of delta=1 and away from the kinks
    w = a(np.array([1.0, 0.0, 2.0, 0.5, 3.0]))
    for loss in (MAE(), MAE(reduction="sum"), Huber(), Huber(reduction="sum"), Huber(delta=2.0)):
        assert pnn.gradcheck(loss, a(y), target=a(t)), loss
        assert pnn.gradcheck(loss, a(y), target=a(t), sample_weight=w), loss
    w6 = a(np.linspace(0.0, 2.0, 6))
    for loss, p, tt in _all_losses():
        result = pnn.gradcheck(loss, _dev(backend, p), target=_dev(backend, tt), sample_weight=w6)
        assert result.max_error < 1e-6, (loss, result)


def test_huber_takes_a_positive_delta():
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="delta must be a finite number > 0"):
            Huber(bad)
    for bad in ("1", None, True):
        with pytest.raises(TypeError, match="delta must be a number"):
            Huber(bad)
    assert Huber(2).get_config() == {"delta": 2.0, "reduction": "mean"}


def test_sample_weight_is_checked(backend):
    pred = backend.asarray(np.zeros((4, 2)), dtype="float64")
    loss = MSE()
    cases = [
        ([1, 2, 3], ValueError, r"sample_weight must have shape \(4,\).*got \(3,\)"),
        ([[1, 1, 1, 1]], ValueError, r"sample_weight must have shape \(4,\)"),
        ([1, -1, 1, 1], ValueError, "sample_weight must be >= 0"),
        ([0, 0, 0, 0], ValueError, "sample_weight must have a positive sum"),
        ([1, float("nan"), 1, 1], ValueError, "sample_weight contains NaN or Inf"),
        ([1, float("inf"), 1, 1], ValueError, "sample_weight contains NaN or Inf"),
        ([True, False, True, True], TypeError, "sample_weight must hold real numbers"),
        (["a", "b", "c", "d"], TypeError, "sample_weight must"),
        ("1111", TypeError, "sample_weight must be host data"),
    ]
    for w, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            loss(pred, pred, sample_weight=w)
    assert loss._cache is None  # nothing was computed
    if backend.name != "numpy":  # NumPy weights are host data; torch weights are not
        other = pnn.backends.get_backend("torch:cpu" if backend.name != "torch" else "cpu")
        if other.name != "numpy":
            with pytest.raises(TypeError, match="sample_weight must be host data"):
                loss(pred, pred, sample_weight=other.asarray(np.ones(4)))
    # a float32 prediction takes float64 host weights in its own dtype
    p32 = backend.asarray(np.ones((4, 2)), dtype="float32")
    assert loss(p32, p32 * 0.0, sample_weight=np.array([1.0, 2.0, 3.0, 4.0])).dtype == p32.dtype
    assert loss.backward().dtype == p32.dtype


class _LogCosh(Loss):
    """The example of Loss's docstring."""

    def per_sample(self, xp, pred, target):
        a = xp.abs(pred - target)
        return xp.mean(a + xp.log1p(xp.exp(-2.0 * a)) - math.log(2.0), axis=1)

    def per_sample_grad(self, xp, pred, target):
        return xp.tanh(pred - target) / pred.shape[1]


class _OldStyle(Loss):
    """A user loss written the old way: forward and backward overridden."""

    def forward(self, pred, target):
        from array_api_compat import array_namespace

        self._d = pred - target
        return 0.5 * array_namespace(pred).sum(self._d * self._d)

    def backward(self):
        return self._d


class _Nothing(Loss):
    pass


class _HalfDone(Loss):
    def per_sample(self, xp, pred, target):
        return xp.sum(pred, axis=1)


def test_a_user_loss_gets_reductions_weights_gradcheck_and_fit(backend, rng):
    y, t = rng.normal(size=(6, 2)) * 3, rng.normal(size=(6, 2))
    a = lambda v: backend.asarray(v, dtype="float64")
    d = y - t
    rows = np.log(np.cosh(d)).mean(1)
    assert float(_LogCosh()(a(y), a(t))) == pytest.approx(rows.mean(), rel=1e-12)
    assert float(_LogCosh(reduction="sum")(a(y), a(t))) == pytest.approx(rows.sum(), rel=1e-12)
    w = np.array([1.0, 2.0, 0.0, 1.0, 1.0, 3.0])
    assert float(_LogCosh()(a(y), a(t), sample_weight=w)) == \
        pytest.approx((w * rows).sum() / w.sum(), rel=1e-12)
    for loss in (_LogCosh(), _LogCosh(reduction="sum")):
        assert pnn.gradcheck(loss, a(y), target=a(t))
        assert pnn.gradcheck(loss, a(y), target=a(t), sample_weight=a(w))
    X = rng.normal(size=(64, 3))
    Y = X @ np.array([[1.0], [-2.0], [0.5]])
    model = pnn.Sequential(pnn.layers.Dense(3, 1), device=backend, dtype="float64", seed=0)
    hist = model.fit(X, Y, loss=_LogCosh(), optimizer=pnn.optimizers.Adam(learning_rate=0.1),
                     epochs=8, batch_size=32, verbose=0)
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]


def test_an_old_style_loss_works_in_gradcheck_and_fit(backend, rng):
    y, t = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    a = lambda v: backend.asarray(v, dtype="float64")
    loss = _OldStyle()
    loss.check_protocol()  # passes
    assert pnn.gradcheck(loss, a(y), target=a(t))
    # fit calls _forward, which now routes to the user's forward
    assert float(loss._forward(backend.xp, a(y), a(t))) == pytest.approx(0.5 * ((y - t) ** 2).sum())
    X = rng.normal(size=(32, 2))
    model = pnn.Sequential(pnn.layers.Dense(2, 2), device=backend, dtype="float64", seed=0)
    hist = model.fit(X, X * 2.0, loss=_OldStyle(), optimizer="sgd", epochs=5, batch_size=8,
                     verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    with pytest.raises(ValueError, match="implement per_sample"):
        loss(a(y), a(t), sample_weight=[1, 1, 1, 1])
    with pytest.raises(ValueError, match="implement per_sample"):
        loss._forward(backend.xp, a(y), a(t), a(np.ones(4)))


def test_an_incomplete_user_loss_says_what_to_implement(backend):
    p = backend.asarray(np.zeros((2, 2)), dtype="float64")
    with pytest.raises(TypeError, match=r"implement per_sample\(self, xp, pred, target\).*"
                                         r"per_sample_grad"):
        _Nothing().check_protocol()
    with pytest.raises(TypeError, match="does not define its loss"):
        _Nothing().forward(p, p)
    with pytest.raises(TypeError, match="does not define its loss"):
        _Nothing()._forward(backend.xp, p, p)
    with pytest.raises(TypeError, match="implements per_sample but not per_sample_grad"):
        _HalfDone()(p, p)
    with pytest.raises(TypeError, match="does not define its loss"):
        pnn.gradcheck(_Nothing(), p, target=p)


def test_per_sample_results_of_the_wrong_shape_are_refused(backend):
    class Flat(Loss):
        def per_sample(self, xp, pred, target):
            return xp.sum(pred)  # 0-d: forgot axis=1

        def per_sample_grad(self, xp, pred, target):
            return xp.ones_like(pred)[:, 0]

    p = backend.asarray(np.ones((3, 2)), dtype="float64")
    with pytest.raises(ValueError, match=r"per_sample must return one loss per row, shape \(3,\)"):
        Flat()(p, p)

    class Rows(Flat):
        def per_sample(self, xp, pred, target):
            return xp.sum(pred, axis=1)

    rows = Rows()
    rows(p, p)
    with pytest.raises(ValueError, match=r"per_sample_grad must return pred's shape \(3, 2\)"):
        rows.backward()


def test_names_and_aliases():
    expected = {
        L2: ["l2", "L2"],
        MSE: ["mse", "mean_squared_error", "MSE"],
        MAE: ["mae", "mean_absolute_error", "l1", "L1", "MAE"],
        Huber: ["huber", "huber_loss", "Huber"],
        BinaryCrossEntropy: ["bce", "binary_crossentropy", "binary_cross_entropy", "BCE"],
        CrossEntropy: ["cross_entropy", "crossentropy", "categorical_crossentropy",
                       "categorical_cross_entropy", "sparse_categorical_crossentropy",
                       "CrossEntropy", "Sparse_Categorical_Crossentropy"],
    }
    for cls, names in expected.items():
        for name in names:
            assert type(pnn.losses.get(name)) is cls, name
    with pytest.raises(ValueError, match="huber_loss.*l1.*sparse_categorical_crossentropy"):
        pnn.losses.get("hinge")
    with pytest.raises(ValueError, match="loss must be a Loss"):
        pnn.losses.get(3)


def test_probabilities_and_expects_logits(backend, rng):
    z = rng.normal(size=(4, 3))
    a = backend.asarray(z, dtype="float64")
    xp = backend.xp
    soft = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(to_np(CrossEntropy().probabilities(xp, a)), soft, rtol=1e-12)
    np.testing.assert_allclose(to_np(BinaryCrossEntropy().probabilities(xp, a)),
                               1 / (1 + np.exp(-z)), rtol=1e-12)
    for loss in (CrossEntropy(from_logits=False), BinaryCrossEntropy(from_logits=False)):
        np.testing.assert_array_equal(to_np(loss.probabilities(xp, a)), z)
        assert loss.expects_logits is False
    assert CrossEntropy().expects_logits is True and BinaryCrossEntropy().expects_logits is True
    for loss in (L2(), MSE(), MAE(), Huber(), _LogCosh()):
        assert loss.expects_logits is False
        with pytest.raises(TypeError, match="regressor"):
            loss.probabilities(xp, a)
    with pytest.raises(AttributeError):
        CrossEntropy().expects_logits = False  # read-only: set from_logits instead


# -- targets and clipping -----------------------------------------------------------------------
def test_bce_refuses_targets_outside_0_1_and_nan(backend):
    pred = backend.asarray(np.zeros((3, 1)), dtype="float64")
    loss = BinaryCrossEntropy()
    for bad, msg in (([2.0, 0.0, 1.0], r"values from 0.0 to 2.0"),
                     ([0.0, -1.0, 1.0], r"values from -1.0 to 1.0"),
                     ([0.0, float("nan"), 1.0], "1 NaN")):
        t = backend.asarray(np.array(bad)[:, None], dtype="float64")
        with pytest.raises(ValueError, match=r"targets must be in \[0, 1\].*" + msg):
            loss(pred, t)
        loss.validate(backend.xp, pred, t, check_values=False)  # no value check asked: no error
    assert loss._cache is None
    loss(pred, backend.asarray(np.array([[0.0], [0.3], [1.0]]), dtype="float64"))


def test_cross_entropy_refuses_nan_or_negative_rows(backend):
    pred = backend.asarray(np.zeros((4, 3)), dtype="float64")
    t = np.eye(3)[[0, 1, 2, 0]]
    t[2, 1], t[3, 0] = -0.5, np.nan
    with pytest.raises(ValueError, match=r"2 of 4 rows have NaN, Inf or negative entries "
                                         r"\(first: row 2\)"):
        CrossEntropy()(pred, backend.asarray(t, dtype="float64"))
    CrossEntropy().validate(backend.xp, pred, backend.asarray(t, dtype="float64"),
                            check_values=False)


def test_clipped_probabilities_have_zero_gradient(backend):
    """from_logits=False clips; backward is the derivative of the clipped forward: 0 where the
    clip is active (not −t/1e-7), checked by finite differences with nudges inside the clip."""
    a = lambda v: backend.asarray(np.array(v, dtype=float), dtype="float64")
    # rows: below the clip (0, 1e-9, 3e-8) and ordinary probabilities
    p = a([[0.0, 0.6, 0.4], [1e-9, 0.5, 0.5], [0.2, 3e-8, 0.8], [0.3, 0.3, 0.4]])
    labels = backend.asarray(np.array([0, 0, 1, 2]))
    ce = CrossEntropy(from_logits=False)
    value = float(ce(p, labels))
    assert value == pytest.approx(-(3 * math.log(1e-7) + math.log(0.4)) / 4, rel=1e-12)
    g = to_np(ce.backward())
    assert g[0, 0] == 0.0 and g[1, 0] == 0.0 and g[2, 1] == 0.0
    assert g[3, 2] == pytest.approx(-1 / 0.4 / 4)
    # eps=1e-9 keeps every nudge of a clipped entry inside the clip
    assert pnn.gradcheck(ce, p, target=labels, eps=1e-9, tol=1e-5)
    assert pnn.gradcheck(ce, p, target=labels, eps=1e-9, tol=1e-5,
                         sample_weight=a([1.0, 2.0, 0.5, 1.0]))
    # BCE: both ends, exactly 0 and 1 and beyond the clip on each side
    q = a([[0.0, 1.0, 0.5], [1e-9, 1.0 - 1e-9, 0.3], [0.7, 0.2, 1.0]])
    bits = a([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    bce = BinaryCrossEntropy(from_logits=False)
    value = float(bce(q, bits))
    lo, hi = 1e-7, 1.0 - 1e-7
    qc = np.clip(to_np(q), lo, hi)
    t = to_np(bits)
    expected = -(t * np.log(qc) + (1 - t) * np.log(1 - qc)).mean()
    assert math.isfinite(value) and value == pytest.approx(expected, rel=1e-9)
    g = to_np(bce.backward())
    outside = (to_np(q) < lo) | (to_np(q) > hi)
    assert np.all(g[outside] == 0.0) and np.all(g[~outside] != 0.0)
    assert pnn.gradcheck(bce, q, target=bits, eps=1e-9, tol=1e-5)
    assert pnn.gradcheck(BinaryCrossEntropy(from_logits=False, reduction="sum"), q, target=bits,
                         eps=1e-9, tol=1e-5)


def test_a_subclass_that_redefines_per_sample_is_not_bypassed_by_the_fused_path(backend, rng):
    class WorstOutput(MSE):
        """MSE's subclass whose row loss is the worst output's squared error."""

        def per_sample(self, xp, pred, target):
            d = pred - target
            return xp.max(d * d, axis=1)

        def per_sample_grad(self, xp, pred, target):
            d = pred - target
            worst = (d * d) == xp.max(d * d, axis=1, keepdims=True)
            return xp.where(worst, 2.0 * d, xp.zeros_like(d))

    y, t = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    a = lambda v: backend.asarray(v, dtype="float64")
    assert float(WorstOutput()(a(y), a(t))) == pytest.approx(((y - t) ** 2).max(1).mean())
    assert pnn.gradcheck(WorstOutput(), a(y), target=a(t))
