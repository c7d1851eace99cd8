"""Containers: Residual, Concatenate and nested Sequential; their gradients, building, state,
moves, checkpoints, summary; freezing (layer.trainable)."""

from __future__ import annotations

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.layers import (
    BatchNorm,
    Concatenate,
    Dense,
    Identity,
    ReLU,
    Residual,
    Sequential,
    Sigmoid,
    Tanh,
)
from tests.conftest import to_np


def _nested(device, seed=0, dtype="float64"):
    """Containers nested two deep: a residual block inside a residual block, two branches."""
    return Sequential(
        Dense(3, 4), Tanh(),
        Residual(Dense(4, 4), Tanh(), Residual(Dense(4, 4), Sigmoid())),
        Concatenate(Dense(4, 2), Sequential(Dense(4, 3), Tanh())),
        Dense(5, 2),
        device=device, dtype=dtype, seed=seed)


def test_residual_is_x_plus_f_of_x(backend, rng):
    block = Residual(Dense(3, 3), Tanh()).build(backend, "float64", seed=1)
    x = backend.asarray(rng.normal(size=(4, 3)), dtype="float64")
    w, b = to_np(block.layers[0].weight.value), to_np(block.layers[0].bias.value)
    expect = to_np(x) + np.tanh(to_np(x) @ w + b)
    np.testing.assert_allclose(to_np(block.forward(x)), expect, rtol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: Residual(Dense(3, 3), Tanh()),
    lambda: Residual(Dense(3, 3), ReLU(), Residual(Dense(3, 3), Sigmoid())),
    lambda: Concatenate(Dense(3, 2), Sequential(Dense(3, 4), Tanh()), Identity()),
    lambda: Sequential(Dense(3, 5), Sequential(Tanh(), Sequential(Dense(5, 3), Sigmoid()))),
], ids=["residual", "residual-nested", "concatenate", "sequential-nested"])
def test_container_gradcheck_float64(backend, rng, make):
    layer = make().build(backend, "float64", seed=2)
    x = rng.uniform(0.1, 1.5, size=(5, 3)) * rng.choice([-1.0, 1.0], size=(5, 3))
    result = pnn.gradcheck(layer, backend.asarray(x, dtype="float64"))
    assert result.max_error < 1e-6, result
    assert "input" in result.errors and len(result.errors) > 1


def test_concatenate_along_another_axis_gradcheck(backend, rng):
    layer = Concatenate(Identity(), Tanh(), axis=1).build(backend, "float64")
    x = backend.asarray(rng.normal(size=(2, 3, 4)), dtype="float64")
    y = layer.forward(x)
    assert tuple(y.shape) == (2, 6, 4)
    np.testing.assert_allclose(to_np(y)[:, 3:], np.tanh(to_np(x)), rtol=1e-12)
    assert pnn.gradcheck(layer, x).max_error < 1e-6


def test_nested_model_gradcheck_with_loss(backend, rng):
    model = _nested(backend)
    x = backend.asarray(rng.normal(size=(6, 3)), dtype="float64")
    t = backend.asarray(np.array([0, 1, 1, 0, 1, 0]))
    result = pnn.gradcheck(model, x, target=t, loss=pnn.losses.CrossEntropy())
    assert result.max_error < 1e-6, result
    assert "2.2.0.weight" in result.errors  # the inner residual's Dense, three levels down


def test_same_seed_same_weights_on_every_backend(backend):
    ref = _nested("cpu", seed=5).state_dict()
    got = _nested(backend, seed=5).state_dict()
    assert set(got) == set(ref) and "3.1.0.weight" in got
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-12)


def test_nested_sequential_is_built_by_its_parent():
    inner = Sequential(Dense(2, 3), ReLU())
    assert not inner.built
    outer = Sequential(inner, Dense(3, 1), device="cpu", dtype="float64", seed=0)
    assert inner.built and inner.backend == outer.backend
    assert inner.layers[0].weight.value.dtype == np.float64
    # a Sequential used as a model on its own builds itself on the CPU
    alone = Sequential(Dense(2, 3), seed=0)
    assert alone.parameters()[0].shape == (2, 3) and alone.device == "cpu"
    with pytest.raises(ValueError, match="seed to the outermost"):
        Sequential(Sequential(Dense(2, 2), seed=3), device="cpu")
    with pytest.raises(ValueError, match="computes in float64"):
        Sequential(Sequential(Dense(2, 2), dtype="float32"), device="cpu", dtype="float64")


