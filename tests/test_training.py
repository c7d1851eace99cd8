"""fit / evaluate / predict: learning, History, data handling, output types, and bad input."""

import sys

import numpy as np
import pytest
from conftest import to_np

import portable_nn as pnn
from portable_nn import training
from portable_nn.layers import BatchNorm, Dense, ReLU, Tanh


def blobs(n=200, seed=0):
    """Two well separated Gaussian blobs in 2-D, labels 0/1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    X = rng.normal(scale=0.7, size=(n, 2)) + np.where(y[:, None] == 1, 2.0, -2.0)
    return X, y


def classifier(device="cpu", dtype="float32", seed=0, outputs=2):
    """A small 2-input MLP classifier."""
    return pnn.Sequential(Dense(2, 8), Tanh(), Dense(8, outputs), device=device, dtype=dtype,
                          seed=seed)


def snapshot(model):
    """Host copies of every parameter and buffer."""
    return {k: v.copy() for k, v in model.state_dict().items()}


def assert_unchanged(model, before):
    """The model's state is bit-identical to ``before``."""
    after = model.state_dict()
    assert after.keys() == before.keys()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)  # bit-identical


# learning ----------------------------------------------------------------------------------------
def test_fit_learns_separable_problem(backend):
    X, y = blobs()
    model = classifier(backend)
    hist = model.fit(X, y, loss="cross_entropy", optimizer=pnn.optimizers.Adam(0.05), epochs=8,
                     batch_size=32, metrics=["accuracy"], validation_split=0.25, verbose=0,
                     seed=0)
    loss = hist.history["loss"]
    assert loss[-1] < 0.5 * loss[0]
    assert hist.history["val_accuracy"][-1] >= 0.95
    assert model.evaluate(X, y)["accuracy"] >= 0.95
    assert model.optimizer is not None and model.history is hist


def test_history_keys_lengths_and_values(backend):
    X, y = blobs(100)
    model = classifier(backend)
    opt = pnn.optimizers.SGD(0.1)
    hist = model.fit(X, y, loss="cross_entropy", optimizer=opt, epochs=3, batch_size=16,
                     metrics=["accuracy"],
                     validation_data=(X[:20], y[:20]), verbose=0)
    assert list(hist.history) == ["loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"]
    assert hist.epoch == [0, 1, 2] and len(hist) == 3
    assert all(len(v) == 3 for v in hist.history.values())
    assert hist.history["lr"] == [0.1, 0.1, 0.1]
    assert all(t > 0 for t in hist.history["time"])
    assert all(isinstance(v, float) for vs in hist.history.values() for v in vs)
    # the last epoch's val_loss is the loss of the final weights on the validation rows
    assert hist.history["val_loss"][-1] == pytest.approx(
        model.evaluate(X[:20], y[:20])["loss"], rel=1e-5)


def test_same_seed_same_training_on_every_backend(backend):
    """Shuffling order and initial weights come from the host: one seed, one trajectory."""
    X, y = blobs(96)
    runs = []
    for dev in ("cpu", backend):
        model = classifier(dev, dtype="float64")
        h = model.fit(X, y, loss="cross_entropy", optimizer=pnn.optimizers.Adam(0.01), epochs=3,
                      batch_size=20, verbose=0, seed=7)
        runs.append((h.history["loss"], model.state_dict()))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-10)
    for k in runs[0][1]:
        np.testing.assert_allclose(runs[1][1][k], runs[0][1][k], rtol=1e-9, atol=1e-12)


def test_host_batches_match_device_resident_data(backend, monkeypatch):
    """Data too large for the device is moved batch by batch; the result is the same."""
    X, y = blobs(90)
    results = []
    for limit in (training.DEVICE_DATA_LIMIT, 0):
        monkeypatch.setattr(training, "DEVICE_DATA_LIMIT", limit)
        model = classifier(backend, dtype="float64")
        h = model.fit(X, y, loss="cross_entropy", optimizer="sgd", epochs=2, batch_size=16,
                      validation_split=0.2, metrics=["accuracy"], verbose=0, seed=1)
        results.append((h.history, model.state_dict()))
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(results[1][0][key], results[0][0][key], rtol=1e-12)
    for k in results[0][1]:
        np.testing.assert_array_equal(results[1][1][k], results[0][1][k])


