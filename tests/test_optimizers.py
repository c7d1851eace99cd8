"""Optimizers: hand-computed steps from the published rules, convergence on convex quadratics,
state round trips, moving state between backends, validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.parameter import Parameter
from tests.conftest import to_np

opt = pnn.optimizers

W0 = np.array([1.0, -2.0, 0.5, 3.0])
GRADS = [
    np.array([0.5, -1.0, 2.0, 0.1]),
    np.array([-0.3, 0.8, 1.5, -0.2]),
    np.array([1.2, 0.4, -0.7, 0.05]),
]


def _param(backend, w, dtype="float64", **kwargs):
    return Parameter(backend.asarray(np.array(w, dtype=float), dtype=dtype), name="w", **kwargs)


def _run(backend, optimizer, w0=W0, grads=GRADS, dtype="float64"):
    """Apply ``optimizer`` to one parameter with the given gradients; values after each step."""
    p = _param(backend, w0, dtype)
    values = []
    for g in grads:
        p.grad = backend.asarray(g, dtype=dtype)
        optimizer.step([p])
        values.append(to_np(p.value).copy())
    return values


def _close(actual, expected):
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-14)


# -- references written straight from the papers / torch.optim documentation ---------------------
def ref_sgd(lr, momentum=0.0, nesterov=False, wd=0.0):
    w, b, out = W0.copy(), np.zeros_like(W0), []
    for g in GRADS:
        g = g + wd * w
        if momentum:
            b = momentum * b + g
            g = g + momentum * b if nesterov else b
        w = w - lr * g
        out.append(w)
    return out


def ref_adagrad(lr, init=0.0, eps=1e-10, wd=0.0):
    w, s, out = W0.copy(), np.full_like(W0, init), []
    for g in GRADS:
        g = g + wd * w
        s = s + g * g
        w = w - lr * g / (np.sqrt(s) + eps)
        out.append(w)
    return out


def ref_rmsprop(lr, rho, eps=1e-8, momentum=0.0):
    w, v, b, out = W0.copy(), np.zeros_like(W0), np.zeros_like(W0), []
    for g in GRADS:
        v = rho * v + (1 - rho) * g * g
        u = g / (np.sqrt(v) + eps)
        if momentum:
            b = momentum * b + u
            u = b
        w = w - lr * u
        out.append(w)
    return out


def ref_adam(lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, decoupled=False):
    w, m, v, out = W0.copy(), np.zeros_like(W0), np.zeros_like(W0), []
    for t, g in enumerate(GRADS, start=1):
        if decoupled:
            w = w * (1 - lr * wd)
        else:
            g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(w)
    return out


CASES = {
    "sgd": (lambda: opt.SGD(0.1), lambda: ref_sgd(0.1)),
    "sgd_momentum": (lambda: opt.SGD(0.1, momentum=0.9), lambda: ref_sgd(0.1, 0.9)),
    "sgd_nesterov": (lambda: opt.SGD(0.1, momentum=0.9, nesterov=True),
                     lambda: ref_sgd(0.1, 0.9, True)),
    "sgd_weight_decay": (lambda: opt.SGD(0.1, momentum=0.5, weight_decay=0.2),
                         lambda: ref_sgd(0.1, 0.5, wd=0.2)),
    "adagrad": (lambda: opt.AdaGrad(0.1), lambda: ref_adagrad(0.1)),
    "adagrad_init": (lambda: opt.AdaGrad(0.5, initial_accumulator=0.3, weight_decay=0.1),
                     lambda: ref_adagrad(0.5, 0.3, wd=0.1)),
    "rmsprop": (lambda: opt.RMSprop(0.01, rho=0.8), lambda: ref_rmsprop(0.01, 0.8)),
    "rmsprop_momentum": (lambda: opt.RMSprop(0.01, rho=0.9, momentum=0.7),
                         lambda: ref_rmsprop(0.01, 0.9, momentum=0.7)),
    "adam": (lambda: opt.Adam(0.01), lambda: ref_adam(0.01)),
    "adam_l2": (lambda: opt.Adam(0.01, beta1=0.8, beta2=0.99, weight_decay=0.1),
                lambda: ref_adam(0.01, 0.8, 0.99, wd=0.1)),
    "adamw": (lambda: opt.AdamW(0.01, weight_decay=0.1),
              lambda: ref_adam(0.01, wd=0.1, decoupled=True)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_three_steps_follow_the_published_rule(backend, case):
    make, reference = CASES[case]
    _close(_run(backend, make()), reference())


def test_constant_gradient_closed_forms(backend):
    """Literal values worked out by hand for w0 = 1, g = 1 at every step."""
    ones = [np.ones(1)] * 3
    w = _run(backend, opt.SGD(0.1, momentum=0.5), np.ones(1), ones)  # b = 1, 1.5, 1.75
    _close(w, [[0.9], [0.75], [0.575]])
    w = _run(backend, opt.SGD(0.1, momentum=0.5, nesterov=True), np.ones(1), ones)
    _close(w, [[0.85], [0.675], [0.4875]])  # steps 1.5, 1.75, 1.875
    # Adam: the bias-corrected moments are exactly g and g², so each step is lr·g/(|g| + eps)
    w = _run(backend, opt.Adam(0.1, eps=1e-8), np.ones(1), ones)
    step = 0.1 / (1.0 + 1e-8)
    _close(w, [[1 - step], [1 - 2 * step], [1 - 3 * step]])
    # AdaGrad: s_t = t, so the t-th step is lr / sqrt(t)
    w = _run(backend, opt.AdaGrad(0.1, eps=1e-10), np.ones(1), ones)
    expected = np.cumsum([0.1 / (math.sqrt(t) + 1e-10) for t in (1, 2, 3)])
    _close(w, [[1 - e] for e in expected])
    # AdamW with zero gradient: pure decay θ(1 − lr λ)^t
    w = _run(backend, opt.AdamW(0.1, weight_decay=0.5), np.ones(1), [np.zeros(1)] * 3)
    _close(w, [[0.95], [0.95**2], [0.95**3]])


def test_clipvalue_clamps_each_element(backend):
    w = _run(backend, opt.SGD(1.0, clipvalue=0.6))
    expected, cur = [], W0.copy()
    for g in GRADS:
        cur = cur - np.clip(g, -0.6, 0.6)
        expected.append(cur)
    _close(w, expected)


def test_clipnorm_uses_the_global_norm_of_all_parameters(backend):
    a, b = _param(backend, [1.0, 2.0]), _param(backend, [0.0])
    a.grad = backend.asarray(np.array([3.0, 0.0]), dtype="float64")
    b.grad = backend.asarray(np.array([4.0]), dtype="float64")  # global norm 5
    opt.SGD(1.0, clipnorm=2.5).step([a, b])  # every gradient halved
    np.testing.assert_allclose(to_np(a.value), [1.0 - 1.5, 2.0], rtol=1e-14)
    np.testing.assert_allclose(to_np(b.value), [-2.0], rtol=1e-14)
    # below the threshold the gradients are untouched
    a.grad = backend.asarray(np.array([0.3, 0.0]), dtype="float64")
    b.grad = backend.asarray(np.array([0.4]), dtype="float64")
    opt.SGD(1.0, clipnorm=2.5).step([a, b])
    np.testing.assert_allclose(to_np(a.value), [-0.5 - 0.3, 2.0], rtol=1e-14)
    # the caller's gradients are not modified by clipping
    np.testing.assert_array_equal(to_np(a.grad), [0.3, 0.0])


def test_weight_decay_skips_excluded_parameters(backend):
    decayed, kept = _param(backend, [2.0]), _param(backend, [2.0], weight_decay=False)
    for p in (decayed, kept):
        p.grad = backend.asarray(np.zeros(1), dtype="float64")
    sgd = opt.SGD(0.1, weight_decay=0.5)
    sgd.step([decayed, kept])
    assert to_np(decayed.value)[0] == pytest.approx(2.0 - 0.1 * 0.5 * 2.0, rel=1e-14)
    assert to_np(kept.value)[0] == 2.0


def test_a_missing_gradient_is_an_error_and_frozen_parameters_need_none(backend):
    a, b = _param(backend, [1.0]), _param(backend, [1.0])
    adam = opt.Adam(0.1)
    a.grad = backend.asarray(np.ones(1), dtype="float64")
    with pytest.raises(ValueError, match=r"parameters\[1\] \('w'\) has no gradient"):
        adam.step([a, b])
    assert adam.iterations == 0 and to_np(a.value)[0] == 1.0
    b.trainable = False  # frozen: no gradient needed, nothing done to it
    adam.step([a, b])
    assert adam.iterations == 1
    assert to_np(a.value)[0] < 1.0 and to_np(b.value)[0] == 1.0
    assert adam.state_dict([a, b])["slots"][1] == {}
    a.trainable = False  # nothing trainable left: a step does nothing at all
    adam.step([a, b])
    assert adam.iterations == 1


@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam", "adamw"])
def test_float32_stays_float32(backend, name):
    optimizer = opt.get(name)
    optimizer.weight_decay = 0.01
    p = _param(backend, W0, dtype="float32")
    for g in GRADS:
        p.grad = backend.asarray(g, dtype="float32")
        optimizer.step([p])
        assert p.value.dtype == backend.dtype("float32")
    for slot in optimizer.state_dict([p])["slots"][0].values():
        assert slot.dtype == np.float32


# -- convergence --------------------------------------------------------------------------------
A_DIAG = np.array([1.0, 4.0, 0.5])
CENTER = np.array([2.0, -1.0, 0.5])
MATRIX = np.array([[2.0, 0.3, 0.0], [0.1, 1.5, -0.4], [0.0, 0.2, 1.0], [0.5, 0.0, 0.3]])
TARGET = np.array([1.0, -2.0, 0.5, 3.0])

CONVERGENCE = {
    "sgd": lambda: opt.SGD(0.2),
    "sgd_nesterov": lambda: opt.SGD(0.05, momentum=0.9, nesterov=True),
    "adagrad": lambda: opt.AdaGrad(0.5),
    "rmsprop": lambda: opt.RMSprop(pnn.schedules.CosineDecay(0.02, 600), momentum=0.5),
    "adam": lambda: opt.Adam(pnn.schedules.CosineDecay(0.1, 600)),
    "adamw": lambda: opt.AdamW(pnn.schedules.CosineDecay(0.1, 600), weight_decay=0.0),
}


@pytest.mark.parametrize("case", sorted(CONVERGENCE))
def test_minimises_a_weighted_quadratic(backend, case):
    """f(x) = ½ Σ a_i (x_i − c_i)², gradient a ⊙ (x − c), minimum at c."""
    p = _param(backend, np.zeros(3))
    a, c = (backend.asarray(v, dtype="float64") for v in (A_DIAG, CENTER))
    optimizer = CONVERGENCE[case]()
    for _ in range(600):
        p.grad = a * (p.value - c)
        optimizer.step([p])
    np.testing.assert_allclose(to_np(p.value), CENTER, atol=2e-3)


@pytest.mark.parametrize("case", ["sgd_nesterov", "adam"])
def test_minimises_least_squares(backend, case):
    """f(x) = ½ ‖Ax − b‖², gradient Aᵀ(Ax − b), minimum at the least-squares solution."""
    best = np.linalg.lstsq(MATRIX, TARGET, rcond=None)[0]
    p = _param(backend, np.zeros(3))
    A, b = (backend.asarray(v, dtype="float64") for v in (MATRIX, TARGET))
    optimizer = CONVERGENCE[case]()
    for _ in range(600):
        p.grad = A.T @ (A @ p.value - b)
        optimizer.step([p])
    np.testing.assert_allclose(to_np(p.value), best, atol=2e-3)


# -- state ----------------------------------------------------------------------------------------
def _two_params(backend):
    return [_param(backend, W0), _param(backend, [[0.5, -0.5], [1.0, 2.0]])]


def _grads_for(params, k):
    return [np.cos(np.arange(p.size).reshape(p.shape) + k) for p in params]


def _steps(backend, optimizer, params, ks):
    for k in ks:
        for p, g in zip(params, _grads_for(params, k)):
            p.grad = backend.asarray(g, dtype="float64")
        optimizer.step(params)


@pytest.mark.parametrize("make", [
    lambda: opt.SGD(0.1, momentum=0.9, nesterov=True),
    lambda: opt.AdaGrad(0.1, initial_accumulator=0.1),
    lambda: opt.RMSprop(0.01, momentum=0.3, weight_decay=0.01),
    lambda: opt.Adam(pnn.schedules.ExponentialDecay(0.01, 0.5, 3), clipnorm=1.0),
    lambda: opt.AdamW(0.01, weight_decay=0.1, clipvalue=0.5),
], ids=["sgd", "adagrad", "rmsprop", "adam", "adamw"])
def test_state_dict_round_trip_continues_bit_identically(backend, make):
    first, params = make(), _two_params(backend)
    _steps(backend, first, params, range(3))
    state = json.loads(json.dumps({k: v for k, v in first.state_dict(params).items()
                                   if k != "slots"}))
    state["slots"] = first.state_dict(params)["slots"]
    clone = [Parameter(backend.asarray(to_np(p.value).copy()), name=p.name) for p in params]
    second = opt.from_config(state)
    second.load_state_dict(state, clone)
    assert second.iterations == first.iterations == 3
    assert second.get_config() == first.get_config()
    kept = [{k: v.copy() for k, v in slot.items()} for slot in state["slots"]]
    _steps(backend, first, params, range(3, 6))
    _steps(backend, second, clone, range(3, 6))
    # loading copied the arrays: the steps did not write into the caller's state
    for slot, copy in zip(state["slots"], kept):
        for k in slot:
            np.testing.assert_array_equal(slot[k], copy[k])
    for p, q in zip(params, clone):
        np.testing.assert_array_equal(to_np(p.value), to_np(q.value))
    # the host copy is independent of the live state
    snap = first.state_dict(params)
    for slot in snap["slots"][0].values():
        slot += 1.0
    for a, b in zip(snap["slots"][0].values(), first.state_dict(params)["slots"][0].values()):
        assert not np.array_equal(a, b)


def test_load_state_dict_validates_before_assigning(backend):
    params = _two_params(backend)
    adam = opt.Adam(0.01)
    _steps(backend, adam, params, range(2))
    good = adam.state_dict(params)
    before = adam.state_dict(params)

    def broken(**change):
        return {**good, **change}

    bad_shapes = [dict(s) for s in good["slots"]]
    bad_shapes[1] = {"m": np.zeros((3, 3)), "v": np.zeros((3, 3))}
    bad_keys = [dict(s) for s in good["slots"]]
    bad_keys[0] = {"m": bad_keys[0]["m"]}
    cases = [
        (broken(**{"class": "SGD"}), "SGD"),
        (broken(iterations=-1), "iterations"),
        (broken(slots=good["slots"][:1]), "one entry per parameter"),
        (broken(slots=bad_shapes), r"slots'\]\[1\]"),
        (broken(slots=bad_keys), "keys"),
    ]
    for state, match in cases:
        with pytest.raises(ValueError, match=match):
            adam.load_state_dict(state, params)
    after = adam.state_dict(params)
    assert after["iterations"] == before["iterations"]
    for s, t in zip(before["slots"], after["slots"]):
        for k in s:
            np.testing.assert_array_equal(s[k], t[k])
    with pytest.raises(TypeError, match="state"):
        adam.load_state_dict([1, 2], params)
    with pytest.raises(TypeError, match="must be a list"):
        adam.load_state_dict(broken(slots="m,v"), params)


def test_reset_forgets_state(backend):
    params = _two_params(backend)
    sgd = opt.SGD(0.1, momentum=0.9)
    _steps(backend, sgd, params, range(2))
    sgd.reset()
    assert sgd.iterations == 0 and sgd.state_dict(params)["slots"] == [{}, {}]


def _other(backend):
    return "array_api_strict:device1" if backend.name != "array_api_strict" else "cpu"


def test_to_moves_state_and_training_continues(backend):
    other = pnn.get_backend(_other(backend))
    params, stay = _two_params(backend), _two_params(backend)
    moving, staying = opt.Adam(0.01, weight_decay=0.1), opt.Adam(0.01, weight_decay=0.1)
    _steps(backend, moving, params, range(2))
    _steps(backend, staying, stay, range(2))
    for p in params:
        p.value = other.asarray(p.value)
    moving.to(other.device_string)
    for state in moving._state.values():
        assert all(other.owns(v) for v in state.values())
    _steps(other, moving, params, range(2, 4))
    _steps(backend, staying, stay, range(2, 4))
    for p, q in zip(params, stay):
        assert other.owns(p.value)
        np.testing.assert_allclose(to_np(p.value), to_np(q.value), rtol=1e-12)


def test_model_to_moves_attached_optimizer(backend):
    model = pnn.Sequential(pnn.layers.Dense(3, 2), device=backend, dtype="float64", seed=0)
    model.optimizer = opt.SGD(0.1, momentum=0.9)
    x = backend.asarray(np.ones((4, 3)), dtype="float64")
    model.backward(model.forward(x, training=True))
    model.optimizer.step(model.parameters())
    other = pnn.get_backend(_other(backend))
    model.to(other)
    for state in model.optimizer._state.values():
        assert all(other.owns(v) for v in state.values())


# -- construction -------------------------------------------------------------------------------
BAD = [
    (lambda: opt.SGD(0.0), "learning_rate"),
    (lambda: opt.SGD(-0.1), "learning_rate"),
    (lambda: opt.SGD(float("nan")), "learning_rate"),
    (lambda: opt.SGD(0.1, momentum=1.0), "momentum"),
    (lambda: opt.SGD(0.1, momentum=-0.1), "momentum"),
    (lambda: opt.SGD(0.1, nesterov=True), "nesterov"),
    (lambda: opt.SGD(0.1, weight_decay=-1e-3), "weight_decay"),
    (lambda: opt.SGD(0.1, clipnorm=0.0), "clipnorm"),
    (lambda: opt.SGD(0.1, clipvalue=-1.0), "clipvalue"),
    (lambda: opt.AdaGrad(eps=0.0), "eps"),
    (lambda: opt.AdaGrad(initial_accumulator=-1.0), "initial_accumulator"),
    (lambda: opt.RMSprop(rho=1.0), "rho"),
    (lambda: opt.RMSprop(momentum=1.5), "momentum"),
    (lambda: opt.RMSprop(eps=-1e-8), "eps"),
    (lambda: opt.Adam(beta1=1.0), "beta1"),
    (lambda: opt.Adam(beta1=-0.1), "beta1"),
    (lambda: opt.Adam(beta2=1.0), "beta2"),
    (lambda: opt.Adam(eps=0.0), "eps"),
    (lambda: opt.AdamW(weight_decay=-0.01), "weight_decay"),
]


@pytest.mark.parametrize("make,argname", BAD, ids=[f"{i}-{a}" for i, (_, a) in enumerate(BAD)])
def test_bad_hyper_parameters_raise(make, argname):
    with pytest.raises(ValueError, match=argname):
        make()


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match="learning_rate"):
        opt.Adam("fast")
    with pytest.raises(TypeError, match="nesterov"):
        opt.SGD(0.1, momentum=0.9, nesterov="yes")
    with pytest.raises(TypeError, match="momentum"):
        opt.SGD(0.1, momentum=True)
    sgd = opt.SGD(0.1)
    with pytest.raises(ValueError, match="learning_rate"):
        sgd.learning_rate = -1.0
    assert sgd.learning_rate == 0.1


def _elsewhere(backend):
    """A backend whose arrays ``backend``'s parameters must refuse: another device of
    array-api-strict for array-api-strict, array-api-strict's second device for the others."""
    return pnn.get_backend("array_api_strict:device1")


