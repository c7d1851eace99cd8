"""Backend fast paths (``backends.ops``) against the generic Array API code they replace, the
generic code against hand-written formulas on every backend, and the benchmark's hand-written
reference against portable_nn (so the benchmark compares the same math)."""

from __future__ import annotations

import math

import array_api_compat
import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.backends import get_backend
from portable_nn.backends.numpy_backend import NumpyOps
from portable_nn.backends.ops import Ops, namespace_of, ops_for
from tests.conftest import to_np

TOL = {"float32": {"rtol": 2e-6, "atol": 1e-7}, "float64": {"rtol": 1e-12, "atol": 1e-14}}
DTYPES = ["float32", "float64"]


def _numpy_pair():
    """The NumPy backend's ops and the generic ops on the same namespace."""
    backend = get_backend("cpu")
    return backend, backend.ops, Ops(backend.xp)


def _relu_inputs(rng, dtype, shape=(7, 5)):
    x = rng.normal(size=shape)
    x[0, :3] = 0.0  # exact zeros: the kink, where both versions must give slope 0
    return x.astype(dtype)


# -- which ops a backend gets --------------------------------------------------------------------
def test_numpy_gets_its_fast_ops_and_others_the_generic_ones(backend):
    ops = backend.ops
    assert ops is ops_for(backend.xp) and ops is get_backend(backend.device_string).ops
    if backend.name == "numpy":
        assert type(ops) is NumpyOps
    else:
        assert type(ops) is Ops and ops.xp is backend.xp


def test_namespace_of_matches_array_namespace(backend):
    x = backend.asarray(np.ones((2, 3)), dtype="float32")
    t = backend.asarray(np.array([0, 1]))
    assert namespace_of(x, t) is array_api_compat.array_namespace(x, t)
    assert namespace_of(x, t) is namespace_of(x, t)


def test_namespace_of_still_rejects_mixed_libraries():
    strict = get_backend("array_api_strict")
    a, b = np.ones(2), strict.asarray(np.ones(2))
    for _ in range(2):  # a failed lookup must not be remembered as a success
        with pytest.raises(TypeError):
            namespace_of(a, b)