def test_device_arrays_as_input(backend):
    X, y = blobs(64)
    model = classifier(backend)
    Xd, yd = backend.asarray(X, dtype="float32"), backend.asarray(y)
    hist = model.fit(Xd, yd, loss="cross_entropy", optimizer="adam", epochs=2, verbose=0)
    assert len(hist.history["loss"]) == 2
    out = model.predict(Xd)
    assert backend.owns(out)
    np.testing.assert_array_equal(to_np(out), model.predict(X))


def test_dtypes_follow_the_model(backend):
    """X of any numeric dtype becomes the model's float; class labels become int64; float
    targets the model's float."""
    X, y = blobs(30)
    seen = {}

    class Peek(pnn.callbacks.Callback):
        """Keeps the sample batch fit hands to callbacks."""

        def on_train_begin(self, logs=None):
            seen["x"], seen["y"] = self.params["sample"], self.params["sample_y"]

    model = classifier(backend, dtype="float64")
    model.fit(np.round(X).astype(np.int16), y.astype(np.int32), loss="cross_entropy",
              optimizer="sgd", epochs=1, callbacks=[Peek()], verbose=0)
    assert backend.dtype_name(seen["x"].dtype) == "float64"
    assert seen["y"].dtype == backend.xp.int64
    model = classifier(backend, outputs=1)
    model.fit(X, y.astype(np.int8), loss="bce", optimizer="sgd", epochs=1, callbacks=[Peek()],
              verbose=0)
    assert backend.dtype_name(seen["x"].dtype) == "float32"
    assert backend.dtype_name(seen["y"].dtype) == "float32" and tuple(seen["y"].shape) == (30, 1)


def test_reported_loss_includes_penalty(backend):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -1.0, 2.0])
    reg = pnn.regularizers.L2(0.1)
    model = pnn.Sequential(Dense(3, 1, regularizer=reg), device=backend, dtype="float64", seed=0)
    model.fit(X, y, loss="mse", optimizer=pnn.optimizers.SGD(0.01), epochs=1, verbose=0)
    w = model.state_dict()["0.weight"]
    b = model.state_dict()["0.bias"]
    data_loss = np.mean((X @ w + b - y[:, None]) ** 2)
    expected = data_loss + 0.1 * np.sum(w**2)
    assert model.evaluate(X, y)["loss"] == pytest.approx(expected, rel=1e-10)