def test_a_trained_model_keeps_its_weights_inside_a_new_one(backend, rng):
    base = Sequential(Dense(3, 4), Tanh(), device=backend, dtype="float64", seed=1)
    before = base.state_dict()
    model = Sequential(base, Dense(4, 2), device=backend, dtype="float64", seed=2)
    after = model.state_dict()
    np.testing.assert_array_equal(after["0.0.weight"], before["0.weight"])
    elsewhere = Sequential(Dense(3, 4), device="cpu", dtype="float64")
    if backend.device_string != "cpu":
        with pytest.raises(ValueError, match="already built on 'cpu'"):
            Sequential(elsewhere, Dense(4, 1), device=backend, dtype="float64")
    with pytest.raises(ValueError, match="in float64, but the model is on"):
        Sequential(Sequential(Dense(3, 4), device=backend, dtype="float64"), device=backend,
                   dtype="float32")


def test_errors_of_containers():
    d = Dense(2, 2)
    with pytest.raises(ValueError, match="appears twice"):
        Sequential(d, ReLU(), d)
    with pytest.raises(ValueError, match="appears twice"):
        Concatenate(d, Sequential(d))
    with pytest.raises(ValueError, match="at least one layer"):
        Residual()
    with pytest.raises(TypeError, match="must be a portable_nn Layer"):
        Residual(Dense(2, 2), "relu")
    with pytest.raises(ValueError, match="batch axis"):
        Concatenate(Dense(2, 2), axis=0)
    with pytest.raises(TypeError, match="axis"):
        Concatenate(Dense(2, 2), axis=1.0)
    block = Residual(Dense(3, 2)).build("cpu", "float64")
    with pytest.raises(ValueError, match="needs f\\(x\\) of x's shape"):
        block.forward(np.ones((2, 3)))
    cat = Concatenate(Dense(3, 2), Identity()).build("cpu", "float64")
    with pytest.raises(RuntimeError, match="before forward"):
        cat.backward(np.ones((2, 5)))
    cat.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="5 entries along axis"):
        cat.backward(np.ones((2, 4)))
    with pytest.raises(RuntimeError, match="not built"):
        Residual(Dense(2, 2)).forward(np.ones((1, 2)))


def test_sequential_add():
    model = Sequential()
    model.add(Dense(2, 3)).add(ReLU())
    model.add(Dense(3, 1))
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "ReLU", "Dense"]
    with pytest.raises(ValueError, match="expects 4 input features"):
        model.add(Dense(4, 1))
    assert len(model) == 3
    model.parameters()  # builds it on the CPU
    with pytest.raises(RuntimeError, match="already built"):
        model.add(Dense(1, 1))


def test_nested_model_survives_save_load_on_another_device(backend, tmp_path, rng):
    X = rng.normal(size=(20, 3))
    y = (X[:, 0] > 0).astype(int)
    model = _nested("cpu", dtype="float64")
    model.layers[0].trainable = False
    model.fit(X, y, loss="cross_entropy", optimizer="adam", epochs=2, verbose=0)
    path = tmp_path / "nested.ckpt"
    pnn.save(model, path)
    loaded = pnn.load(path, device=backend)
    assert loaded.device == backend.device_string
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-12, atol=1e-14)
    assert loaded.layers[0].trainable is False and loaded.layers[2].trainable is True
    assert isinstance(loaded.layers[2].layers[2], Residual)


def test_nested_model_moves_and_predicts_the_same(backend, rng):
    X = rng.normal(size=(7, 3))
    model = _nested("cpu")
    ref = model.predict(X)
    model.to(backend)
    assert all(backend.owns(p.value) for p in model.parameters())
    np.testing.assert_allclose(model.predict(X), ref, rtol=1e-12)


def test_summary_indents_nested_layers_and_counts_frozen():
    model = _nested("cpu")
    model.layers[2].trainable = False
    text = model.summary()
    lines = text.splitlines()
    assert any(line.startswith("Residual") for line in lines)
    assert any(line.startswith("  Residual") for line in lines)  # one level deeper
    assert any(line.startswith("    Sigmoid") for line in lines)  # two levels deeper
    frozen = sum(p.size for p in model.layers[2].parameters())
    assert f"frozen parameters: {frozen:,}" in text
    assert f"trainable parameters: {model.num_parameters() - frozen:,}" in text
    assert "(None, 5)" in text  # the Concatenate's joined width


def test_monitor_and_parameters_see_nested_layers(rng):
    model = _nested("cpu")
    names = list(model.named_parameters())
    assert "2.2.0.weight" in names and "3.1.0.bias" in names
    assert len(model.parameters()) == len(names)
    monitor = pnn.Monitor()
    X = rng.normal(size=(12, 3))
    model.fit(X, (X[:, 0] > 0).astype(int), loss="cross_entropy", optimizer="sgd", epochs=1,
              verbose=0, callbacks=[monitor])
    assert "2.2.0.weight" in monitor.records[0]["grad_norms"]


