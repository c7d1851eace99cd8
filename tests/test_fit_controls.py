"""fit's controls: sample and class weights, iterables of batches, the logits convention,
predict_proba, seeds, the history of a stopped run, data checked in the model's dtype."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.layers import Dense, Dropout, ReLU, Sequential, Sigmoid, Softmax, Tanh
from portable_nn.training import LogitsWarning
from tests.conftest import to_np


def blobs(n, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    X = rng.normal(size=(n, 2)) + np.array([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.0]])[y]
    return X, y


def mlp(device="cpu", seed=0, dtype="float64", out=3):
    return Sequential(Dense(2, 8), Tanh(), Dense(8, out), device=device, dtype=dtype, seed=seed)


def weights_of(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


# weights -----------------------------------------------------------------------------------------
def test_integer_sample_weights_equal_repeating_the_rows(backend):
    X, y = blobs(30)
    w = np.random.default_rng(1).integers(0, 4, size=30)
    weighted, repeated = mlp(backend), mlp(backend)
    kw = {"loss": "cross_entropy", "optimizer": pnn.optimizers.SGD(0.5, momentum=0.5), "epochs": 4,
              "shuffle": False, "verbose": 0, "metrics": ["accuracy"]}
    hw = weighted.fit(X, y, sample_weight=w, batch_size=30, **kw)
    hr = repeated.fit(np.repeat(X, w, axis=0), np.repeat(y, w), batch_size=int(w.sum()), **kw)
    a, b = weights_of(weighted), weights_of(repeated)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hw.history["loss"], hr.history["loss"], rtol=1e-10)
    np.testing.assert_allclose(hw.history["accuracy"], hr.history["accuracy"], rtol=1e-12)
    ew = weighted.evaluate(X, y, sample_weight=w)
    er = weighted.evaluate(np.repeat(X, w, axis=0), np.repeat(y, w))
    assert ew["loss"] == pytest.approx(er["loss"], rel=1e-10)
    assert ew["accuracy"] == pytest.approx(er["accuracy"], rel=1e-12)


def test_class_weight_dict_and_balanced(backend):
    X, y = blobs(40)
    y = np.where(np.arange(40) < 30, 0, y)  # class 0 dominates
    cw = {0: 0.5, 1: 2.0, 2: 1.0}
    a, b = mlp(backend), mlp(backend)
    kw = {"loss": "cross_entropy", "optimizer": "sgd", "epochs": 2, "shuffle": False, "batch_size": 40,
              "verbose": 0}
    a.fit(X, y, class_weight=cw, **kw)
    b.fit(X, y, sample_weight=np.array([cw[int(v)] for v in y]), **kw)
    for k, v in weights_of(a).items():
        np.testing.assert_allclose(v, weights_of(b)[k], rtol=1e-12)
    c, d = mlp(backend), mlp(backend)
    counts = np.bincount(y, minlength=3)
    c.fit(X, y, class_weight="balanced", **kw)
    d.fit(X, y, sample_weight=40 / (3 * counts[y]), **kw)
    for k, v in weights_of(c).items():
        np.testing.assert_allclose(v, weights_of(d)[k], rtol=1e-12)


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"sample_weight": np.ones(5)}, ValueError, "one weight per row"),
    ({"sample_weight": -np.ones(40)}, ValueError, "finite and >= 0"),
    ({"sample_weight": np.zeros(40)}, ValueError, "sum to 0"),
    ({"sample_weight": np.full(40, np.nan)}, ValueError, "finite"),
    ({"class_weight": {7: 1.0}}, ValueError, "not a class label"),
    ({"class_weight": {0: -1.0}}, ValueError, "finite number >= 0"),
    ({"class_weight": "even"}, ValueError, "balanced"),
    ({"class_weight": [1.0, 2.0]}, TypeError, "class_weight"),
])
def test_bad_weights_are_refused_before_anything_changes(kwargs, exc, message):
    X, y = blobs(40)
    model = mlp()
    before = weights_of(model)
    with pytest.raises(exc, match=message):
        model.fit(X, y, loss="cross_entropy", optimizer="sgd", verbose=0, **kwargs)
    for k, v in weights_of(model).items():
        np.testing.assert_array_equal(v, before[k])
    assert model.optimizer is None


def test_class_weight_needs_labels():
    X, _ = blobs(20)
    with pytest.raises(ValueError, match="class_weight needs class labels"):
        mlp(out=1).fit(X, X[:, :1], loss="mse", optimizer="sgd", class_weight={0: 1.0},
                       verbose=0)


# iterables of batches ----------------------------------------------------------------------------
def _batches(X, y, size):
    return [(X[i:i + size], y[i:i + size]) for i in range(0, len(X), size)]


def test_iterables_of_batches_train_as_arrays_do(backend):
    X, y = blobs(36)
    # a config, not an instance: each fit gets a fresh Adam
    kw = {"loss": "cross_entropy", "optimizer": {"class": "Adam", "config": {"learning_rate": 0.05}},
              "epochs": 3, "verbose": 0, "metrics": ["accuracy"]}
    ref = mlp(backend)
    h_ref = ref.fit(X, y, batch_size=12, shuffle=False, validation_data=(X[:6], y[:6]), **kw)

    def gen():
        yield from _batches(X, y, 12)

    stream = (b for _ in range(3) for b in _batches(X, y, 12))
    for data, extra in [(_batches(X, y, 12), {}), (gen, {}), (stream, {"steps_per_epoch": 3})]:
        model = mlp(backend)
        h = model.fit(data, validation_data=_batches(X[:6], y[:6], 4), **extra, **kw)
        for k, v in weights_of(model).items():
            np.testing.assert_allclose(v, weights_of(ref)[k], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(h.history["loss"], h_ref.history["loss"], rtol=1e-10)
        np.testing.assert_allclose(h.history["val_loss"], h_ref.history["val_loss"], rtol=1e-10)


def test_weighted_batches_and_evaluate_on_batches():
    X, y = blobs(30)
    w = np.random.default_rng(3).uniform(0.5, 2.0, size=30)
    a, b = mlp(), mlp()
    kw = {"loss": "cross_entropy", "optimizer": "sgd", "epochs": 2, "verbose": 0}
    a.fit(X, y, sample_weight=w, batch_size=10, shuffle=False, **kw)
    b.fit([(X[i:i + 10], y[i:i + 10], w[i:i + 10]) for i in (0, 10, 20)], **kw)
    for k, v in weights_of(a).items():
        np.testing.assert_allclose(v, weights_of(b)[k], rtol=1e-12)
    assert a.evaluate(_batches(X, y, 7))["loss"] == pytest.approx(a.evaluate(X, y)["loss"],
                                                                  rel=1e-12)


def test_torch_dataloader_is_a_source_of_batches():
    torch = pytest.importorskip("torch")
    X, y = blobs(32)
    ds = torch.utils.data.TensorDataset(torch.as_tensor(X), torch.as_tensor(y))
    loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=False)
    model, ref = mlp(), mlp()
    kw = {"loss": "cross_entropy", "optimizer": "sgd", "epochs": 2, "verbose": 0}
    model.fit(loader, **kw)
    ref.fit(X, y, batch_size=8, shuffle=False, **kw)
    for k, v in weights_of(model).items():
        np.testing.assert_allclose(v, weights_of(ref)[k], rtol=1e-12)


def test_bad_iterables_are_clear_errors():
    X, y = blobs(20)
    model = mlp()
    kw = {"loss": "cross_entropy", "optimizer": "sgd", "verbose": 0}
    with pytest.raises(ValueError, match="yielded no batch"):
        model.fit(lambda: iter([]), **kw)
    with pytest.raises(ValueError, match=r"pair \(x, y\)"):
        model.fit([(X[:5],)], **kw)
    with pytest.raises(ValueError, match="batch 1.*NaN"):
        model.fit([(X[:5], y[:5]), (np.full((5, 2), np.nan), y[:5])], **kw)
    with pytest.raises(ValueError, match="leave y out"):
        model.fit(_batches(X, y, 5), y, **kw)
    with pytest.raises(ValueError, match="can be read once"):
        model.fit(iter(_batches(X, y, 5)), epochs=2, **kw)
    with pytest.raises(ValueError, match="ran out after 4 batches"):
        model.fit(iter(_batches(X, y, 5)), epochs=1, steps_per_epoch=6, **kw)
    with pytest.raises(ValueError, match="steps_per_epoch is for"):
        model.fit(X, y, steps_per_epoch=2, **kw)

    def broken():
        yield X[:5], y[:5]
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        model.fit(broken, **kw)


# the logits convention, probabilities -----------------------------------------------------------
def test_logits_loss_after_softmax_or_sigmoid_warns_with_the_fix():
    X, y = blobs(30)
    soft = Sequential(Dense(2, 3), Softmax(), seed=0)
    with pytest.warns(LogitsWarning, match=r"from_logits=False\).*drop the Softmax"):
        soft.fit(X, y, loss=pnn.losses.CrossEntropy(), optimizer="sgd", verbose=0)
    with pytest.warns(LogitsWarning, match="softmax"):
        soft.evaluate(X, y)
    sig = Sequential(Dense(2, 1), Sigmoid(), seed=0)
    yb = (y == 0).astype(float)
    with pytest.warns(LogitsWarning, match="Sigmoid"):
        sig.fit(X, yb, loss="bce", optimizer="sgd", verbose=0, metrics=["accuracy"])
    with pytest.warns(LogitsWarning, match="add a Softmax"):
        mlp().fit(X, y, loss=pnn.losses.CrossEntropy(from_logits=False), optimizer="sgd",
                  verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Sequential(Dense(2, 3), Softmax(), seed=0).fit(
            X, y, loss=pnn.losses.CrossEntropy(from_logits=False), optimizer="sgd", verbose=0)
        mlp().fit(X, y, loss="cross_entropy", optimizer="sgd", verbose=0)


def test_metrics_read_outputs_with_the_losses_convention():
    """BCE on logits: accuracy thresholds the logit at 0, which is σ > 0.5."""
    X, y = blobs(60)
    yb = (y == 0).astype(float)
    model = Sequential(Dense(2, 1), seed=0)
    h = model.fit(X, yb, loss="bce", optimizer=pnn.optimizers.SGD(0.5), epochs=30, verbose=0,
                  metrics=["accuracy"], batch_size=60)
    true_acc = np.mean((model.predict_proba(X)[:, 0] > 0.5) == (yb > 0.5))
    assert h.history["accuracy"][-1] == pytest.approx(np.mean(
        (model.predict(X)[:, 0] > 0) == (yb > 0.5)), abs=0.1)
    assert model.evaluate(X, yb)["accuracy"] == pytest.approx(true_acc)
    assert true_acc > 0.9


def test_predict_proba(backend):
    X, y = blobs(30)
    model = mlp(backend)
    with pytest.raises(TypeError, match="not trained"):
        model.predict_proba(X)
    model.fit(X, y, loss="cross_entropy", optimizer="sgd", verbose=0)
    p = model.predict_proba(X)
    logits = model.predict(X)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(axis=1, keepdims=True), rtol=1e-10)
    dev = model.predict_proba(backend.asarray(X, dtype="float64"))
    assert backend.owns(dev)
    # a Softmax output is already a probability
    soft = Sequential(Dense(2, 3), Softmax(), device=backend, dtype="float64", seed=0)
    np.testing.assert_allclose(soft.predict_proba(X), soft.predict(X))
    # binary with logits: the sigmoid
    binary = Sequential(Dense(2, 1), device=backend, dtype="float64", seed=0)
    binary.fit(X, (y == 0).astype(float), loss="bce", optimizer="sgd", verbose=0)
    np.testing.assert_allclose(binary.predict_proba(X), 1 / (1 + np.exp(-binary.predict(X))),
                               rtol=1e-10)
    reg = mlp(backend, out=1)
    reg.fit(X, X[:, :1], loss="mse", optimizer="sgd", verbose=0)
    with pytest.raises(TypeError, match="regress"):
        reg.predict_proba(X)


# reproducibility -----------------------------------------------------------------------------------
def _dropout_net(device="cpu", seed=7):
    return Sequential(Dense(2, 16), ReLU(), Dropout(0.3), Dense(16, 3), device=device,
                      dtype="float64", seed=seed)


def test_the_models_seed_makes_fit_reproducible(backend):
    X, y = blobs(50)
    kw = {"loss": "cross_entropy", "optimizer": "adam", "epochs": 2, "batch_size": 8, "verbose": 0}
    a, b = _dropout_net(backend), _dropout_net(backend)
    a.fit(X, y, **kw)
    b.fit(X, y, **kw)
    for k, v in weights_of(a).items():
        np.testing.assert_array_equal(v, weights_of(b)[k])
    # fit(seed=...) overrides the model's: the same fit seed gives the same run from any model
    c, d = _dropout_net(backend, seed=1), _dropout_net(backend, seed=1)
    c.fit(X, y, seed=3, **kw)
    d.fit(X, y, seed=3, **kw)
    for k, v in weights_of(c).items():
        np.testing.assert_array_equal(v, weights_of(d)[k])
    e = _dropout_net(backend, seed=1)
    e.fit(X, y, seed=4, **kw)
    assert any(not np.array_equal(v, weights_of(c)[k]) for k, v in weights_of(e).items())


def test_save_load_continue_equals_never_stopping(backend, tmp_path):
    X, y = blobs(50)
    kw = {"loss": "cross_entropy", "optimizer": "adam", "batch_size": 8, "verbose": 0}
    straight = _dropout_net(backend)
    straight.fit(X, y, epochs=4, **kw)
    first = _dropout_net(backend)
    first.fit(X, y, epochs=2, **kw)
    first.fit(X, y, epochs=2, batch_size=8, verbose=0)  # the same loss and optimizer go on
    for k, v in weights_of(first).items():  # two fits continue the model's streams
        np.testing.assert_allclose(v, weights_of(straight)[k], rtol=1e-12, atol=1e-14)
    half = _dropout_net(backend)
    half.fit(X, y, epochs=2, **kw)
    pnn.save(half, tmp_path / "half.ckpt")
    resumed = pnn.load(tmp_path / "half.ckpt", device=backend)
    resumed.fit(X, y, epochs=2, batch_size=8, verbose=0)
    for k, v in weights_of(resumed).items():
        np.testing.assert_allclose(v, weights_of(straight)[k], rtol=1e-12, atol=1e-14)


# history, stops --------------------------------------------------------------------------------------
def test_history_has_its_keys_and_the_reason_when_the_first_epoch_stops():
    X, _ = blobs(64)
    y = X @ np.array([1.0, 2.0])
    model = Sequential(Dense(2, 4), Dense(4, 1), seed=0)
    with pytest.warns(pnn.callbacks.NonFiniteLossWarning):
        h = model.fit(X, y, loss="mse", optimizer=pnn.optimizers.SGD(1e6), epochs=3,
                      batch_size=8, verbose=0, validation_split=0.25, metrics=["mae"])
    assert h.history["loss"] == [] and h.history["val_mae"] == []
    assert set(h.history) == {"loss", "mae", "val_loss", "val_mae", "lr", "time"}
    assert h.stopped_epoch == 0 and h.stopped_batch is not None
    assert "non-finite" in h.stop_reason
    done = mlp().fit(*blobs(20), loss="cross_entropy", optimizer="sgd", epochs=2, verbose=0)
    assert done.stop_reason == "completed 2 epochs" and done.stopped_epoch is None


# data in the model's dtype ------------------------------------------------------------------------
def test_values_that_overflow_the_models_dtype_are_refused(backend):
    X, y = blobs(20)
    model = mlp(backend, dtype="float32")
    before = weights_of(model)
    with pytest.raises(ValueError, match=r"X has values up to 4.*beyond the largest float32"):
        model.fit(X * 1e39, y, loss="cross_entropy", optimizer="sgd", verbose=0)
    with pytest.raises(ValueError, match="^X has values"):
        model.predict(X * 1e39)
    with pytest.raises(ValueError, match="y has values"):
        mlp(backend, dtype="float32", out=1).fit(X, X[:, 0] * 1e39, loss="mse",
                                                 optimizer="sgd", verbose=0)
    for k, v in weights_of(model).items():
        np.testing.assert_array_equal(v, before[k])
    # float64 holds them
    assert np.isfinite(mlp(backend, dtype="float64").predict(X * 1e39)).all()


def test_dtype_objects_are_accepted():
    m = Sequential(Dense(2, 1), dtype=np.float64)
    assert m.dtype_name == "float64"
    assert Sequential(Dense(2, 1), dtype=np.dtype("float32")).dtype_name == "float32"
    with pytest.raises(ValueError, match="dtype must be one of"):
        Sequential(Dense(2, 1), dtype=np.int32)


def test_validation_split_validates_on_the_last_rows():
    X, y = blobs(40)
    model = mlp()
    h = model.fit(X, y, loss="cross_entropy", optimizer="sgd", epochs=1, verbose=0,
                  validation_split=0.25)
    assert h.history["val_loss"][0] == pytest.approx(model.evaluate(X[30:], y[30:])["loss"],
                                                     rel=1e-12)


def test_training_methods_are_documented():
    for name in ("fit", "evaluate", "predict", "predict_proba"):
        doc = getattr(Sequential, name).__doc__
        assert doc and len(doc) > 200, name
    for arg in ("sample_weight", "class_weight", "steps_per_epoch", "validation_data", "seed",
                "distributed", "callbacks", "verbose"):
        assert arg in Sequential.fit.__doc__, arg


def test_device_arrays_and_host_arrays_train_alike(backend):
    X, y = blobs(24)
    a, b = mlp(backend), mlp(backend)
    kw = {"loss": "cross_entropy", "optimizer": "sgd", "epochs": 2, "verbose": 0, "seed": 1}
    a.fit(X, y, **kw)
    b.fit(backend.asarray(X, dtype="float64"), backend.asarray(y), **kw)
    for k, v in weights_of(a).items():
        np.testing.assert_allclose(v, weights_of(b)[k], rtol=1e-12)
    assert to_np(b.parameters()[0].value).shape == (2, 8)


# copies -----------------------------------------------------------------------------------------------
def test_deepcopy_and_pickle_give_a_model_that_predicts_and_trains_alike(backend):
    import copy
    import pickle

    X, y = blobs(30)
    model = _dropout_net(backend)
    model.fit(X, y, loss="cross_entropy", optimizer="adam", epochs=1, batch_size=10, verbose=0)
    clones = [copy.deepcopy(model), pickle.loads(pickle.dumps(model))]
    for clone in clones:
        np.testing.assert_array_equal(clone.predict(X), model.predict(X))
        assert clone.device == model.device and clone.optimizer is not model.optimizer
        # the optimizer's state and the random streams came along: training goes on alike
        clone.fit(X, y, epochs=1, batch_size=10, verbose=0)
    model.fit(X, y, epochs=1, batch_size=10, verbose=0)
    for clone in clones:
        np.testing.assert_array_equal(clone.predict(X), model.predict(X))
