"""Monitor and activation_stats: values against a hand-run pass, warnings, report, plot."""

import numpy as np
import pytest
from conftest import to_np

import portable_nn as pnn
from portable_nn.layers import Dense, ReLU, Sigmoid, Step, Tanh
from portable_nn.monitor import GradientWarning, Monitor, activation_stats


def data(n=40, seed=0):
    """Three features, a linear 0/1 label."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] - X[:, 2] > 0).astype(int)
    return X, y


def test_activation_stats_match_a_hand_forward_pass(backend):
    X, _ = data()
    model = pnn.Sequential(Dense(3, 5), Tanh(), Dense(5, 2), Sigmoid(), device=backend,
                           dtype="float64", seed=0)
    stats = activation_stats(model, X)
    assert [s[0] for s in stats] == ["0:Dense", "1:Tanh", "2:Dense", "3:Sigmoid"]
    s = model.state_dict()
    h = X @ s["0.weight"] + s["0.bias"]
    outs = [h, np.tanh(h)]
    outs.append(outs[-1] @ s["2.weight"] + s["2.bias"])
    outs.append(1.0 / (1.0 + np.exp(-outs[-1])))
    for (_, mean, std), out in zip(stats, outs):
        assert mean == pytest.approx(out.mean(), rel=1e-10)
        assert std == pytest.approx(out.std(), rel=1e-10)
    # device input gives the same numbers
    assert activation_stats(model, backend.asarray(X, dtype="float64")) == stats


def test_monitor_records_every_n_epochs_and_gradients_match_hand_computation(backend):
    X, y = data()
    model = pnn.Sequential(Dense(3, 4), ReLU(), Dense(4, 2), device=backend, dtype="float64",
                           seed=0)
    mon = Monitor(every=2)
    model.fit(X, y, loss="cross_entropy", optimizer="sgd", epochs=5, batch_size=8,
              callbacks=[mon], verbose=0, seed=0)
    assert [r["epoch"] for r in mon.records] == [0, 2, 4]
    last = mon.records[-1]
    assert list(last["grad_norms"]) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    # by hand on the same sample (the first 40 rows, unshuffled), with the final weights
    xd = backend.asarray(X, dtype="float64")
    loss = pnn.losses.CrossEntropy()
    loss.forward(model.forward(xd), backend.asarray(y))
    model.backward(loss.backward())
    for name, p in model.named_parameters().items():
        norm = float(np.linalg.norm(to_np(p.grad)))
        assert last["grad_norms"][name] == pytest.approx(norm, rel=1e-10)
    assert last["activations"] == activation_stats(model, X)


def test_monitor_leaves_the_last_batch_gradients_in_place(backend):
    """Monitor's own backward pass must not write over the gradients of the last training batch
    (backward may reuse the gradient arrays); a callback after it sees them unchanged."""
    X, y = data()

    class Grads(pnn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.seen = [to_np(p.grad).copy() for p in self.model.parameters()]

    runs = []
    for monitored in (False, True):
        model = pnn.Sequential(Dense(3, 4), ReLU(), Dense(4, 2), device=backend,
                               dtype="float64", seed=0)
        grads = Grads()
        model.fit(X, y, loss="cross_entropy", optimizer="sgd", epochs=2, batch_size=16,
                  callbacks=[Monitor(), grads] if monitored else [grads], verbose=0, seed=0)
        runs.append(grads.seen)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_monitor_changes_nothing_in_the_model():
    X, y = data()
    runs = []
    for callbacks in ([], [Monitor()]):
        model = pnn.Sequential(Dense(3, 4), ReLU(), pnn.layers.BatchNorm(4), Dense(4, 2),
                               dtype="float64", seed=0)
        model.fit(X, y, loss="cross_entropy", optimizer="adam", epochs=3, batch_size=8,
                  callbacks=callbacks, verbose=0, seed=0)
        runs.append(model.state_dict())
    for k in runs[0]:
        np.testing.assert_array_equal(runs[1][k], runs[0][k])


def test_vanishing_gradient_warns_once():
    X, y = data()
    # a Step activation has zero derivative: nothing reaches the first layer
    model = pnn.Sequential(Dense(3, 4), Step(), Dense(4, 2), seed=0)
    mon = Monitor()
    with pytest.warns(GradientWarning, match="has vanished") as record:
        model.fit(X, y, loss="cross_entropy", optimizer="sgd", epochs=3, callbacks=[mon],
                  verbose=0)
    vanished = sorted(str(w.message).split("'")[1] for w in record)
    assert vanished == ["0.bias", "0.weight"]       # once each, not every epoch
    assert mon.records[0]["grad_norms"]["0.weight"] == 0.0


def test_exploding_gradient_warns():
    rng = np.random.default_rng(0)
    X = rng.normal(scale=1e3, size=(20, 3))
    y = X @ np.array([1.0, 1.0, 1.0])
    model = pnn.Sequential(Dense(3, 1), seed=0)
    with pytest.warns(GradientWarning, match="exploding"):
        model.fit(X, y, loss="mse", optimizer=pnn.optimizers.SGD(1e-12), epochs=1,
                  callbacks=[Monitor()], verbose=0)


def test_report_and_plot(tmp_path):
    X, y = data()
    model = pnn.Sequential(Dense(3, 4), Tanh(), Dense(4, 2), seed=0)
    mon = Monitor()
    assert "nothing recorded" in mon.report()
    model.fit(X, y, loss="cross_entropy", optimizer="sgd", epochs=2, callbacks=[mon], verbose=0)
    text = mon.report()
    for token in ("epoch 0", "epoch 1", "1:Tanh", "act std", "2.bias", "grad norm"):
        assert token in text
    pytest.importorskip("matplotlib")
    fig = mon.plot(tmp_path / "mon.png")
    assert len(fig.axes) == 2
    assert (tmp_path / "mon.png").read_bytes()[:4] == b"\x89PNG"


def test_monitor_arguments_checked():
    for kwargs in ({"every": 0}, {"vanish": -1.0}, {"explode": "big"}):
        with pytest.raises(ValueError):
            Monitor(**kwargs)
    assert pnn.Monitor is Monitor