def _snapshot(optimizer, params):
    state = optimizer.state_dict(params)
    return (state["iterations"], state["lr_scale"],
            [{k: v.copy() for k, v in s.items()} for s in state["slots"]],
            [to_np(p.value).copy() for p in params])


def _assert_same(before, after):
    assert before[:2] == after[:2]
    for s, t in zip(before[2], after[2], strict=True):
        assert s.keys() == t.keys()
        for k in s:
            assert s[k].tobytes() == t[k].tobytes()  # bitwise
    for v, w in zip(before[3], after[3], strict=True):
        assert v.tobytes() == w.tobytes()


def _bad_gradients(backend):
    """(label, make(p, q) -> parameters list, error type, message pattern)."""
    other = _elsewhere(backend)
    another_dtype = "float32"

    def set_q(value):
        def make(p, q):
            q.grad = value(q)
            return [p, q]
        return make

    def two_backends(p, q):
        q.value = other.asarray(to_np(q.value))
        q.grad = other.asarray(np.ones(q.shape))
        return [p, q]

    return [
        ("list", set_q(lambda q: [0.5] * q.size), TypeError,
         r"parameters\[1\] \('b'\): grad must be an array of"),
        ("none", set_q(lambda q: None), ValueError, r"parameters\[1\] \('b'\) has no gradient"),
        ("a number", set_q(lambda q: 0.5), TypeError, r"parameters\[1\] \('b'\): grad must"),
        ("other device", set_q(lambda q: other.asarray(np.ones(q.shape))), ValueError,
         r"parameters\[1\] \('b'\): grad is an array on 'array_api_strict:device1'"),
        ("shape", set_q(lambda q: backend.asarray(np.ones(q.size + 1), dtype="float64")),
         ValueError, r"parameters\[1\] \('b'\): grad has shape \(3,\)"),
        ("dtype", set_q(lambda q: backend.asarray(np.ones(q.shape), dtype=another_dtype)),
         TypeError, r"parameters\[1\] \('b'\): grad has dtype .*float32"),
        ("two backends", two_backends, ValueError,
         (r"parameters\[1\] \('b'\) is an array on 'array_api_strict:device1', but "
          r"parameters\[0\] \('a'\) is on")),
    ]


