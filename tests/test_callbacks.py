"""Callbacks: hook order, EarlyStopping on scripted curves, TerminateOnNaN, and the others."""

import csv
import math
import warnings

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn import callbacks as cb
from portable_nn.layers import Dense, Tanh


def blobs(n=60, seed=0):
    """Two separated Gaussian blobs in 2-D with 0/1 labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    X = rng.normal(scale=0.7, size=(n, 2)) + np.where(y[:, None] == 1, 2.0, -2.0)
    return X, y


def classifier(device="cpu", dtype="float32"):
    """A small 2-input MLP classifier."""
    return pnn.Sequential(Dense(2, 4), Tanh(), Dense(4, 2), device=device, dtype=dtype, seed=0)


FIT = {"loss": "cross_entropy", "optimizer": "sgd", "verbose": 0, "seed": 0}


class Recorder(cb.Callback):
    """Records every hook call, and the weights at each epoch end."""

    def __init__(self):
        self.calls = []
        self.weights = {}

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("batch", batch, logs["size"]))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch))
        self.weights[epoch] = self.model.state_dict()

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


class Script(cb.Callback):
    """A test double: a metric whose value each epoch comes from a script, so that the
    "validation curve" EarlyStopping sees is exactly the one written in the test."""

    def __init__(self, values):
        self.values = values
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def metric(self, y_true, y_pred):
        """The scripted value of the current epoch, as a 0-d device array."""
        return y_pred[0, 0] * 0.0 + self.values[self.epoch]


def test_hook_order_and_params(backend):
    X, y = blobs(25)
    rec = Recorder()
    pnn.Sequential(Dense(2, 2), device=backend, seed=0).fit(
        X, y, epochs=2, batch_size=10, callbacks=[rec], **FIT)
    epoch = [("batch", 0, 10), ("batch", 1, 10), ("batch", 2, 5)]
    assert rec.calls == ["train_begin", ("epoch_begin", 0), *epoch, ("epoch_end", 0),
                         ("epoch_begin", 1), *epoch, ("epoch_end", 1), "train_end"]
    assert rec.params["steps"] == 3 and rec.params["samples"] == 25
    assert rec.params["epochs"] == 2 and rec.params["do_validation"] is False
    assert tuple(rec.params["sample"].shape) == (25, 2) and backend.owns(rec.params["sample"])


def _early_stopping_run(values, backend="cpu", epochs=None, **es_kwargs):
    """Fit with a scripted validation metric and an EarlyStopping; returns the pieces."""
    X, y = blobs()
    script, rec = Script(values), Recorder()
    es = cb.EarlyStopping(**es_kwargs)
    model = classifier(backend)
    hist = model.fit(X, y, epochs=epochs or len(values), batch_size=20, metrics=[script.metric],
                     validation_data=(X, y), callbacks=[script, rec, es], **FIT)
    return model, hist, es, rec


def test_early_stopping_stops_at_the_right_epoch_and_restores_best(backend):
    curve = [5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 1.0, 1.0, 1.0, 1.0]
    model, hist, es, rec = _early_stopping_run(curve, backend, monitor="val_metric", patience=3,
                                               restore_best_weights=True)
    # best at epoch 2; epochs 3, 4, 5 do not improve -> stop at epoch 5 (the 1.0 is never seen)
    assert hist.history["val_metric"] == pytest.approx(curve[:6])
    assert es.stopped_epoch == 5 and es.best_epoch == 2 and es.best == 3.0
    assert hist.epoch == [0, 1, 2, 3, 4, 5] and model.stop_training
    final = model.state_dict()
    for k, v in rec.weights[2].items():
        np.testing.assert_array_equal(final[k], v)
    assert not np.array_equal(final["0.weight"], rec.weights[5]["0.weight"])


def test_early_stopping_restores_best_even_without_stopping():
    curve = [3.0, 1.0, 2.0, 2.5]
    model, hist, es, rec = _early_stopping_run(curve, epochs=4, monitor="val_metric",
                                               patience=10, restore_best_weights=True)
    assert es.stopped_epoch is None and len(hist.epoch) == 4 and es.best_epoch == 1
    np.testing.assert_array_equal(model.state_dict()["0.weight"], rec.weights[1]["0.weight"])


def test_early_stopping_without_restore_keeps_last_weights():
    curve = [3.0, 1.0, 2.0, 2.5, 2.6]
    model, hist, es, rec = _early_stopping_run(curve, epochs=5, monitor="val_metric", patience=2)
    assert es.stopped_epoch == 3 and hist.epoch == [0, 1, 2, 3]
    np.testing.assert_array_equal(model.state_dict()["0.weight"], rec.weights[3]["0.weight"])


def test_early_stopping_min_delta_mode_baseline_start():
    # improvements smaller than min_delta do not count: best stays 1.0 from epoch 0
    _, _, es, _ = _early_stopping_run([1.0, 0.95, 0.92, 0.9], monitor="val_metric",
                                         patience=2, min_delta=0.2)
    assert es.stopped_epoch == 2 and es.best_epoch == 0
    # "max" chosen automatically for an accuracy-like name
    es_acc = cb.EarlyStopping(monitor="val_accuracy")
    assert es_acc.mode == "max"
    _, _, es, _ = _early_stopping_run([0.5, 0.6, 0.55, 0.58, 0.9], monitor="val_metric",
                                         mode="max", patience=2)
    assert es.stopped_epoch == 3 and es.best == pytest.approx(0.6)
    # with a baseline, patience runs out on epochs that improve but do not beat it ...
    _, _, es, _ = _early_stopping_run([5.0, 4.0, 2.0, 1.5, 1.4], monitor="val_metric",
                                         patience=2, baseline=2.5)
    assert es.stopped_epoch == 1 and es.best == 4.0
    # ... and is reset by the first epoch that beats it
    _, _, es, _ = _early_stopping_run([5.0, 4.0, 2.0, 1.5, 1.4], monitor="val_metric",
                                         patience=3, baseline=2.5)
    assert es.stopped_epoch is None and es.best == pytest.approx(1.4)
    # epochs before start_from_epoch are ignored
    _, _, es, _ = _early_stopping_run([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], monitor="val_metric",
                                         patience=1, start_from_epoch=3)
    assert es.stopped_epoch == 4 and es.best_epoch == 3


def test_early_stopping_warns_on_missing_key_and_validates():
    X, y = blobs()
    with pytest.warns(UserWarning, match="'val_loss' is not in the logs"):
        classifier().fit(X, y, epochs=1, callbacks=[cb.EarlyStopping()], **FIT)
    for kwargs in ({"patience": -1}, {"mode": "up"}, {"min_delta": math.nan},
                   {"start_from_epoch": 1.5}):
        with pytest.raises(ValueError):
            cb.EarlyStopping(**kwargs)


def test_terminate_on_nan_with_restore_stops_and_leaves_finite_weights(backend):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = X @ np.array([1.0, 2.0, -1.0])
    model = pnn.Sequential(Dense(3, 4), Dense(4, 1), device=backend, seed=0)
    initial = model.state_dict()
    with pytest.warns(cb.NonFiniteLossWarning, match="epoch 0, batch .*restored"):
        hist = model.fit(X, y, loss="mse", optimizer=pnn.optimizers.SGD(1e6), epochs=5,
                         batch_size=8, verbose=0, callbacks=[cb.TerminateOnNaN(restore=True)])
    assert model.stop_training and hist.epoch == [] and hist.history == {}
    state = model.state_dict()
    for k in initial:                       # rolled back to the start of the bad epoch
        np.testing.assert_array_equal(state[k], initial[k])
    assert all(np.isfinite(v).all() for v in state.values())
    assert np.isfinite(model.predict(X)).all()


def test_terminate_on_nan_names_the_first_bad_batch_and_keeps_good_epochs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = X @ np.array([1.0, 2.0, -1.0])
    stops = []
    for check_every in (1, 3, 50):
        model = pnn.Sequential(Dense(3, 1), dtype="float64", seed=0)
        lr = pnn.optimizers.SGD(0.01)
        # a sane first epoch, then an exploding rate from epoch 1 on
        sched = cb.LearningRateScheduler(lambda epoch, _: 0.01 if epoch == 0 else 1e30)
        term = cb.TerminateOnNaN(check_every=check_every, restore=True)
        rec = Recorder()
        with pytest.warns(cb.NonFiniteLossWarning):
            hist = model.fit(X, y, loss="mse", optimizer=lr, epochs=4, batch_size=8, verbose=0,
                             callbacks=[sched, term, rec])
        assert hist.epoch == [0] and term.stopped_epoch == 1
        np.testing.assert_array_equal(model.state_dict()["0.weight"], rec.weights[0]["0.weight"])
        stops.append(term.stopped_batch)
    # the batch index found by re-checking does not depend on how often the sum is checked
    assert stops[0] == stops[1] == stops[2] and stops[0] > 0


def test_terminate_on_nan_checks_parameters_at_epoch_end():
    model = classifier()
    term = cb.TerminateOnNaN(restore=True)
    term.set_model(model)
    term.set_params({"steps": 2})
    term.on_train_begin()
    term.on_epoch_begin(0)
    before = model.state_dict()
    model.layers[0].weight.value[0, 0] = np.inf       # a broken update, finite losses
    finite = model.xp.asarray(0.5)
    term.on_batch_end(0, {"loss": finite})
    assert not getattr(model, "stop_training", False)
    with pytest.warns(cb.NonFiniteLossWarning, match="parameters became non-finite"):
        term.on_batch_end(1, {"loss": finite})
    assert model.stop_training and term.stopped_batch == 1
    np.testing.assert_array_equal(model.state_dict()["0.weight"], before["0.weight"])


def test_terminate_on_nan_restores_optimizer_state():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 3))
    y = X.sum(axis=1)
    model = pnn.Sequential(Dense(3, 1), dtype="float64", seed=0)
    opt = pnn.optimizers.SGD(0.01, momentum=0.9)      # has state: a momentum buffer
    model.fit(X, y, loss="mse", optimizer=opt, epochs=1, batch_size=8, verbose=0)
    saved = opt.state_dict(model.parameters())
    opt.learning_rate = 1e100
    term = cb.TerminateOnNaN(restore=True)
    with pytest.warns(cb.NonFiniteLossWarning):
        model.fit(X, y, epochs=2, batch_size=8, verbose=0, callbacks=[term])
    assert term.stopped_epoch == 0
    now = opt.state_dict(model.parameters())
    assert now["iterations"] == saved["iterations"] == 4
    for a, b in zip(now["slots"], saved["slots"]):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_terminate_on_nan_without_restore_keeps_no_snapshot_and_still_stops():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = X @ np.array([1.0, 2.0, -1.0])
    model = pnn.Sequential(Dense(3, 1), dtype="float64", seed=0)
    sched = cb.LearningRateScheduler(lambda epoch, _: 0.01 if epoch == 0 else 1e30)
    snapshots = []

    class Spy(cb.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(term._weights)

    term = cb.TerminateOnNaN(check_every=1)  # restore=False is the default
    with pytest.warns(cb.NonFiniteLossWarning, match="restore=False"):
        hist = model.fit(X, y, loss="mse", optimizer=pnn.optimizers.SGD(0.01), epochs=4,
                         batch_size=8, verbose=0, callbacks=[sched, term, Spy()])
    assert hist.epoch == [0] and term.stopped_epoch == 1
    assert snapshots == [None]  # no copy of the weights was ever kept
    # and none was put back: the weights are those the exploding steps made
    assert np.abs(model.state_dict()["0.weight"]).max() > 1e100
    with pytest.raises(TypeError, match="restore"):
        cb.TerminateOnNaN(restore=1)


def test_the_terminate_on_nan_fit_adds_stops_without_rolling_back():
    """fit's own guard is the Keras one: it stops and names the batch, and keeps no copy of the
    weights to roll back to (a rollback would leave the finite weights of epoch 1's start)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = X @ np.array([1.0, 2.0, -1.0])
    model = pnn.Sequential(Dense(3, 1), dtype="float64", seed=0)
    sched = cb.LearningRateScheduler(lambda epoch, _: 0.01 if epoch == 0 else 1e30)
    with pytest.warns(cb.NonFiniteLossWarning, match=r"epoch 1, batch \d+ .*restore=False"):
        hist = model.fit(X, y, loss="mse", optimizer=pnn.optimizers.SGD(0.01), epochs=4,
                         batch_size=8, verbose=0, callbacks=[sched])
    assert hist.epoch == [0] and model.stop_training
    w = model.state_dict()["0.weight"]
    assert not np.all(np.isfinite(w)) or np.abs(w).max() > 1e100


def test_learning_rate_scheduler(backend):
    X, y = blobs(20)
    model = classifier(backend)
    opt = pnn.optimizers.SGD(0.1)
    hist = model.fit(X, y, epochs=3, optimizer=opt, loss="cross_entropy", verbose=0,
                     callbacks=[cb.LearningRateScheduler(lambda epoch, lr: lr * 0.5)])
    assert hist.history["lr"] == pytest.approx([0.05, 0.025, 0.0125])
    assert opt.learning_rate == pytest.approx(0.0125)
    before = model.state_dict()
    with pytest.raises(ValueError, match="finite number > 0"):
        model.fit(X, y, epochs=1, verbose=0,
                  callbacks=[cb.LearningRateScheduler(lambda epoch, lr: -1.0)])
    np.testing.assert_array_equal(model.state_dict()["0.weight"], before["0.weight"])
    with pytest.raises(TypeError):
        cb.LearningRateScheduler(0.1)


def test_model_checkpoint_every_epoch_and_best_only(tmp_path):
    curve = [3.0, 2.0, 2.5, 1.0]
    X, y = blobs()
    script = Script(curve)
    every = cb.ModelCheckpoint(str(tmp_path / "e{epoch:02d}.npz"), monitor="val_metric")
    best = cb.ModelCheckpoint(str(tmp_path / "best-{epoch}.npz"), monitor="val_metric",
                              save_best_only=True)
    rec = Recorder()
    model = classifier()
    model.fit(X, y, epochs=4, metrics=[script.metric], validation_data=(X, y),
              callbacks=[script, rec, every, best], **FIT)
    assert sorted(p.name for p in tmp_path.glob("e*.npz")) == [f"e0{i}.npz" for i in (1, 2, 3, 4)]
    assert sorted(p.name for p in tmp_path.glob("best-*.npz")) == \
        ["best-1.npz", "best-2.npz", "best-4.npz"]
    loaded = pnn.load(tmp_path / "e02.npz")
    np.testing.assert_array_equal(loaded.state_dict()["0.weight"], rec.weights[1]["0.weight"])
    assert loaded.optimizer is not None


def test_csv_logger(tmp_path):
    X, y = blobs()
    path = tmp_path / "log.csv"
    hist = classifier().fit(X, y, epochs=3, metrics=["accuracy"], callbacks=[cb.CSVLogger(path)],
                            **FIT)
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "loss", "accuracy", "lr", "time"]
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2]
    assert [float(r[1]) for r in rows[1:]] == pytest.approx(hist.history["loss"])
    classifier().fit(X, y, epochs=2, metrics=["accuracy"],
                     callbacks=[cb.CSVLogger(path, append=True)], **FIT)
    with open(path) as f:
        assert len(list(csv.reader(f))) == 1 + 3 + 2


