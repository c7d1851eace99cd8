"""Callbacks: hook order, EarlyStopping on scripted curves, TerminateOnNaN, and the others."""

import csv
import math
import os
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


def test_early_stopping_refuses_a_monitor_fit_will_not_log():
    X, y = blobs()
    model = classifier()
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"EarlyStopping: monitor 'val_loss' is not logged.*"
                                         r"validation_data"):
        model.fit(X, y, epochs=1, callbacks=[cb.EarlyStopping()], **FIT)
    with pytest.raises(ValueError, match="'val_acc' is not logged"):
        model.fit(X, y, epochs=1, metrics=["accuracy"], validation_split=0.2,
                  callbacks=[cb.EarlyStopping("val_acc")], **FIT)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert model.history is None
    # without fit's check (hooks called by hand) a missing key still only warns
    es = cb.EarlyStopping()
    es.set_model(model)
    with pytest.warns(UserWarning, match="'val_loss' is not in the logs"):
        es.on_epoch_end(0, {"loss": 1.0})


# (callback, kwargs, error, message): every constructor names the bad argument
BAD_ARGS = [
    (cb.EarlyStopping, {"patience": -1}, ValueError, "patience"),
    (cb.EarlyStopping, {"patience": 1.5}, TypeError, "patience"),
    (cb.EarlyStopping, {"start_from_epoch": 1.5}, TypeError, "start_from_epoch"),
    (cb.EarlyStopping, {"mode": "up"}, ValueError, "mode"),
    (cb.EarlyStopping, {"mode": None}, ValueError, "mode"),
    (cb.EarlyStopping, {"min_delta": math.nan}, ValueError, "min_delta"),
    (cb.EarlyStopping, {"baseline": math.nan}, ValueError, "baseline"),
    (cb.EarlyStopping, {"baseline": "0.5"}, TypeError, "baseline"),
    (cb.EarlyStopping, {"monitor": 5}, TypeError, "monitor"),
    (cb.EarlyStopping, {"monitor": ""}, ValueError, "monitor"),
    (cb.EarlyStopping, {"restore_best_weights": 1}, TypeError, "restore_best_weights"),
    (cb.ModelCheckpoint, {"path": "c.npz", "monitor": 5}, TypeError, "monitor"),
    (cb.ModelCheckpoint, {"path": 5}, TypeError, "path"),
    (cb.ModelCheckpoint, {"path": ""}, ValueError, "path"),
    (cb.ModelCheckpoint, {"path": b"c.npz"}, TypeError, "path"),
    (cb.ModelCheckpoint, {"path": "c.npz", "mode": "best"}, ValueError, "mode"),
    (cb.ModelCheckpoint, {"path": "c.npz", "save_best_only": "yes"}, TypeError,
     "save_best_only"),
    (cb.LearningRateScheduler, {"fn": 0.1}, TypeError, "fn"),
    (cb.LearningRateScheduler, {"fn": abs, "verbose": "yes"}, TypeError, "verbose"),
    (cb.TerminateOnNaN, {"check_every": 0}, ValueError, "check_every"),
    (cb.TerminateOnNaN, {"check_every": "10"}, TypeError, "check_every"),
    (cb.TerminateOnNaN, {"restore": 1}, TypeError, "restore"),
    (cb.CSVLogger, {"path": None}, TypeError, "path"),
    (cb.CSVLogger, {"path": "log.csv", "separator": ";;"}, ValueError, "separator"),
    (cb.CSVLogger, {"path": "log.csv", "separator": 9}, TypeError, "separator"),
    (cb.CSVLogger, {"path": "log.csv", "append": "yes"}, TypeError, "append"),
    (cb.ProgressBar, {"mode": "dots"}, ValueError, "mode"),
    (cb.ProgressBar, {"refresh": -1.0}, ValueError, "refresh"),
    (cb.ProgressBar, {"refresh": "1s"}, TypeError, "refresh"),
    (cb.ProgressBar, {"file": "out.txt"}, TypeError, "file"),
    (cb.ReduceLROnPlateau, {"factor": 1.0}, ValueError, "factor"),
    (cb.ReduceLROnPlateau, {"factor": 0.0}, ValueError, "factor"),
    (cb.ReduceLROnPlateau, {"factor": "half"}, TypeError, "factor"),
    (cb.ReduceLROnPlateau, {"patience": -2}, ValueError, "patience"),
    (cb.ReduceLROnPlateau, {"patience": 2.0}, TypeError, "patience"),
    (cb.ReduceLROnPlateau, {"mode": "lower"}, ValueError, "mode"),
    (cb.ReduceLROnPlateau, {"min_delta": -1e-3}, ValueError, "min_delta"),
    (cb.ReduceLROnPlateau, {"cooldown": -1}, ValueError, "cooldown"),
    (cb.ReduceLROnPlateau, {"min_lr": math.inf}, ValueError, "min_lr"),
    (cb.ReduceLROnPlateau, {"min_lr": None}, TypeError, "min_lr"),
    (cb.ReduceLROnPlateau, {"monitor": ["val_loss"]}, TypeError, "monitor"),
]