@pytest.mark.parametrize("make", [
    lambda: opt.Adam(0.1, clipnorm=1.0),
    lambda: opt.SGD(0.1, momentum=0.9, weight_decay=0.1),
    lambda: opt.AdaGrad(0.1),
], ids=["adam", "sgd", "adagrad"])
def test_a_bad_gradient_changes_nothing(backend, make):
    """Each bad gradient raises, naming the parameter, before iterations, slots or values move
    (compared bitwise; a first good step made the slots)."""
    for label, setup, error, match in _bad_gradients(backend):
        p = Parameter(backend.asarray(np.array([1.0, -2.0]), dtype="float64"), name="a")
        q = Parameter(backend.asarray(np.array([0.5, 3.0]), dtype="float64"), name="b")
        optimizer = make()
        for x in (p, q):
            x.grad = backend.asarray(np.array([0.3, -0.7]), dtype="float64")
        optimizer.step([p, q])
        before = _snapshot(optimizer, [p, q])
        p.grad = backend.asarray(np.array([0.2, 0.1]), dtype="float64")
        params = setup(p, q)
        with pytest.raises(error, match=match):
            optimizer.step(params)
        q.value = backend.asarray(to_np(q.value))  # back home for the comparison
        _assert_same(before, _snapshot(optimizer, [p, q]))
        assert optimizer.iterations == 1, label