# -- NumPy fast paths == generic code ------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_fast_path_matches_generic(rng, dtype):
    _, fast, generic = _numpy_pair()
    x = _relu_inputs(rng, dtype)
    g = rng.normal(size=x.shape).astype(dtype)
    x0, g0 = x.copy(), g.copy()
    y = fast.relu(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    dx = fast.relu_backward(g, y)
    expected = generic.relu_backward(g, y)
    assert dx.dtype == expected.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(dx, expected)
    np.testing.assert_array_equal(dx[0, :3], 0.0)
    np.testing.assert_array_equal(x, x0)  # arguments are never written
    np.testing.assert_array_equal(g, g0)
    assert not np.shares_memory(dx, g)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_inplace_fast_paths_match_generic_and_write_over_their_argument(rng, dtype):
    _, fast, generic = _numpy_pair()
    x = _relu_inputs(rng, dtype)
    g = rng.normal(size=x.shape).astype(dtype)
    want_y = generic.relu(x)
    y = fast.relu_inplace(x)
    assert y is x and y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(y, want_y)
    want_dx = generic.relu_backward(g, y)
    dx = fast.relu_backward_inplace(g, y)
    assert dx is g and dx.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(dx, want_dx)
    # a read-only array is never written: a new one comes back
    ro = _relu_inputs(rng, dtype)
    ro0 = ro.copy()
    ro.flags.writeable = False
    out = fast.relu_inplace(ro)
    assert out is not ro
    np.testing.assert_array_equal(out, np.maximum(ro0, 0))
    np.testing.assert_array_equal(ro, ro0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_into_fast_paths_match_generic_and_reuse_out(rng, dtype):
    _, fast, generic = _numpy_pair()
    a = rng.normal(size=(6, 9)).astype(dtype)
    b = rng.normal(size=(6, 4)).astype(dtype)
    out = np.full((9, 4), np.nan, dtype=dtype)
    got = fast.matmul_into(a.T, b, out)
    assert got is out
    np.testing.assert_allclose(got, generic.matmul_into(a.T, b, None), **TOL[dtype])
    bout = np.full(4, np.nan, dtype=dtype)
    got = fast.sum_rows_into(b, bout)
    assert got is bout
    np.testing.assert_array_equal(got, generic.sum_rows_into(b, None))
    # an out of the wrong shape, dtype, or read-only is not used
    other = "float64" if dtype == "float32" else "float32"
    for bad in (np.empty((4, 9), dtype=dtype), np.empty((9, 4), dtype=other), None):
        got = fast.matmul_into(a.T, b, bad)
        assert got is not bad and got.shape == (9, 4) and got.dtype == np.dtype(dtype)
    ro = np.zeros((9, 4), dtype=dtype)
    ro.flags.writeable = False
    assert fast.matmul_into(a.T, b, ro) is not ro
    np.testing.assert_array_equal(ro, 0.0)
    assert fast.sum_rows_into(b, np.empty(5, dtype=dtype)).shape == (4,)


def test_value_range_fast_path_matches_generic(rng):
    _, fast, generic = _numpy_pair()
    for labels in (rng.integers(-3, 9, size=17), np.array([4]), rng.integers(0, 2, size=(3, 5))):
        got = fast.value_range(labels)
        assert got == generic.value_range(labels) == (int(labels.min()), int(labels.max()))
        assert all(type(v) is int for v in got)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reductions_fast_path_match_generic(rng, dtype):
    _, fast, generic = _numpy_pair()
    g = rng.normal(size=(33, 6)).astype(dtype)
    g0 = g.copy()
    for name in ("bias_grad", "sum_of_squares"):
        got, want = getattr(fast, name)(g), getattr(generic, name)(g)
        assert np.asarray(got).dtype == np.asarray(want).dtype == np.dtype(dtype)
        assert np.shape(got) == np.shape(want)
        np.testing.assert_array_equal(got, want)  # the same pairwise summation underneath
    np.testing.assert_array_equal(g, g0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1.0 / 9, 1.0])
def test_softmax_cross_entropy_fast_path_matches_generic(rng, dtype, scale):
    _, fast, generic = _numpy_pair()
    z = (rng.normal(size=(9, 4)) * 3).astype(dtype)
    z[0] = [1e4, -1e4, 0.0, 50.0]  # extreme logits must stay finite in both
    z[-1] = [-1e4, -2e4, -1e4 - 1.0, -3e4]  # every exp(z) underflows without the shift
    labels = rng.integers(0, 4, size=9)
    z0 = z.copy()
    v_fast, s_fast = fast.softmax_cross_entropy(z, labels, scale)
    v_gen, s_gen = generic.softmax_cross_entropy(z, labels, scale)
    assert np.asarray(v_fast).dtype == np.asarray(v_gen).dtype == np.dtype(dtype)
    assert math.isfinite(float(v_fast))
    np.testing.assert_allclose(float(v_fast), float(v_gen), rtol=TOL[dtype]["rtol"] * 10)
    g_fast = fast.softmax_cross_entropy_backward(s_fast)
    np.testing.assert_allclose(g_fast, generic.softmax_cross_entropy_backward(s_gen), **TOL[dtype])
    # backward twice gives the same gradient (it must not consume its state) and z is untouched
    np.testing.assert_array_equal(fast.softmax_cross_entropy_backward(s_fast), g_fast)
    np.testing.assert_array_equal(z, z0)


def _adam_by_hand(theta, grads, lr, b1, b2, eps):
    """torch.optim.Adam's published rule, step by step, in float64 NumPy."""
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        denom = np.sqrt(v) / math.sqrt(1 - b2**t) + eps
        theta = theta - lr / (1 - b1**t) * m / denom
    return theta, m, v


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_fast_path_matches_generic_and_is_in_place(rng, dtype):
    _, fast, generic = _numpy_pair()
    hp = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8}
    theta = rng.normal(size=(5, 4)).astype(dtype)
    grads = [rng.normal(size=theta.shape).astype(dtype) for _ in range(4)]
    a = [theta.copy(), np.zeros_like(theta), np.zeros_like(theta)]
    b = [theta.copy(), np.zeros_like(theta), np.zeros_like(theta)]
    for t, g in enumerate(grads, start=1):
        g0 = g.copy()
        out = fast.adam_update(a[0], g, a[1], a[2], **hp, t=t)
        assert all(o is x for o, x in zip(out, a))  # updated in place, same arrays
        b = list(generic.adam_update(b[0], g, b[1], b[2], **hp, t=t))
        np.testing.assert_array_equal(g, g0)
    for x, y in zip(a, b):
        assert x.dtype == np.dtype(dtype)
        np.testing.assert_allclose(x, y, rtol=TOL[dtype]["rtol"] * 20, atol=TOL[dtype]["atol"])


