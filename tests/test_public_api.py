"""Acceptance checks of the public API as a user meets it, each a regression test of a bug found in
review: float64 buffers promoting a float32 model, layer chains that do not fit, gradcheck on host
data and its verdict, gradcheck's side effects, and a ModelCheckpoint path that cannot be filled in.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import to_np

import portable_nn as pnn
from portable_nn.layers import BatchNorm, Dense, Layer, ReLU, Tanh


def _bn_model(device, dtype, seed=0):
    return pnn.Sequential(Dense(3, 4), BatchNorm(4), Tanh(), Dense(4, 2), device=device,
                          dtype=dtype, seed=seed)


# float32 stays float32 --------------------------------------------------------------------------
def test_float64_state_into_float32_model_keeps_float32(device, rng):
    """Loading a float64 model's state (BatchNorm running statistics included) into a float32
    model must not leave float64 buffers behind, which would promote every prediction."""
    X = rng.normal(size=(32, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    m64 = _bn_model(device, "float64")
    m64.fit(X, y, loss="cross_entropy", optimizer="sgd", epochs=1, batch_size=8, verbose=0,
            seed=0)
    m32 = _bn_model(device, "float32", seed=1)
    m32.load_state_dict(m64.state_dict())
    for name, buf in m32.named_buffers().items():
        assert m32.backend.dtype_name(buf.dtype) == "float32", name
    pred = m32.predict(X.astype(np.float32))
    assert pred.dtype == np.float32
    np.testing.assert_allclose(pred, m64.predict(X), rtol=1e-4, atol=1e-5)
    # the values came across, not only the dtype
    np.testing.assert_allclose(to_np(m32.named_buffers()["1.running_mean"]),
                               to_np(m64.named_buffers()["1.running_mean"]), rtol=1e-6)


# layer chains that cannot work -------------------------------------------------------------------
def test_mismatched_layer_chain_is_refused_at_construction():
    with pytest.raises(ValueError, match=r"layer 2 \(Dense\) expects 5 input features, but "
                                         r"layer 1 \(ReLU\) outputs 8"):
        pnn.Sequential(Dense(4, 8), ReLU(), Dense(5, 2))
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNorm\) expects 3 input features"):
        pnn.Sequential(Dense(4, 8), BatchNorm(3))
    # nothing was built: the same layers can still go into a model that fits them
    a, b = Dense(4, 8), Dense(8, 2)
    with pytest.raises(ValueError):
        pnn.Sequential(a, Dense(3, 1), b)
    assert not a.built and not b.built
    assert pnn.Sequential(a, ReLU(), b).num_parameters() == 4 * 8 + 8 + 8 * 2 + 2


def test_user_layer_without_output_shape_is_not_second_guessed():
    """A user's layer that changes the width without declaring ``output_shape`` must not make a
    correct model fail to build."""

    class TakeFirstTwo(Layer):
        def forward(self, x, training=False):
            return x[:, :2]

        def backward(self, grad_out, need_input_grad=True):
            raise NotImplementedError

    model = pnn.Sequential(Dense(3, 5), TakeFirstTwo(), Dense(2, 1), seed=0)
    assert model.predict(np.ones((4, 3), dtype=np.float32)).shape == (4, 1)


# gradcheck ---------------------------------------------------------------------------------------
def test_gradcheck_takes_host_data_on_every_backend(device, rng):
    model = pnn.Sequential(Dense(3, 4), Tanh(), Dense(4, 2), device=device, dtype="float64",
                           seed=0)
    x = rng.normal(size=(5, 3))
    t = np.array([0, 1, 1, 0, 1])
    result = pnn.gradcheck(model, x, target=t, loss=pnn.losses.CrossEntropy())
    assert result.max_error < 1e-6 and result
    assert set(result.errors) == {"input", "0.weight", "0.bias", "2.weight", "2.bias"}
    # a list of lists works too (converted in the model's dtype)
    assert pnn.gradcheck(model, x.tolist()).max_error < 1e-6


class _WrongTwice(Layer):
    """y = 2x with a backward that forgets the factor 2 (a typical user bug)."""

    def forward(self, x, training=False):
        return 2.0 * x

    def backward(self, grad_out, need_input_grad=True):
        return grad_out


def test_gradcheck_result_is_false_for_a_wrong_gradient():
    layer = _WrongTwice().build("cpu", "float64")
    result = pnn.gradcheck(layer, np.ones((2, 3)))
    assert result.max_error == pytest.approx(0.5, rel=1e-6)  # |g − 2g| / |2g|
    assert not result and not result.passed
    assert "FAILED" in str(result) and "'input'" in str(result)
    loose = pnn.gradcheck(layer, np.ones((2, 3)), tol=0.6)
    assert loose and loose.tolerance == 0.6
    with pytest.raises(ValueError, match="tol"):
        pnn.gradcheck(layer, np.ones((2, 3)), tol=0)


def test_gradcheck_warns_in_float32(backend):
    layer = pnn.layers.Tanh().build(backend, "float32")
    with pytest.warns(UserWarning, match="float32.*dtype='float64'"):
        pnn.gradcheck(layer, np.ones((2, 3)))
    loss = pnn.losses.MSE()
    with pytest.warns(UserWarning, match="float32"):
        pnn.gradcheck(loss, backend.asarray(np.ones((2, 3)), dtype="float32"),
                      target=backend.asarray(np.zeros((2, 3)), dtype="float32"))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pnn.gradcheck(pnn.layers.Tanh().build(backend, "float64"), np.ones((2, 3)))


def test_gradcheck_leaves_buffers_as_they_were(backend, rng):
    """Training-mode forwards update BatchNorm's running statistics; a check must not."""
    # Tanh before BatchNorm: a bias right before it has a gradient of exactly 0, whose relative
    # error is meaningless
    model = pnn.Sequential(Dense(3, 4), Tanh(), BatchNorm(4), Dense(4, 2), device=backend,
                           dtype="float64", seed=0)
    x = backend.asarray(rng.normal(size=(6, 3)), dtype="float64")
    t = backend.asarray(np.array([0, 1, 0, 1, 1, 0]))
    loss = pnn.losses.CrossEntropy()
    before = model.state_dict()
    result = pnn.gradcheck(model, x, target=t, loss=loss, training=True)
    assert result.max_error < 1e-6
    after = model.state_dict()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    # p.grad keeps the analytic gradient that was checked: that of the training-mode loss at x
    checked = {k: to_np(p.grad).copy() for k, p in model.named_parameters().items()}
    loss.forward(model.forward(x, training=True), t)
    model.backward(loss.backward())
    for k, p in model.named_parameters().items():
        np.testing.assert_allclose(checked[k], to_np(p.grad), rtol=1e-12, atol=1e-15, err_msg=k)


# callbacks ---------------------------------------------------------------------------------------
def test_model_checkpoint_with_unknown_key_fails_before_training(tmp_path):
    X = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = pnn.Sequential(Dense(3, 2), seed=0)
    before = model.state_dict()
    ckpt = pnn.callbacks.ModelCheckpoint(tmp_path / "m-{epch:02d}.npz")
    with pytest.raises(ValueError, match=r"ModelCheckpoint path .*epch.*'loss'"):
        model.fit(X, y, loss="cross_entropy", optimizer="sgd", epochs=2, verbose=0,
                  callbacks=[ckpt])
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert list(tmp_path.iterdir()) == []
    # the keys fit does log are accepted, validation ones with validation data
    ok = pnn.callbacks.ModelCheckpoint(tmp_path / "m-{epoch:02d}-{val_accuracy:.2f}.npz")
    model.fit(X, y, loss="cross_entropy", optimizer="sgd", epochs=2, verbose=0, seed=0,
              validation_split=0.25, metrics=["accuracy"], callbacks=[ok])
    assert [p.split("/")[-1][:5] for p in ok.saved] == ["m-01-", "m-02-"]