@pytest.mark.parametrize("cls,kwargs,error,match", BAD_ARGS,
                         ids=[f"{c.__name__}-{'-'.join(k)}-{i}" for i, (c, k, _, _)
                              in enumerate(BAD_ARGS)])
def test_constructors_name_the_bad_argument(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls(**kwargs)


def test_writes_marks_the_callbacks_that_write():
    """Under data-parallel training only rank 0 runs the callbacks that write."""
    assert cb.Callback.writes is False
    writers = {cb.ModelCheckpoint, cb.CSVLogger, cb.ProgressBar}
    for cls in (cb.EarlyStopping, cb.ModelCheckpoint, cb.LearningRateScheduler, cb.TerminateOnNaN,
                cb.CSVLogger, cb.ProgressBar, cb.ReduceLROnPlateau):
        assert cls.writes is (cls in writers), cls.__name__


def test_terminate_on_nan_with_restore_stops_and_leaves_finite_weights(backend):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = X @ np.array([1.0, 2.0, -1.0])
    model = pnn.Sequential(Dense(3, 4), Dense(4, 1), device=backend, seed=0)
    initial = model.state_dict()
    with pytest.warns(cb.NonFiniteLossWarning, match="epoch 0, batch .*restored"):
        hist = model.fit(X, y, loss="mse", optimizer=pnn.optimizers.SGD(1e6), epochs=5,
                         batch_size=8, verbose=0, callbacks=[cb.TerminateOnNaN(restore=True)])
    assert model.stop_training and hist.epoch == [] and hist.history["loss"] == []
    assert hist.stopped_epoch == 0 and "TerminateOnNaN" in hist.stop_reason
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


def test_learning_rate_scheduler_refuses_an_optimizer_with_a_schedule():
    """It would replace the schedule without notice (Keras raises too): refused before
    training, whether check() sees the optimizer (reused, or passed in params) or not."""
    X, y = blobs(20)
    sched = pnn.schedules.CosineDecay(0.1, 100)
    lrs = cb.LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    model = classifier()
    model.optimizer = pnn.optimizers.Adam(sched)
    before = model.state_dict()
    log = []

    class Begun(cb.Callback):
        def on_train_begin(self, logs=None):
            log.append("begun")

    with pytest.raises(ValueError, match="LearningRateScheduler: .*CosineDecay.*not both"):
        model.fit(X, y, epochs=1, loss="cross_entropy", verbose=0, callbacks=[Begun(), lrs])
    assert log == [] and model.optimizer.learning_rate is sched  # check() refused it
    with pytest.raises(ValueError, match="not both"):
        lrs.check(classifier(), {"optimizer": pnn.optimizers.SGD(sched)})
    lrs.check(classifier(), {"optimizer": pnn.optimizers.SGD(0.1)})
    # a new optimizer passed to fit: refused at the latest before the first batch
    with pytest.raises(ValueError, match="not both"):
        model.fit(X, y, epochs=1, optimizer=pnn.optimizers.SGD(sched), loss="cross_entropy",
                  verbose=0, callbacks=[lrs])
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_learning_rate_scheduler_sets_the_base_rate_under_lr_scale():
    X, y = blobs(20)
    opt = pnn.optimizers.SGD(0.1)
    opt.lr_scale = 0.5
    hist = classifier().fit(X, y, epochs=2, optimizer=opt, loss="cross_entropy", verbose=0,
                            callbacks=[cb.LearningRateScheduler(lambda epoch, lr: lr * 0.5)])
    assert opt.learning_rate == pytest.approx(0.025)  # fn saw 0.1, then 0.05: the base rate
    assert hist.history["lr"] == pytest.approx([0.025, 0.0125])  # what the steps used


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


def test_model_checkpoint_checks_its_directory_and_monitor_before_training(tmp_path):
    X, y = blobs()
    model = classifier()
    before = model.state_dict()
    missing = cb.ModelCheckpoint(str(tmp_path / "missing" / "dir" / "c.npz"))
    with pytest.raises(ValueError, match=r"ModelCheckpoint: the directory .*missing.*does not "
                                         r"exist"):
        model.fit(X, y, epochs=1, callbacks=[missing], **FIT)
    # a template is checked as the first epoch fills it in
    per_epoch = cb.ModelCheckpoint(str(tmp_path / "run-{epoch}" / "c.npz"))
    with pytest.raises(ValueError, match="run-1"):
        model.fit(X, y, epochs=1, callbacks=[per_epoch], **FIT)
    best = cb.ModelCheckpoint(str(tmp_path / "c.npz"), save_best_only=True)
    with pytest.raises(ValueError, match="ModelCheckpoint: monitor 'val_loss' is not logged"):
        model.fit(X, y, epochs=1, callbacks=[best], **FIT)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root may write anywhere: nothing to refuse then
            with pytest.raises(ValueError, match="is not writable"):
                model.fit(X, y, epochs=1, callbacks=[cb.ModelCheckpoint(str(locked / "c.npz"))],
                          **FIT)
            with pytest.raises(ValueError, match="CSVLogger: .* is not writable"):
                model.fit(X, y, epochs=1, callbacks=[cb.CSVLogger(locked / "log.csv")], **FIT)
    finally:
        locked.chmod(0o700)
    with pytest.raises(ValueError, match="CSVLogger: the directory .* does not exist"):
        model.fit(X, y, epochs=1, callbacks=[cb.CSVLogger(tmp_path / "no" / "log.csv")], **FIT)
    assert model.history is None
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locked"]


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


# -- ReduceLROnPlateau ------------------------------------------------------------------------------
# factor 0.5, patience 2, cooldown 2, min_lr 0.02 from lr 0.1, worked through Keras's rule (the
# cooldown counter is decremented before the epoch is judged, so cooldown=1 would change nothing):
#   epochs 0, 1 improve; 2, 3 do not -> reduce at the end of 3 (0.05), cooldown 2;
#   4 is a cooldown epoch, 5 ends the cooldown (wait reset, then 1), 6 -> 0.025, cooldown 2;
#   7 cooldown, 8 wait 1, 9 -> 0.0125, clamped to min_lr: 0.02
PLATEAU = [1.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0, 1.1, 1.2]
PLATEAU_SCALES = [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]  # lr_scale during each epoch


def _plateau_run(optimizer, backend="cpu", curve=PLATEAU, **kwargs):
    X, y = blobs(40)
    script = Script(curve)
    kwargs = {"monitor": "val_metric", "factor": 0.5, "patience": 2, "cooldown": 2,
              "min_lr": 0.02, **kwargs}
    plateau = cb.ReduceLROnPlateau(**kwargs)
    seen = []

    class After(cb.Callback):  # lr_scale once the plateau callback has seen the epoch
        def on_epoch_end(self, epoch, logs=None):
            seen.append(optimizer.lr_scale)

    hist = classifier(backend).fit(
        X, y, epochs=len(curve), batch_size=20, optimizer=optimizer, metrics=[script.metric],
        validation_data=(X, y), callbacks=[script, plateau, After()],
        **{k: v for k, v in FIT.items() if k != "optimizer"})
    return hist, plateau, seen


@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam", "adamw"])
def test_reduce_lr_on_plateau_follows_keras_rule_with_every_optimizer(name):
    optimizer = pnn.optimizers.get(name)
    optimizer.learning_rate = 0.1
    hist, plateau, seen = _plateau_run(optimizer)
    assert hist.history["lr"] == pytest.approx([0.1 * s for s in PLATEAU_SCALES], rel=1e-12)
    assert seen == pytest.approx(PLATEAU_SCALES[1:] + [0.2], rel=1e-12)
    assert optimizer.learning_rate == 0.1  # the base rate is untouched: lr_scale carries it
    assert plateau.best == pytest.approx(0.9) and plateau.wait == 0
    assert plateau.cooldown_counter == 2


def test_reduce_lr_on_plateau_scales_a_schedule(backend):
    """On top of a schedule the reduction multiplies it: every epoch's rate is
    lr_scale · schedule(step), and the schedule keeps counting steps."""
    sched = pnn.schedules.ExponentialDecay(0.1, 0.9, decay_steps=2)
    optimizer = pnn.optimizers.Adam(sched)
    hist, _, _ = _plateau_run(optimizer, backend, min_lr=0.0)
    steps_per_epoch = 2
    expected = [s * sched(e * steps_per_epoch) for e, s in enumerate(PLATEAU_SCALES)]
    assert hist.history["lr"] == pytest.approx(expected, rel=1e-12)
    assert optimizer.lr_scale == pytest.approx(0.125)  # the last epoch reduced once more
    assert optimizer.has_schedule and optimizer.learning_rate is sched


def test_reduce_lr_on_plateau_never_goes_below_min_lr_with_a_schedule():
    sched = pnn.schedules.Constant(0.1)
    optimizer = pnn.optimizers.SGD(sched)
    hist, _, _ = _plateau_run(optimizer, factor=0.1, cooldown=0, patience=0, min_lr=0.003,
                              curve=[1.0, 2.0, 2.0, 2.0, 2.0])
    assert hist.history["lr"] == pytest.approx([0.1, 0.1, 0.01, 0.003, 0.003], rel=1e-12)
    assert optimizer.current_lr() == pytest.approx(0.003, rel=1e-12)


def test_reduce_lr_on_plateau_mode_min_delta_and_logs():
    class Model:
        optimizer = pnn.optimizers.SGD(1.0)

    plateau = cb.ReduceLROnPlateau("val_accuracy", factor=0.5, patience=1, min_delta=0.05)
    assert plateau.mode == "max"  # accuracy is maximised, as EarlyStopping decides
    plateau.set_model(Model())
    plateau.on_train_begin()
    lrs = []
    for epoch, acc in enumerate([0.5, 0.54, 0.53, 0.7, 0.72]):
        logs = {"val_accuracy": acc}
        plateau.on_epoch_end(epoch, logs)
        lrs.append(logs["lr"])  # the effective rate the epoch ran with
    # 0.54 and 0.53 do not beat best 0.5 by min_delta: each is a plateau epoch (patience 1);
    # 0.7 improves, 0.72 does not by min_delta
    assert lrs == [1.0, 1.0, 0.5, 0.25, 0.25]
    assert Model.optimizer.lr_scale == 0.125


def test_reduce_lr_on_plateau_check_refuses_before_training():
    X, y = blobs()
    model = classifier()
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau: monitor 'val_loss' is not logged"):
        model.fit(X, y, epochs=1, callbacks=[cb.ReduceLROnPlateau()], **FIT)

    class Foreign:  # an optimizer of the user's own, without lr_scale
        learning_rate = 0.1

    with pytest.raises(TypeError, match="lr_scale"):
        cb.ReduceLROnPlateau("loss").check(model, {"optimizer": Foreign()})
    assert model.history is None
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