def test_adam_fast_path_falls_back_for_read_only_arrays(rng):
    fast = get_backend("cpu").ops
    theta = rng.normal(size=(3, 2))
    g = rng.normal(size=theta.shape)
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    before = theta.copy()
    theta.flags.writeable = False
    out = fast.adam_update(theta, g, m, v, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, t=1)
    expected = _adam_by_hand(before, [g], 0.1, 0.9, 0.999, 1e-8)
    for got, want in zip(out, expected):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert out[0] is not theta
    np.testing.assert_array_equal(theta, before)  # the read-only input is left as it was
    np.testing.assert_array_equal(m, 0.0)


# -- generic code == hand-written formulas, on every backend -------------------------------------
def test_generic_relu_ops_on_every_backend(backend, rng):
    ops = Ops(backend.xp)
    xh = _relu_inputs(rng, "float64")
    gh = rng.normal(size=xh.shape)
    x, g = backend.asarray(xh, dtype="float64"), backend.asarray(gh, dtype="float64")
    y = ops.relu(x)
    np.testing.assert_array_equal(to_np(y), np.maximum(xh, 0.0))
    np.testing.assert_array_equal(to_np(ops.relu_backward(g, y)), np.where(xh > 0, gh, 0.0))


def test_generic_and_backend_reductions_by_hand(backend, rng):
    gh = rng.normal(size=(9, 4))
    g = backend.asarray(gh, dtype="float64")
    for ops in (Ops(backend.xp), backend.ops):
        np.testing.assert_allclose(to_np(ops.bias_grad(g)), gh.sum(axis=0), rtol=1e-12)
        assert float(ops.sum_of_squares(g)) == pytest.approx((gh**2).sum(), rel=1e-12)


def test_generic_and_backend_softmax_cross_entropy_by_hand(backend, rng):
    zh = rng.normal(size=(6, 3))
    labels = np.array([2, 0, 1, 1, 2, 0])
    lse = np.log(np.exp(zh).sum(axis=1))
    expected_value = (lse - zh[np.arange(6), labels]).mean()
    soft = np.exp(zh - lse[:, None])
    expected_grad = (soft - np.eye(3)[labels]) / 6
    z, t = backend.asarray(zh, dtype="float64"), backend.asarray(labels)
    for ops in (Ops(backend.xp), backend.ops):
        value, state = ops.softmax_cross_entropy(z, t, 1.0 / 6)
        assert float(value) == pytest.approx(expected_value, rel=1e-12)
        np.testing.assert_allclose(to_np(ops.softmax_cross_entropy_backward(state)),
                                   expected_grad, rtol=1e-10, atol=1e-15)