def test_step_rejects_a_value_that_is_no_array(backend):
    p = _param(backend, [1.0, 2.0])
    p.grad = backend.asarray(np.ones(2), dtype="float64")
    q = Parameter([1.0, 2.0], grad=[1.0, 1.0], name="b")
    adam = opt.Adam(0.1)
    with pytest.raises(TypeError, match=r"parameters\[1\] \('b'\): value must be an array"):
        adam.step([p, q])
    assert adam.iterations == 0
    np.testing.assert_array_equal(to_np(p.value), [1.0, 2.0])
    with pytest.raises(TypeError, match="list of Parameter"):
        adam.step(p)
    with pytest.raises(TypeError, match=r"parameters\[0\]"):
        adam.step([p.value])


@pytest.mark.parametrize("make", [
    lambda: opt.SGD(0.5, momentum=0.9, weight_decay=0.1, clipnorm=1.0),
    lambda: opt.AdamW(0.1, weight_decay=0.1, clipnorm=1.0),
], ids=["sgd", "adamw"])
def test_frozen_parameters_are_untouched_and_left_out_of_clipnorm(backend, make):
    live = _param(backend, [1.0, 2.0])
    frozen = _param(backend, [5.0, 6.0], trainable=False)
    live.grad = backend.asarray(np.array([3.0, 4.0]), dtype="float64")  # norm 5: clipped to 1
    frozen.grad = "not even an array"  # a frozen parameter's gradient is never looked at
    optimizer = make()
    optimizer.step([live, frozen])
    np.testing.assert_array_equal(to_np(frozen.value), [5.0, 6.0])
    assert optimizer.state_dict([live, frozen])["slots"][1] == {}
    # the clipped gradient is (0.6, 0.8): the frozen one did not count in the global norm
    reference = make()
    alone = _param(backend, [1.0, 2.0])
    alone.grad = backend.asarray(np.array([3.0, 4.0]), dtype="float64")
    reference.step([alone])
    np.testing.assert_array_equal(to_np(live.value), to_np(alone.value))
    if isinstance(optimizer, opt.SGD):
        np.testing.assert_allclose(to_np(live.value),
                                   [1.0 - 0.5 * (0.6 + 0.1), 2.0 - 0.5 * (0.8 + 0.2)], rtol=1e-14)


