"""model.to(device) moves parameters, buffers and the attached optimizer's state; fit, predict
and evaluate move host data (and other devices' arrays) to the model's device."""

import numpy as np
import pytest
from conftest import to_np

import portable_nn as pnn
from portable_nn.layers import BatchNorm, Dense, ReLU


def trained(device, optimizer=None):
    """A float64 model with BatchNorm buffers and optimizer state, trained 2 epochs."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    model = pnn.Sequential(Dense(3, 4), BatchNorm(4), ReLU(), Dense(4, 2), device=device,
                           dtype="float64", seed=0)
    model.fit(X, y, loss="cross_entropy", optimizer=optimizer or pnn.optimizers.Adam(0.01),
              epochs=2, batch_size=10, verbose=0, seed=0)
    return model, X, y


def optimizer_slots(model):
    """The optimizer's per-parameter state dicts (device arrays)."""
    return [model.optimizer._state[p] for p in model.parameters()]


def assert_on(backend, model):
    """Parameters, buffers and optimizer slots all live on ``backend``."""
    for p in model.parameters():
        assert backend.owns(p.value)
    for b in model.named_buffers().values():
        assert backend.owns(b)
    for slots in optimizer_slots(model):
        assert slots and all(backend.owns(v) for v in slots.values())


def _move_chain(chain, optimizer=None):
    """Train on chain[0], move through the rest checking nothing changes."""
    model, X, y = trained(chain[0], optimizer)
    state = model.state_dict()
    opt_state = model.optimizer.state_dict(model.parameters())
    pred = model.predict(X)
    for device in chain[1:]:
        model.to(device)
        backend = pnn.get_backend(device)
        assert model.backend == backend
        assert_on(backend, model)
        now = model.optimizer.state_dict(model.parameters())
        assert now["iterations"] == opt_state["iterations"]
        for a, b in zip(now["slots"], opt_state["slots"]):
            for k in b:
                np.testing.assert_array_equal(a[k], b[k])      # moved, not changed
        for k, v in model.state_dict().items():
            np.testing.assert_array_equal(v, state[k])
        np.testing.assert_allclose(model.predict(X), pred, rtol=1e-12, atol=1e-12)
    return model, X, y


def test_strict_cpu_to_device1_to_numpy():
    model, X, y = _move_chain(["array_api_strict", "array_api_strict:device1", "cpu"])
    # training goes on where the model now lives, with the moved optimizer
    hist = model.fit(X, y, epochs=1, batch_size=10, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    assert_on(pnn.get_backend("cpu"), model)


def test_strict_device1_training_after_move_keeps_everything_on_device1():
    model, X, y = _move_chain(["array_api_strict", "array_api_strict:device1"],
                              pnn.optimizers.SGD(0.1, momentum=0.9))
    # array-api-strict raises on any cross-device operation: this fit proves none happens
    model.fit(X, y, epochs=1, batch_size=10, verbose=0, metrics=["accuracy"],
              validation_split=0.2)
    assert_on(pnn.get_backend("array_api_strict:device1"), model)


def test_torch_round_trip():
    pytest.importorskip("torch")
    model, X, y = _move_chain(["torch:cpu", "cpu", "torch:cpu"])
    model.fit(X, y, epochs=1, batch_size=10, verbose=0)
    assert_on(pnn.get_backend("torch:cpu"), model)


def test_moves_to_every_backend_of_the_matrix(backend):
    model, X, y = _move_chain(["cpu", backend.device_string])
    model.fit(X, y, epochs=1, batch_size=10, verbose=0)
    assert_on(backend, model)


def test_data_from_another_device_is_moved_to_the_model():
    model, X, y = trained("array_api_strict")
    other = pnn.get_backend("array_api_strict:device1")
    Xo, yo = other.asarray(X), other.asarray(y)
    hist = model.fit(Xo, yo, epochs=1, batch_size=10, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    res = model.evaluate(Xo, yo)
    assert res["loss"] == pytest.approx(model.evaluate(X, y)["loss"])
    out = model.predict(Xo)
    assert other.owns(out)
    np.testing.assert_array_equal(to_np(out), model.predict(X))


@pytest.mark.parametrize("target", ["array_api_strict:device1", "torch:cpu"])
def test_a_hand_written_loop_keeps_its_optimizer_state_across_model_to(target):
    """No fit, so no attached optimizer: the optimizer sees that the parameters moved and moves
    their state with them, and the steps after the move are those of a run that never moved."""
    try:
        dest = pnn.get_backend(target)
    except pnn.backends.BackendUnavailableError as exc:
        pytest.skip(str(exc))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 3))
    y = rng.integers(0, 2, size=8)

    def steps(model, opt, device, n):
        b = pnn.get_backend(device)
        loss = pnn.losses.CrossEntropy()
        for _ in range(n):
            loss.forward(model.forward(b.asarray(X, dtype="float64"), training=True),
                         b.asarray(y))
            model.backward(loss.backward())
            opt.step(model.parameters())

    def make():
        return pnn.Sequential(Dense(3, 4), ReLU(), Dense(4, 2), dtype="float64", seed=0)

    moved, opt = make(), pnn.optimizers.Adam(0.05)
    steps(moved, opt, "cpu", 2)
    moved.to(target)
    steps(moved, opt, target, 2)
    assert all(dest.owns(v) for p in moved.parameters() for v in opt._state[p].values())
    still, opt2 = make(), pnn.optimizers.Adam(0.05)
    steps(still, opt2, "cpu", 4)
    for k, v in still.state_dict().items():
        np.testing.assert_allclose(moved.state_dict()[k], v, rtol=1e-12, atol=1e-14)