def test_generic_and_backend_adam_by_hand(backend, rng):
    th = rng.normal(size=(4, 3))
    gs = [rng.normal(size=th.shape) for _ in range(3)]
    expected = _adam_by_hand(th, gs, 1e-2, 0.9, 0.999, 1e-8)
    for ops in (Ops(backend.xp), backend.ops):
        theta = backend.asarray(th.copy(), dtype="float64")  # updated in place on NumPy
        m = backend.xp.zeros_like(theta)
        v = backend.xp.zeros_like(theta)
        for t, g in enumerate(gs, start=1):
            theta, m, v = ops.adam_update(theta, backend.asarray(g, dtype="float64"), m, v,
                                          lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, t=t)
        for got, want in zip((theta, m, v), expected):
            np.testing.assert_allclose(to_np(got), want, rtol=1e-12, atol=1e-15)


# -- the layers and the loss in context -----------------------------------------------------------
def _mlp(device, dtype="float64"):
    L = pnn.layers
    return pnn.Sequential(L.Dense(6, 8), L.ReLU(), L.Dense(8, 5), L.ReLU(), L.Dense(5, 3),
                          device=device, dtype=dtype, seed=4)


def _mlp_step_by_hand(state, x, labels):
    """Loss and gradients of the 6-8-5-3 ReLU MLP with softmax cross-entropy, by hand (float64)."""
    w = [state[f"{i}.weight"] for i in (0, 2, 4)]
    b = [state[f"{i}.bias"] for i in (0, 2, 4)]
    h1 = x @ w[0] + b[0]
    r1 = np.maximum(h1, 0)
    h2 = r1 @ w[1] + b[1]
    r2 = np.maximum(h2, 0)
    z = r2 @ w[2] + b[2]
    n = x.shape[0]
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    loss = (lse - z[np.arange(n), labels]).mean()
    gz = (np.exp(z - lse[:, None]) - np.eye(3)[labels]) / n
    g2 = (gz @ w[2].T) * (h2 > 0)
    g1 = (g2 @ w[1].T) * (h1 > 0)
    grads = [x.T @ g1, g1.sum(0), r1.T @ g2, g2.sum(0), r2.T @ gz, gz.sum(0)]
    return loss, grads


def test_model_loss_and_gradients_by_hand_on_every_backend(backend, rng):
    """The ReLU MLP with fused softmax cross-entropy (NumPy: through its fast ops; the others:
    through the generic ones) against backprop written out by hand."""
    xh, labels = rng.normal(size=(10, 6)), rng.integers(0, 3, size=10)
    model, loss = _mlp(backend), pnn.losses.CrossEntropy()
    value = loss.forward(model.forward(backend.asarray(xh, dtype="float64"), training=True),
                         backend.asarray(labels))
    model.backward(loss.backward())
    expected_value, expected_grads = _mlp_step_by_hand(model.state_dict(), xh, labels)
    assert float(value) == pytest.approx(expected_value, rel=1e-12)
    for p, want in zip(model.parameters(), expected_grads):
        np.testing.assert_allclose(to_np(p.grad), want, rtol=1e-10, atol=1e-13)


def test_fast_loss_and_relu_pass_gradcheck_on_numpy(rng):
    model = _mlp("cpu")
    x = model.backend.asarray(rng.uniform(0.2, 1.0, size=(5, 6)) * rng.choice([-1, 1], (5, 6)),
                              dtype="float64")
    t = model.backend.asarray(np.array([0, 2, 1, 1, 0]))
    result = pnn.gradcheck(model, x, target=t, loss=pnn.losses.CrossEntropy())
    assert result.max_error < 1e-6, result


