"""L1/L2 regularizers: penalty values, and the penalised loss's gradient checked numerically."""

from __future__ import annotations

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.layers import Dense, Sequential, Tanh
from tests.conftest import to_np

R = pnn.regularizers


def _model(backend, reg, seed=4):
    return Sequential(Dense(3, 4, regularizer=reg, bias_init="uniform"), Tanh(),
                      Dense(4, 2, regularizer=reg, bias_init="uniform"),
                      device=backend, dtype="float64", seed=seed)


def _data(backend):
    rng = np.random.default_rng(11)
    x = backend.asarray(rng.normal(size=(5, 3)), dtype="float64")
    t = backend.asarray(rng.normal(size=(5, 2)), dtype="float64")
    return x, t


def _penalised_loss(model, loss, x, t):
    return float(loss.forward(model.forward(x), t) + model.penalty())


@pytest.mark.parametrize("reg", [R.L1(0.05), R.L2(0.05)], ids=["L1", "L2"])
def test_gradcheck_of_penalised_loss(backend, reg):
    """L = MSE(model(x), t) + Σ penalties: backward (Dense adds the regularizer's gradient to
    weight.grad) against central differences of L, in float64."""
    model, loss = _model(backend, reg), pnn.losses.MSE()
    x, t = _data(backend)
    loss.forward(model.forward(x, training=True), t)
    model.backward(loss.backward())
    eps = 1e-6
    for name, p in model.named_parameters().items():
        analytic = to_np(p.grad).copy()
        host = to_np(p.value).astype(np.float64, copy=True)
        if isinstance(reg, R.L1) and name.endswith("weight"):
            assert np.abs(host).min() > 10 * eps  # |w| is not differentiable at 0
        numeric = np.zeros_like(host)
        for i in np.ndindex(host.shape):
            old = host[i]
            host[i] = old + eps
            p.value = backend.asarray(host, dtype="float64")
            up = _penalised_loss(model, loss, x, t)
            host[i] = old - eps
            p.value = backend.asarray(host, dtype="float64")
            down = _penalised_loss(model, loss, x, t)
            host[i] = old
            numeric[i] = (up - down) / (2 * eps)
        p.value = backend.asarray(host, dtype="float64")
        err = np.linalg.norm(analytic - numeric) / max(np.linalg.norm(numeric), 1e-12)
        assert err < 1e-6, (name, err)


@pytest.mark.parametrize("reg", [R.L1(0.05), R.L2(0.05)], ids=["L1", "L2"])
def test_regularizer_changes_only_the_weight_gradients(backend, reg):
    plain, penalised = _model(backend, None), _model(backend, reg)
    x, t = _data(backend)
    for model in (plain, penalised):
        loss = pnn.losses.MSE()
        loss.forward(model.forward(x, training=True), t)
        model.backward(loss.backward())
    for (name, p), q in zip(penalised.named_parameters().items(), plain.parameters()):
        w = to_np(p.value)
        extra = 0.05 * np.sign(w) if isinstance(reg, R.L1) else 0.1 * w
        expected = to_np(q.grad) + (extra if name.endswith("weight") else 0.0)
        np.testing.assert_allclose(to_np(p.grad), expected, rtol=1e-12, atol=1e-15)


def test_penalty_values(backend):
    w = backend.asarray(np.array([[1.0, -2.0], [0.5, 0.0]]), dtype="float64")
    assert float(R.L1(0.1).penalty(w)) == pytest.approx(0.1 * 3.5, rel=1e-14)
    assert float(R.L2(0.1).penalty(w)) == pytest.approx(0.1 * 5.25, rel=1e-14)
    np.testing.assert_allclose(to_np(R.L1(0.1).gradient(w)), [[0.1, -0.1], [0.1, 0.0]])
    np.testing.assert_allclose(to_np(R.L2(0.1).gradient(w)), [[0.2, -0.4], [0.1, 0.0]])
    model = _model(backend, R.L2(0.01))
    expected = 0.01 * sum(float(np.sum(to_np(layer.weight.value) ** 2))
                          for layer in (model[0], model[2]))
    assert float(model.penalty()) == pytest.approx(expected, rel=1e-12)
    assert _model(backend, None).penalty() == 0.0


def test_sgd_weight_decay_equals_half_rate_l2(backend):
    """The regularizers module's claim: for plain SGD, weight_decay=wd is L2(wd / 2)."""
    wd = 0.2
    decayed, regularised = _model(backend, None), _model(backend, R.L2(wd / 2))
    for layer in (decayed[0], decayed[2]):
        layer.bias.weight_decay = False  # L2 on Dense touches the weight only
    x, t = _data(backend)
    opts = [pnn.optimizers.SGD(0.1, weight_decay=wd), pnn.optimizers.SGD(0.1)]
    for _ in range(3):
        for model, sgd in zip((decayed, regularised), opts):
            loss = pnn.losses.MSE()
            loss.forward(model.forward(x, training=True), t)
            model.backward(loss.backward())
            sgd.step(model.parameters())
    for p, q in zip(decayed.parameters(), regularised.parameters()):
        np.testing.assert_allclose(to_np(p.value), to_np(q.value), rtol=1e-12, atol=1e-15)


def test_configs_and_bad_input():
    for reg in (R.L1(0.3), R.L2(1e-4)):
        rebuilt = R.get(reg.get_config())
        assert type(rebuilt) is type(reg) and rebuilt.rate == reg.rate
    assert R.get(None) is None
    with pytest.raises(ValueError, match="rate"):
        R.L2(-0.1)
    with pytest.raises(TypeError, match="rate"):
        R.L1("big")
    with pytest.raises(TypeError, match="rate"):
        R.L2(True)
    with pytest.raises(ValueError, match="rate"):
        R.L2(float("nan"))
    with pytest.raises(ValueError, match="finite number >= 0"):
        R.L1(float("inf"))
    with pytest.raises(ValueError, match="unknown regularizer"):
        R.get({"name": "L3", "rate": 0.1})
    with pytest.raises(TypeError, match="regularizer"):
        R.get("l2")
    # a malformed config names the expected form (it raised KeyError for a missing rate)
    for bad in ({"name": "L2"}, {"rate": 0.1}, {"name": 2, "rate": 0.1},
                {"name": "L2", "rate": 0.1, "scale": 2.0}, {}):
        with pytest.raises(ValueError, match=r"'name': 'L1' or 'L2', 'rate'"):
            R.get(bad)
    with pytest.raises(TypeError, match="rate"):
        R.get({"name": "L1", "rate": "0.1"})
    with pytest.raises(TypeError, match="config must be a dict"):
        R.from_config([("name", "L2")])
    assert R.from_config({"name": "L2", "rate": 3}).rate == 3.0
    # a rebuilt model keeps its regularizers
    model = _model("cpu", R.L1(0.05))
    clone = Sequential.from_config(model.get_config())
    assert isinstance(clone[0].weight.regularizer, R.L1)
    assert clone[0].weight.regularizer.rate == 0.05