def test_lr_scale_multiplies_a_constant_and_a_schedule(backend):
    sgd = opt.SGD(0.1)
    assert sgd.lr_scale == 1.0 and not sgd.has_schedule
    sgd.lr_scale = 0.25
    assert sgd.current_lr() == pytest.approx(0.025, rel=1e-15)
    p = _param(backend, [1.0])
    p.grad = backend.asarray(np.array([2.0]), dtype="float64")
    sgd.step([p])
    np.testing.assert_allclose(to_np(p.value), [1.0 - 0.025 * 2.0], rtol=1e-15)
    sched = pnn.schedules.ExponentialDecay(0.1, 0.5, decay_steps=1)
    adam = opt.Adam(sched)
    assert adam.has_schedule
    adam.lr_scale = 0.5
    q = _param(backend, [1.0])
    for t in range(3):
        assert adam.current_lr() == pytest.approx(0.5 * 0.1 * 0.5**t, rel=1e-15)
        q.grad = backend.asarray(np.array([1.0]), dtype="float64")
        adam.step([q])
    # Adam's bias-corrected step with a constant gradient is lr·g/(|g| + eps)
    expected = 1.0 - sum(0.05 * 0.5**t / (1.0 + 1e-8) for t in range(3))
    np.testing.assert_allclose(to_np(q.value), [expected], rtol=1e-12)
    adam.learning_rate = 0.01
    assert not adam.has_schedule and adam.current_lr() == pytest.approx(0.005)
    with pytest.raises(AttributeError):
        adam.has_schedule = True