# -- the benchmark's reference does the same math as portable_nn ---------------------------------
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_benchmark_reference_takes_the_same_step_as_portable_nn(rng, optimizer, loss):
    from benchmarks.reference import ReferenceMLP

    sizes = [6, 8, 5, 3]
    ref = ReferenceMLP(sizes, dtype="float64", seed=1, loss=loss, optimizer=optimizer, lr=0.05)
    model = _mlp("cpu")
    model.load_state_dict({f"{2 * i}.{name}": a for i in range(3)
                           for name, a in (("weight", ref.params[2 * i]),
                                           ("bias", ref.params[2 * i + 1]))})
    lossfn = pnn.losses.CrossEntropy() if loss == "cross_entropy" else pnn.losses.MSE()
    opt = (pnn.optimizers.SGD(0.05) if optimizer == "sgd" else pnn.optimizers.Adam(0.05))
    for _ in range(3):
        x = rng.normal(size=(7, 6))
        t = rng.integers(0, 3, size=7) if loss == "cross_entropy" else rng.normal(size=(7, 3))
        v_ref = float(ref.step(x, t))
        v = float(lossfn.forward(model.forward(x, training=True), t))
        model.backward(lossfn.backward(), need_input_grad=False)
        opt.step(model.parameters())
        assert v == pytest.approx(v_ref, rel=1e-12)
    for p, q in zip(model.parameters(), ref.params):
        np.testing.assert_allclose(to_np(p.value), q, rtol=1e-10, atol=1e-12)


def test_benchmark_gemm_bound_computes_the_products():
    from benchmarks.reference import GemmBound

    bound = GemmBound([4, 3, 2], n=5, dtype="float64")
    bound.step()
    np.testing.assert_allclose(bound.z[0], bound.h[0] @ bound.w[0])
    np.testing.assert_allclose(bound.dw[1], bound.h[1].T @ bound.g[1])
    np.testing.assert_allclose(bound.gin[1], bound.g[1] @ bound.w[1].T)


# -- one answer per backend: fast paths and generic code agree on non-finite inputs ---------------
def _nasty(rng, shape, dtype, scale=1.0, subnormal=True):
    """Normal values with inf, -inf, NaN, ±0, subnormals and finite values whose square
    overflows (the float's largest / 10, and its square root times 10) at random places."""
    info = np.finfo(dtype)
    x = rng.normal(size=shape) * scale
    specials = [np.inf, -np.inf, np.nan, 0.0, -0.0, float(info.tiny) / 4 if subnormal else 0.5,
                float(info.max) / 10, -float(info.max) / 10, math.sqrt(float(info.max)) * 10,
                -math.sqrt(float(info.max)) * 10]
    flat = x.reshape(-1)
    at = rng.choice(flat.size, size=min(flat.size, 2 * len(specials)), replace=False)
    flat[at] = np.resize(specials, at.size)
    return x.astype(dtype)