def test_user_callback_can_stop_training():
    class StopAfterTwo(cb.Callback):
        """Sets stop_training at the end of epoch 1."""
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    X, y = blobs()
    hist = classifier().fit(X, y, epochs=10, callbacks=[StopAfterTwo()], **FIT)
    assert hist.epoch == [0, 1]


def test_no_warning_when_training_is_healthy():
    X, y = blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        classifier().fit(X, y, epochs=2, **FIT)


def test_a_callback_setup_error_leaves_model_and_files_as_they_were(tmp_path):
    """ModelCheckpoint's path names a key this run never logs: fit refuses before anything
    changes, so the model, its optimizer and history, and CSVLogger's old file are untouched."""
    X, y = blobs()
    log = tmp_path / "log.csv"
    log.write_text("epoch,loss\n0,1.0\n")
    model = classifier()
    before = model.state_dict()

    class Begun(cb.Callback):
        def on_train_begin(self, logs=None):
            raise AssertionError("on_train_begin ran before the checks")

    with pytest.raises(ValueError, match="val_loss"):
        model.fit(X, y, epochs=1, callbacks=[cb.CSVLogger(log), Begun(),
                                             cb.ModelCheckpoint(str(tmp_path / "{val_loss}.npz"))],
                  **FIT)
    assert model.optimizer is None and model.history is None
    assert log.read_text() == "epoch,loss\n0,1.0\n"
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_on_train_end_runs_for_every_begun_callback_when_one_fails(tmp_path):
    X, y = blobs()
    log = tmp_path / "log.csv"
    ends = []

    class Fails(cb.Callback):
        def on_train_begin(self, logs=None):
            raise RuntimeError("boom")

    class Ends(cb.Callback):
        def on_train_end(self, logs=None):
            ends.append(True)

    csv_logger = cb.CSVLogger(log)
    with pytest.raises(RuntimeError, match="boom"):
        classifier().fit(X, y, epochs=1, callbacks=[csv_logger, Fails(), Ends()], **FIT)
    assert csv_logger._file is None  # begun, so closed again
    assert ends == []  # never begun, so never ended