def test_lr_scale_is_validated_and_kept_in_the_state_dict(backend):
    sgd = opt.SGD(0.1, momentum=0.5)
    for bad, error in ((0.0, ValueError), (-1.0, ValueError), (math.inf, ValueError),
                       (math.nan, ValueError), ("0.5", TypeError), (True, TypeError)):
        with pytest.raises(error, match="lr_scale"):
            sgd.lr_scale = bad
    assert sgd.lr_scale == 1.0
    params = _two_params(backend)
    _steps(backend, sgd, params, range(2))
    sgd.lr_scale = 0.3
    state = sgd.state_dict(params)
    assert state["lr_scale"] == 0.3
    fresh = opt.SGD(0.1, momentum=0.5)
    fresh.load_state_dict(state, params)
    assert fresh.lr_scale == 0.3 and fresh.current_lr() == pytest.approx(0.03)
    old = {k: v for k, v in state.items() if k != "lr_scale"}  # a state from before lr_scale
    fresh.load_state_dict(old, params)
    assert fresh.lr_scale == 1.0
    fresh.lr_scale = 0.7
    before = _snapshot(fresh, params)
    with pytest.raises(ValueError, match="lr_scale"):
        fresh.load_state_dict({**state, "lr_scale": -2.0}, params)
    _assert_same(before, _snapshot(fresh, params))