# freezing ----------------------------------------------------------------------------------------
def test_frozen_layer_is_bit_identical_after_fit(backend, rng):
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    model = Sequential(Dense(3, 8, regularizer=pnn.regularizers.L2(0.1)), BatchNorm(8), Tanh(),
                       Residual(Dense(8, 8), Tanh()), Dense(8, 2), device=backend, seed=0)
    model.layers[0].trainable = False
    model.layers[1].trainable = False
    frozen = {k: v.copy() for k, v in model.state_dict().items() if k.split(".")[0] in "01"}
    other = {k: v.copy() for k, v in model.state_dict().items() if k.startswith("3.")}
    h = model.fit(X, y, loss="cross_entropy", optimizer=pnn.optimizers.AdamW(0.05), epochs=3,
                  batch_size=8, verbose=0)
    after = model.state_dict()
    for k, v in frozen.items():  # weights, and BatchNorm's running statistics too
        np.testing.assert_array_equal(after[k], v, err_msg=k)
    assert any(not np.array_equal(after[k], v) for k, v in other.items())
    assert model.layers[0].weight.grad is None  # its gradient was never computed
    assert h.history["loss"][-1] < h.history["loss"][0]
    # a frozen weight is not penalised: the L2 penalty is gone from the loss
    assert float(model.penalty()) == 0.0


def test_trainable_on_a_container_reaches_everything_inside():
    model = _nested("cpu")
    model.layers[2].trainable = False
    assert all(not p.trainable for p in model.layers[2].parameters())
    assert model.layers[2].trainable is False and model.trainable is True
    model.trainable = False
    assert not any(p.trainable for p in model.parameters())
    model.trainable = True
    assert all(p.trainable for p in model.parameters())
    with pytest.raises(TypeError, match="trainable"):
        model.layers[0].trainable = "no"
    # a layer frozen before it is built makes frozen parameters
    d = Dense(2, 2)
    d.trainable = False
    d.build("cpu", "float64")
    assert not d.weight.trainable and not d.bias.trainable


def test_backward_skips_the_frozen_layers_below_the_first_that_learns(backend, rng):
    model = Sequential(Dense(3, 4), Tanh(), Dense(4, 4), Tanh(), Dense(4, 2), device=backend,
                       dtype="float64", seed=0)
    for layer in model.layers[:3]:
        layer.trainable = False
    x = backend.asarray(rng.normal(size=(5, 3)), dtype="float64")
    model.forward(x, training=True)
    calls = []
    original = model.layers[1].backward
    model.layers[1].backward = lambda *a, **k: calls.append(1) or original(*a, **k)
    assert model.backward(backend.asarray(np.ones((5, 2)), dtype="float64"),
                          need_input_grad=False) is None
    assert calls == []  # the Tanh below the first learning layer was not asked
    assert model.layers[4].weight.grad is not None and model.layers[2].weight.grad is None


# devices ---------------------------------------------------------------------------------------
def test_all_work_of_a_model_runs_in_its_devices_context(monkeypatch, tmp_path):
    """A model on a device that is not the current one (CuPy's cuda:1, say) must make every array
    inside that device's context: array-api-strict's device1, made to record each array created
    on it outside its context, stands for it (there is no GPU here)."""
    from tests.fake_backends import install_context_checked_backend

    fake = install_context_checked_backend(monkeypatch, raise_on_violation=False)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 3))
    y = (X[:, 0] > 0).astype(int)
    model = Sequential(Dense(3, 6), BatchNorm(6), Tanh(), pnn.layers.Dropout(0.2),
                       Residual(Dense(6, 6), ReLU()), Dense(6, 2),
                       device="array_api_strict:device1", dtype="float64", seed=0)
    model.fit(X, y, loss="cross_entropy", optimizer="adam", epochs=2, batch_size=8, verbose=0,
              metrics=["accuracy"], validation_split=0.25)
    model.evaluate(X, y)
    model.predict_proba(X)
    assert fake.violations == [], fake.violations[:3]
    # the low-level loop too, with layers that make arrays in their passes (padding, col2im)
    net = Sequential(pnn.layers.Conv1D(1, 3, 3, padding=1), ReLU(),
                     pnn.layers.MaxPool1D(2, padding=1), pnn.layers.Flatten(), Dense(9, 2),
                     device="array_api_strict:device1", dtype="float64", seed=0)
    xb = net.backend.asarray(rng.normal(size=(8, 1, 4)), dtype="float64")
    loss = pnn.losses.CrossEntropy()
    optimizer = pnn.optimizers.Adam()
    loss.forward(net.forward(xb, training=True), net.backend.asarray(y[:8]))
    net.backward(loss.backward())
    optimizer.step(net.parameters())
    assert fake.violations == [], fake.violations[:3]