def test_fit_reports_the_penalised_loss(backend):
    """The History loss of an epoch is the mean over its batches of data loss + penalty, each
    taken before that batch's step: replayed here by hand with the same model and optimizer."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 3))
    y = X @ np.array([1.0, -1.0, 2.0])
    reg = pnn.regularizers.L1(0.5)

    def make():
        return pnn.Sequential(Dense(3, 1, regularizer=reg), device=backend, dtype="float64",
                              seed=0)

    model = make()
    hist = model.fit(X, y, loss="mse", optimizer=pnn.optimizers.SGD(0.05), epochs=1,
                     batch_size=10, shuffle=False, verbose=0)
    hand, loss, opt = make(), pnn.losses.MSE(), pnn.optimizers.SGD(0.05)
    total = 0.0
    for start in (0, 10):
        xb = backend.asarray(X[start:start + 10], dtype="float64")
        tb = backend.asarray(y[start:start + 10, None], dtype="float64")
        total += float(loss.forward(hand.forward(xb, training=True), tb) + hand.penalty()) * 10
        hand.backward(loss.backward())
        opt.step(hand.parameters())
    assert hist.history["loss"][0] == pytest.approx(total / 20, rel=1e-12)
    assert float(hand.penalty()) > 0.1  # the penalty is a visible part of what was reported


def test_regression_with_one_output_accepts_1d_targets(backend):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 2))
    y = 3.0 * X[:, 0] - 2.0 * X[:, 1] + 0.5
    model = pnn.Sequential(Dense(2, 1), device=backend, dtype="float64", seed=0)
    model.fit(X, y, loss="mse", optimizer=pnn.optimizers.SGD(0.1), epochs=30, batch_size=20,
              metrics=["r2"], verbose=0, seed=0)
    state = model.state_dict()
    np.testing.assert_allclose(state["0.weight"][:, 0], [3.0, -2.0], atol=1e-3)
    np.testing.assert_allclose(state["0.bias"], [0.5], atol=1e-3)
    assert model.evaluate(X, y, metrics=["r2"])["r2"] > 0.9999


def test_binary_cross_entropy_accuracy_uses_logit_threshold(backend):
    X, y = blobs(120)
    model = classifier(backend, outputs=1)
    model.fit(X, y, loss=pnn.losses.BinaryCrossEntropy(), optimizer=pnn.optimizers.Adam(0.05),
              epochs=6, metrics=["accuracy"], verbose=0, seed=0)
    logits = model.predict(X)[:, 0]
    by_hand = np.mean((logits > 0) == (y == 1))
    assert model.evaluate(X, y)["accuracy"] == pytest.approx(by_hand)
    assert by_hand >= 0.95


# predict / evaluate ------------------------------------------------------------------------------
def test_predict_output_follows_input(backend):
    X, _ = blobs(10)
    model = classifier(backend)
    ref = model.predict(X)
    assert isinstance(ref, np.ndarray) and ref.dtype == np.float32 and ref.shape == (10, 2)
    np.testing.assert_array_equal(model.predict(X.tolist()), ref)
    dev = model.predict(backend.asarray(X))
    assert backend.owns(dev)
    np.testing.assert_array_equal(to_np(dev), ref)
    # batches give the same rows as one pass
    # (float32 GEMM kernels may round differently with the batch's size: XLA's do)
    np.testing.assert_allclose(model.predict(X, batch_size=3), ref, rtol=1e-6, atol=1e-6)
    # by hand: the model's forward pass
    np.testing.assert_array_equal(
        ref, to_np(model.forward(backend.asarray(X, dtype="float32"))))


def test_predict_answers_another_device_in_kind():
    X, _ = blobs(6)
    model = classifier("array_api_strict")
    other = pnn.get_backend("array_api_strict:device1")
    out = model.predict(other.asarray(X))
    assert other.owns(out)
    np.testing.assert_array_equal(to_np(out), model.predict(X))


def test_evaluate_defaults_to_last_fit_and_matches_hand_computation(backend):
    X, y = blobs(50)
    model = classifier(backend, dtype="float64")
    with pytest.raises(ValueError, match="loss is required"):
        model.evaluate(X, y)
    model.fit(X, y, loss="cross_entropy", optimizer="sgd", epochs=1, metrics=["accuracy"],
              verbose=0)
    res = model.evaluate(X, y, batch_size=7)
    logits = model.predict(X)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert res["loss"] == pytest.approx(-np.mean(logp[np.arange(50), y]), rel=1e-10)
    assert res["accuracy"] == pytest.approx(np.mean(logits.argmax(axis=1) == y))
    assert list(model.evaluate(X, y, metrics=[]).keys()) == ["loss"]


def test_fit_again_reuses_optimizer_and_loss(backend):
    X, y = blobs(40)
    model = classifier(backend)
    opt = pnn.optimizers.Adam(0.01)
    model.fit(X, y, loss="cross_entropy", optimizer=opt, epochs=1, batch_size=10, verbose=0)
    assert opt.iterations == 4
    model.fit(X, y, epochs=2, batch_size=10, verbose=0)
    assert model.optimizer is opt and opt.iterations == 12


# progress output ---------------------------------------------------------------------------------
def test_verbose_modes(capsys, monkeypatch):
    X, y = blobs(40)
    kw = {"loss": "cross_entropy", "optimizer": "sgd", "epochs": 2, "batch_size": 10, "seed": 0}
    classifier().fit(X, y, verbose=0, **kw)
    assert capsys.readouterr().out == ""
    classifier().fit(X, y, verbose="auto", **kw)      # pytest's stdout is not a terminal
    assert capsys.readouterr().out == ""
    classifier().fit(X, y, verbose=1, metrics=["accuracy"], **kw)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2") and "accuracy" in lines[1]
    classifier().fit(X, y, verbose=2, **kw)           # not a terminal: no \r-redrawn bar
    out = capsys.readouterr().out
    assert "\r" not in out and len(out.strip().splitlines()) == 2 and "epoch 2/2" in out
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    classifier().fit(X, y, verbose=2, **kw)
    out = capsys.readouterr().out
    assert "epoch 2/2" in out and "sample/s" in out
    classifier().fit(X, y, verbose="auto", **kw)
    assert "sample/s" in capsys.readouterr().out


# plotting and restarts ---------------------------------------------------------------------------
def test_history_plot_writes_png(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    X, y = blobs(40)
    hist = classifier().fit(X, y, loss="cross_entropy", optimizer="sgd", epochs=2,
                            metrics=["accuracy"], validation_split=0.25, verbose=0)
    path = tmp_path / "history"
    fig = hist.plot(path=str(path))
    assert len(fig.axes) == 2                      # loss+val_loss, accuracy+val_accuracy
    assert (tmp_path / "history").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="not in the history"):
        hist.plot(keys=["precision"])
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        hist.plot(path=str(path))


def test_random_restarts_keeps_the_best(backend):
    X, y = blobs(60)
    built = {}

    def build(seed):
        """A fresh model per seed, remembered to check which one comes back."""
        built[seed] = pnn.Sequential(Dense(2, 2), device=backend, seed=seed)
        return built[seed]

    best, results = training.random_restarts(
        build, X, y, seeds=[0, 1, 2], loss="cross_entropy", optimizer="sgd", epochs=1,
        validation_split=0.25, verbose=0)
    assert [r["seed"] for r in results] == [0, 1, 2]
    losses = [r["val_loss"] for r in results]
    assert best is built[results[int(np.argmin(losses))]["seed"]]
    assert min(losses) == pytest.approx(best.evaluate(X[45:], y[45:])["loss"])
    with pytest.raises(ValueError, match="validation"):
        training.random_restarts(build, X, y, seeds=[0], loss="mse", optimizer="sgd")
    with pytest.raises(ValueError, match="seeds"):
        training.random_restarts(build, X, y, seeds=[], validation_split=0.2)


# bad input: a clear error, before anything changes -----------------------------------------------
def _bad_cases():
    """(id, (X, y), fit kwargs, exception, message) for each bad input."""
    X, y = blobs(30)
    Xnan = X.copy()
    Xnan[[3, 8], 0] = np.nan
    yinf = y.astype(float)[:, None].repeat(2, axis=1)
    yinf[5, 1] = np.inf
    ok = {"loss": "cross_entropy", "optimizer": "sgd", "verbose": 0}
    return [
        ("X 1-D", (X[:, 0], y), ok, ValueError, "2-D"),
        ("X 3-D into Dense", (X[:, :, None], y), ok, ValueError, "does not fit the model"),
        ("X text", (np.array([["a", "b"]] * 30), y), ok, TypeError, "numbers"),
        ("X ragged", ([[1.0, 2.0], [3.0]], y[:2]), ok, ValueError, "rectangular"),
        ("wrong features", (np.zeros((30, 3)), y), ok, ValueError, "does not fit the model"),
        ("length", (X, y[:-1]), ok, ValueError, "30 rows but y has 29"),
        ("NaN in X", (Xnan, y), ok, ValueError, "NaN or Inf in 2 of 30 rows"),
        ("Inf in y", (X, yinf), ok, ValueError, "y contains NaN or Inf in 1"),
        ("label range", (X, np.where(y == 1, 2, 0)), ok, ValueError, r"\[0, 1\]"),
        ("negative label", (X, y - 1), ok, ValueError, r"\[0, 1\]"),
        ("float labels", (X, y.astype(float)), ok, ValueError, "integer class labels"),
        ("one-hot width", (X, np.eye(3)[y]), ok, ValueError, "one-hot"),
        ("BCE multi-column", (X, y), dict(ok, loss="bce"), ValueError, "2 outputs"),
        ("BCE range", (X, y[:, None].repeat(2, axis=1) * 2.0), dict(ok, loss="bce"), ValueError,
         r"\[0, 1\]"),
        ("empty", (np.zeros((0, 2)), np.zeros(0, dtype=int)), ok, ValueError, "empty"),
        ("batch_size 0", (X, y), dict(ok, batch_size=0), ValueError, "batch_size"),
        ("batch_size float", (X, y), dict(ok, batch_size=8.0), TypeError, "batch_size"),
        ("epochs < 0", (X, y), dict(ok, epochs=-1), ValueError, "epochs"),
        ("split 1", (X, y), dict(ok, validation_split=1.0), ValueError, "validation_split"),
        ("split < 0", (X, y), dict(ok, validation_split=-0.1), ValueError, "validation_split"),
        ("split too small", (X[:2], y[:2]), dict(ok, validation_split=0.1), ValueError,
         "at least one row"),
        ("both validations", (X, y), dict(ok, validation_split=0.2, validation_data=(X, y)),
         ValueError, "either"),
        ("bad validation data", (X, y), dict(ok, validation_data=(Xnan, y)), ValueError,
         "validation X contains NaN"),
        ("validation pair", (X, y), dict(ok, validation_data=X), ValueError, "pair"),
        ("loss name", (X, y), dict(ok, loss="hinge"), ValueError, "loss must be"),
        ("no optimizer", (X, y), dict(ok, optimizer=None), ValueError, "optimizer is required"),
        ("optimizer name", (X, y), dict(ok, optimizer="lbfgs"), ValueError, "unknown optimizer"),
        ("metric name", (X, y), dict(ok, metrics=["f1"]), ValueError, "metric must be"),
        ("metric misfit", (X, y), dict(ok, metrics=["r2"]), ValueError, "metric 'r2'"),
        ("callback type", (X, y), dict(ok, callbacks=[print]), TypeError, "Callback"),
        ("verbose", (X, y), dict(ok, verbose=3), ValueError, "verbose"),
        ("seed", (X, y), dict(ok, seed="x"), TypeError, "seed"),
    ]


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda c: c[0])
def test_fit_rejects_bad_input_before_changing_anything(case, backend):
    _, (X, y), kwargs, exc, message = case
    model = classifier(backend)
    before = snapshot(model)
    with pytest.raises(exc, match=message):
        model.fit(X, y, **kwargs)
    assert_unchanged(model, before)
    assert model.optimizer is None and model.history is None


def test_batchnorm_single_row_batch_refused_up_front():
    X, y = blobs(33)
    model = pnn.Sequential(Dense(2, 4), BatchNorm(4), ReLU(), Dense(4, 2), seed=0)
    before = snapshot(model)
    with pytest.raises(ValueError, match="batch of 1 row"):
        model.fit(X, y, loss="cross_entropy", optimizer="sgd", batch_size=8, verbose=0)
    assert_unchanged(model, before)
    model.fit(X, y, loss="cross_entropy", optimizer="sgd", batch_size=11, verbose=0)


def test_evaluate_and_predict_reject_bad_input(backend):
    X, y = blobs(20)
    model = classifier(backend)
    model.fit(X, y, loss="cross_entropy", optimizer="sgd", epochs=1, verbose=0)
    before = snapshot(model)
    Xnan = X.copy()
    Xnan[0, 0] = np.nan
    for call, exc, message in [
        (lambda: model.predict(X[:, :1]), ValueError, "does not fit the model"),
        (lambda: model.predict(Xnan), ValueError, "NaN or Inf in 1 of 20 rows"),
        (lambda: model.predict(np.zeros((0, 2))), ValueError, "empty"),
        (lambda: model.predict(X, batch_size=0), ValueError, "batch_size"),
        (lambda: model.predict(X[0]), ValueError, "2-D"),
        (lambda: model.evaluate(X, y + 5), ValueError, r"\[0, 1\]"),
        (lambda: model.evaluate(X, y[:3]), ValueError, "rows"),
        (lambda: model.evaluate(X, y, metrics=["nope"]), ValueError, "metric must be"),
    ]:
        with pytest.raises(exc, match=message):
            call()
    assert_unchanged(model, before)


def test_random_restarts_give_each_run_a_fresh_optimizer():
    """A shared Adam would carry its step count and moments into later restarts: the run for a
    seed must not depend on which seeds ran before it."""
    X, y = blobs(60)

    def build(seed):
        return pnn.Sequential(Dense(2, 2), dtype="float64", seed=seed)

    opt = pnn.optimizers.Adam(learning_rate=0.05)
    kw = {"loss": "cross_entropy", "epochs": 3, "validation_split": 0.25, "verbose": 0}
    _, alone = training.random_restarts(build, X, y, seeds=[1], optimizer=opt, **kw)
    _, after = training.random_restarts(build, X, y, seeds=[0, 1], optimizer=opt, **kw)
    assert after[1]["val_loss"] == alone[0]["val_loss"]
    assert opt.iterations == 0  # the caller's optimizer is left as it was