def test_get_and_from_config():
    for name, cls in [("sgd", opt.SGD), ("Adam", opt.Adam), ("ADAMW", opt.AdamW),
                      ("rmsprop", opt.RMSprop), ("adagrad", opt.AdaGrad)]:
        assert type(opt.get(name)) is cls
    instance = opt.SGD(0.3)
    assert opt.get(instance) is instance
    with pytest.raises(ValueError, match="unknown optimizer"):
        opt.get("adamax")
    with pytest.raises(TypeError, match="optimizer"):
        opt.get(3)
    with pytest.raises(ValueError, match="unknown optimizer class"):
        opt.from_config({"class": "Nadam", "config": {}})
    sched = pnn.schedules.LinearWarmup(pnn.schedules.CosineDecay(0.1, 50), 5)
    original = opt.RMSprop(sched, rho=0.8, momentum=0.2, clipnorm=3.0)
    cfg = json.loads(json.dumps({"class": "RMSprop", "config": original.get_config()}))
    rebuilt = opt.get(cfg)
    assert rebuilt.get_config() == original.get_config()
    assert [rebuilt.learning_rate(s) for s in (0, 4, 30)] == [sched(s) for s in (0, 4, 30)]


def test_matches_torch_optim():
    """Cross-check with PyTorch's implementations, the rules this module follows."""
    torch = pytest.importorskip("torch")
    pairs = [
        (opt.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
         lambda p: torch.optim.SGD(p, 0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
        (opt.AdaGrad(0.1, initial_accumulator=0.1, weight_decay=0.05),
         lambda p: torch.optim.Adagrad(p, 0.1, initial_accumulator_value=0.1, weight_decay=0.05)),
        (opt.RMSprop(0.01, rho=0.8, momentum=0.5, weight_decay=0.1),
         lambda p: torch.optim.RMSprop(p, 0.01, alpha=0.8, momentum=0.5, weight_decay=0.1)),
        (opt.Adam(0.01, weight_decay=0.1), lambda p: torch.optim.Adam(p, 0.01, weight_decay=0.1)),
        (opt.AdamW(0.01, weight_decay=0.1),
         lambda p: torch.optim.AdamW(p, 0.01, weight_decay=0.1)),
    ]
    cpu = pnn.get_backend("cpu")
    for ours, make_theirs in pairs:
        mine = _run(cpu, ours)
        tp = torch.nn.Parameter(torch.tensor(W0))
        theirs = make_theirs([tp])
        for g, w in zip(GRADS, mine):
            tp.grad = torch.tensor(g)
            theirs.step()
            np.testing.assert_allclose(w, tp.detach().numpy(), rtol=1e-12, atol=1e-15)


# -- arrays without in-place operators (dask, ndonnx): `a += b` only rebinds a name -----------------
class _NoInplace:
    """An Array API array over NumPy with ``__setitem__`` but no in-place operators, as dask's:
    ``a += b`` computes ``a + b`` and rebinds the name, leaving the array ``a`` held as it was."""

    __slots__ = ("a",)

    def __init__(self, a):
        self.a = np.asarray(a)

    shape = property(lambda self: self.a.shape)
    dtype = property(lambda self: self.a.dtype)
    ndim = property(lambda self: self.a.ndim)
    size = property(lambda self: self.a.size)
    device = property(lambda self: "cpu")

    def __array_namespace__(self, api_version=None):
        return _NO_INPLACE_XP

    def __array__(self, dtype=None, copy=None):
        return self.a if dtype is None else self.a.astype(dtype)

    def __setitem__(self, key, value):
        self.a[key] = _raw(value)

    def __getitem__(self, key):
        return _NoInplace(self.a[key])

    def __float__(self):
        return float(self.a)


def _raw(x):
    return x.a if isinstance(x, _NoInplace) else x


def _wrap(x):
    return _NoInplace(x) if isinstance(x, (np.ndarray, np.generic)) else x


for _name in ("add", "sub", "mul", "truediv", "pow", "gt", "lt", "ge", "le"):
    def _binary(name):
        op = getattr(np.ndarray, f"__{name}__")
        rop = getattr(np.ndarray, f"__r{name}__", None)
        setattr(_NoInplace, f"__{name}__", lambda self, other: _wrap(op(self.a, _raw(other))))
        if rop is not None:
            setattr(_NoInplace, f"__r{name}__",
                    lambda self, other: _wrap(rop(self.a, _raw(other))))
    _binary(_name)
_NoInplace.__neg__ = lambda self: _NoInplace(-self.a)
assert not any(hasattr(_NoInplace, f"__i{n}__") for n in ("add", "sub", "mul", "truediv"))


class _NoInplaceNamespace:
    """The namespace of `_NoInplace`: array_api_compat.numpy's functions on unwrapped arrays."""

    __name__ = "no_inplace_test_namespace"

    def __getattr__(self, name):
        import array_api_compat.numpy as xnp

        target = getattr(xnp, name)
        if not callable(target) or isinstance(target, type):
            return target

        def call(*args, **kwargs):
            out = target(*map(_raw, args), **{k: _raw(v) for k, v in kwargs.items()})
            return _wrap(out)
        return call


_NO_INPLACE_XP = _NoInplaceNamespace()


def _no_inplace_backend(monkeypatch, writeable):
    """A registered backend for `_NoInplace` arrays whose ops answer ``writeable`` (True: the
    wrong answer a generic check gives for dask) and whose ``materialize`` returns new arrays,
    counting its calls."""
    from portable_nn import backends
    from portable_nn.backends import base, ops

    class Ops(ops.Ops):
        def writeable(self, x):
            return writeable

    class NoInplaceBackend(base.Backend):
        name = "noinplace"

        def __init__(self):
            super().__init__(_NO_INPLACE_XP, "cpu", "noinplace")
            self.materialized = []

        def owns(self, x):
            return isinstance(x, _NoInplace)

        def _from_host(self, arr, dtype):
            return _NoInplace(np.array(arr, dtype=dtype))

        def materialize(self, arrays):
            self.materialized.append(list(arrays))
            return [_NoInplace(x.a.copy()) for x in arrays]

    monkeypatch.setattr(backends, "_FACTORIES", dict(backends._FACTORIES))
    monkeypatch.setattr(backends, "_CACHE", dict(backends._CACHE))
    monkeypatch.setitem(ops._BY_NAMESPACE, _NO_INPLACE_XP, Ops(_NO_INPLACE_XP))
    backends.register_backend("noinplace", lambda suffix: NoInplaceBackend())
    return pnn.get_backend("noinplace")


NO_INPLACE_CASES = ["sgd_momentum", "sgd_nesterov", "sgd_weight_decay", "adagrad", "adagrad_init",
                    "rmsprop", "rmsprop_momentum", "adam", "adamw"]


@pytest.mark.parametrize("writeable", [True, False], ids=["says-writeable", "functional"])
@pytest.mark.parametrize("case", NO_INPLACE_CASES)
def test_arrays_without_inplace_operators_still_learn(monkeypatch, case, writeable):
    """Every update is stored back, so the rule holds even where ``writeable`` wrongly says the
    library mutates in place (AdaGrad's bare ``s += g * g`` kept its accumulator at zero)."""
    backend = _no_inplace_backend(monkeypatch, writeable)
    make, reference = CASES[case]
    _close(_run(backend, make()), reference())


def test_materialize_is_called_once_per_step_and_its_arrays_are_kept(monkeypatch):
    backend = _no_inplace_backend(monkeypatch, True)
    params = [Parameter(backend.asarray(W0, dtype="float64"), name="a"),
              Parameter(backend.asarray(W0[:2], dtype="float64"), name="b"),
              Parameter(backend.asarray(W0[:1], dtype="float64"), name="frozen", trainable=False)]
    adam = opt.Adam(0.01)
    for k in range(2):
        for p in params[:2]:
            p.grad = backend.asarray(np.full(p.shape, 0.5 + k), dtype="float64")
        adam.step(params)
        assert len(backend.materialized) == k + 1  # one call per step, for all parameters
        handed = backend.materialized[-1]
        assert len(handed) == 2 * 3  # two trainable values and their m and v
        # what is stored is what materialize returned, not what it was given
        kept = [params[0].value, params[1].value, *adam._state[params[0]].values(),
                *adam._state[params[1]].values()]
        assert all(x is not y for x, y in zip(kept, handed))
        for x, y in zip(kept, handed):
            np.testing.assert_array_equal(x.a, y.a)
    # and the steps are Adam's: the same as on NumPy
    cpu = pnn.get_backend("cpu")
    mirror = [Parameter(cpu.asarray(to_np(p.value) * 0 + w, dtype="float64"))
              for p, w in zip(params[:2], (W0, W0[:2]))]
    twin = opt.Adam(0.01)
    for k in range(2):
        for p in mirror:
            p.grad = cpu.asarray(np.full(p.shape, 0.5 + k), dtype="float64")
        twin.step(mirror)
    for p, q in zip(params, mirror):  # NumPy's fused Adam rounds differently
        np.testing.assert_allclose(to_np(p.value), to_np(q.value), rtol=1e-13)