def _same_answer(got, want, dtype, exact=False):
    """NaN at the same places, infinities with the same signs, the finite values close (or equal)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg="NaN positions differ")
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want), err_msg="+inf differs")
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want), err_msg="-inf differs")
    finite = np.isfinite(want)
    if exact:
        np.testing.assert_array_equal(got[finite], want[finite])
    else:
        np.testing.assert_allclose(got[finite], want[finite], rtol=TOL[dtype]["rtol"] * 10,
                                   atol=TOL[dtype]["atol"])


@pytest.fixture
def quiet():
    # overflow and inf - inf are the point here: NumPy's RuntimeWarnings (errors in this suite)
    with np.errstate(all="ignore"):
        yield


@pytest.mark.usefixtures("quiet")
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_fast_paths_agree_on_non_finite_inputs(rng, dtype):
    _, fast, generic = _numpy_pair()
    x = _nasty(rng, (12, 9), dtype)
    g = _nasty(rng, (12, 9), dtype)
    y = generic.relu(x)
    _same_answer(fast.relu(x), y, dtype, exact=True)
    _same_answer(fast.relu_inplace(x.copy()), y, dtype, exact=True)
    want = generic.relu_backward(g, y)
    assert np.isinf(g[y <= 0]).any() and np.isnan(g[y <= 0]).any()  # at off units too
    _same_answer(fast.relu_backward(g, y), want, dtype, exact=True)
    _same_answer(fast.relu_backward_inplace(g.copy(), y), want, dtype, exact=True)


@pytest.mark.usefixtures("quiet")
@pytest.mark.parametrize("dtype", DTYPES)
def test_reduction_and_product_fast_paths_agree_on_non_finite_inputs(rng, dtype):
    _, fast, generic = _numpy_pair()
    g = _nasty(rng, (40, 6), dtype)
    g[:, 0] = 1.0
    g[3, 0], g[7, 0] = np.inf, -np.inf  # inf - inf in one column: NaN in both
    _same_answer(fast.bias_grad(g), generic.bias_grad(g), dtype, exact=True)
    _same_answer(fast.sum_rows_into(g, np.empty(6, dtype=dtype)), generic.sum_rows_into(g, None),
                 dtype, exact=True)
    for d in (g, _nasty(rng, (5, 3), dtype)[:, :1] * 0 + float(np.finfo(dtype).max) / 10):
        _same_answer(fast.sum_of_squares(d), generic.sum_of_squares(d), dtype, exact=True)
    a, b = _nasty(rng, (8, 5), dtype), _nasty(rng, (8, 4), dtype, scale=0.5)
    _same_answer(fast.matmul_into(a.T, b, np.empty((5, 4), dtype=dtype)),
                 generic.matmul_into(a.T, b, None), dtype)


@pytest.mark.usefixtures("quiet")
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_fast_path_agrees_on_non_finite_logits(rng, dtype):
    _, fast, generic = _numpy_pair()
    big = float(np.finfo(dtype).max) / 2
    labels = np.array([0, 1, 2, 0, 1, 2])
    z = rng.normal(size=(6, 3)).astype(dtype)
    z[0, 1] = -np.inf  # a class that can never win: finite loss, zero probability
    z[1] = [big, -big, 0.0]  # the shift overflows to -inf for one class
    z[2, 2] = -np.inf  # the label's own logit is -inf: an infinite loss
    for rows in (slice(0, 2), slice(0, 3)):  # finite loss, then +inf
        v_fast, s_fast = fast.softmax_cross_entropy(z[rows], labels[rows], 0.5)
        v_gen, s_gen = generic.softmax_cross_entropy(z[rows], labels[rows], 0.5)
        _same_answer(v_fast, v_gen, dtype)
        _same_answer(fast.softmax_cross_entropy_backward(s_fast),
                     generic.softmax_cross_entropy_backward(s_gen), dtype)
    assert math.isinf(float(v_gen)) and float(v_gen) > 0
    z[3, 0], z[4, 2], z[5] = np.inf, np.nan, -np.inf  # NaN rows: the same rows NaN in both
    v_fast, s_fast = fast.softmax_cross_entropy(z, labels, 1.0)
    v_gen, s_gen = generic.softmax_cross_entropy(z, labels, 1.0)
    assert math.isnan(float(v_fast)) and math.isnan(float(v_gen))
    g_fast = fast.softmax_cross_entropy_backward(s_fast)
    g_gen = generic.softmax_cross_entropy_backward(s_gen)
    _same_answer(g_fast, g_gen, dtype)
    np.testing.assert_array_equal(np.isnan(g_gen).all(axis=1), [0, 0, 0, 1, 1, 1])


@pytest.mark.usefixtures("quiet")
@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_fast_path_gives_the_generic_bits_on_non_finite_inputs(rng, dtype):
    """Every pass is the generic code's operation in its order: the same bits, NaN and inf
    included, for gradients, values and state holding every kind of special value."""
    _, fast, generic = _numpy_pair()
    hp = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    shape = (9, 8)
    a = [_nasty(rng, shape, dtype), _nasty(rng, shape, dtype), np.abs(_nasty(rng, shape, dtype))]
    b = [x.copy() for x in a]
    for t in range(1, 4):
        g = _nasty(rng, shape, dtype)
        fast.adam_update(*a[:1], g, *a[1:], **hp, t=t)
        b = list(generic.adam_update(b[0], g, b[1], b[2], **hp, t=t))
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)  # NaN == NaN here; inf signs compared


@pytest.mark.usefixtures("quiet")
@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_fast_path_keeps_training_when_the_squared_gradient_overflows(dtype):
    """g² = inf makes v = inf and the step m / √v = 0 in the generic code; (v − g²)β + g² was
    NaN there, so NumPy stopped on NaN where the other backends trained on."""
    _, fast, generic = _numpy_pair()
    huge = math.sqrt(float(np.finfo(dtype).max)) * 10
    theta = np.array([1.0, -2.0, 3.0], dtype=dtype)
    g = np.array([huge, -huge, 0.5], dtype=dtype)
    want = generic.adam_update(theta.copy(), g, np.zeros_like(g), np.zeros_like(g), lr=0.1,
                               beta1=0.9, beta2=0.999, eps=1e-8, t=1)
    got = fast.adam_update(theta.copy(), g, np.zeros_like(g), np.zeros_like(g), lr=0.1,
                           beta1=0.9, beta2=0.999, eps=1e-8, t=1)
    assert np.isposinf(want[2][:2]).all() and np.isfinite(want[0]).all()
    for x, y in zip(got, want):
        np.testing.assert_array_equal(x, y)


@pytest.mark.usefixtures("quiet")
def test_every_backend_gives_numpys_answer_on_non_finite_inputs(backend, rng):
    """The same nasty inputs through each backend's ops: NaN where NumPy has NaN, the same
    infinities, the same finite values, so that one seed trains (or stops) alike everywhere.
    (Subnormal inputs are left out: XLA on the CPU flushes them to zero, as JAX documents.)"""
    ref = get_backend("cpu").ops
    ops = backend.ops
    dt = "float64"
    xh, gh = (_nasty(rng, (10, 7), dt, subnormal=False) for _ in range(2))
    x, g = backend.asarray(xh, dtype=dt), backend.asarray(gh, dtype=dt)
    yh = ref.relu(xh)
    _same_answer(to_np(ops.relu(x)), yh, dt)
    _same_answer(to_np(ops.relu_backward(g, ops.relu(x))), ref.relu_backward(gh, yh), dt)
    _same_answer(to_np(ops.bias_grad(g)), ref.bias_grad(gh), dt)
    _same_answer(float(ops.sum_of_squares(g)), float(ref.sum_of_squares(gh)), dt)
    zh = rng.normal(size=(4, 3))
    zh[0, 1], zh[1, 0], zh[2, 2] = -np.inf, -1e308, np.nan
    labels = np.array([0, 1, 0, 2])
    for rows in (slice(0, 2), slice(0, 4)):
        v, s = ops.softmax_cross_entropy(backend.asarray(zh[rows], dtype=dt),
                                         backend.asarray(labels[rows]), 0.25)
        v_ref, s_ref = ref.softmax_cross_entropy(zh[rows], labels[rows], 0.25)
        _same_answer(float(v), float(v_ref), dt)
        _same_answer(to_np(ops.softmax_cross_entropy_backward(s)),
                     ref.softmax_cross_entropy_backward(s_ref), dt)
    state = [_nasty(rng, (10, 7), dt, subnormal=False) for _ in range(3)]
    state[2] = np.abs(state[2])
    want = ref.adam_update(*[s.copy() for s in state[:1]], gh, *[s.copy() for s in state[1:]],
                           lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, t=2)
    got = ops.adam_update(*(backend.asarray(s.copy(), dtype=dt) for s in state[:1]), g,
                          *(backend.asarray(s.copy(), dtype=dt) for s in state[1:]),
                          lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, t=2)
    for a, b in zip(got, want):
        _same_answer(to_np(a), b, dt)
