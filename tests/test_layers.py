"""Layers and Sequential: gradient checks, the course's worked examples, stability, dtypes, errors."""

from __future__ import annotations

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.layers import (
    Dense,
    Dropout,
    Identity,
    LeakyReLU,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Softplus,
    Step,
    Tanh,
)
from tests.conftest import to_np

L = pnn.layers


def _away_from_kinks(rng, shape):
    """Inputs with |x| >= 0.1 so that ReLU-like kinks are never within eps of a sample."""
    x = rng.uniform(0.1, 2.0, size=shape)
    return x * rng.choice([-1.0, 1.0], size=shape)


ELEMENTWISE = [Identity, Sigmoid, Tanh, ReLU, lambda: LeakyReLU(0.1), Softplus, Softmax]


@pytest.mark.parametrize("make", ELEMENTWISE, ids=lambda m: getattr(m, "__name__", "LeakyReLU"))
def test_activation_gradcheck_float64(backend, rng, make):
    layer = make().build(backend, "float64")
    x = backend.asarray(_away_from_kinks(rng, (5, 4)), dtype="float64")
    result = pnn.gradcheck(layer, x)
    assert result.max_error < 1e-6, result


def test_dense_gradcheck_float64(backend, rng):
    layer = Dense(4, 3).build(backend, "float64", seed=1)
    x = backend.asarray(rng.normal(size=(6, 4)), dtype="float64")
    result = pnn.gradcheck(layer, x)
    assert set(result.errors) == {"input", "weight", "bias"}
    assert result.max_error < 1e-6, result


def test_dense_without_bias_gradcheck(backend, rng):
    layer = Dense(3, 2, bias=False).build(backend, "float64", seed=1)
    assert layer.parameters() == [layer.weight]
    x = backend.asarray(rng.normal(size=(4, 3)), dtype="float64")
    assert pnn.gradcheck(layer, x).max_error < 1e-6


def test_deep_model_gradcheck_with_every_activation(backend, rng):
    model = Sequential(
        Dense(3, 5), Tanh(), Dense(5, 5), Sigmoid(), Dense(5, 4), Softplus(), Dense(4, 4),
        LeakyReLU(0.2), Dense(4, 3), device=backend, dtype="float64", seed=3,
    )
    x = backend.asarray(rng.normal(size=(6, 3)), dtype="float64")
    t = backend.asarray(np.array([0, 2, 1, 1, 0, 2]))
    result = pnn.gradcheck(model, x, target=t, loss=pnn.losses.CrossEntropy())
    assert result.max_error < 1e-6, result


def test_dense_is_x_at_w_plus_b(backend, rng):
    layer = Dense(3, 2).build(backend, "float64", seed=0)
    xh = rng.normal(size=(4, 3))
    y = to_np(layer.forward(backend.asarray(xh, dtype="float64")))
    w, b = to_np(layer.weight.value), to_np(layer.bias.value)
    assert w.shape == (3, 2) and b.shape == (2,)
    np.testing.assert_allclose(y, xh @ w + b, rtol=1e-12)


def test_backward_sets_gradients_and_does_not_accumulate(backend, rng):
    layer = Dense(3, 2).build(backend, "float64", seed=0)
    x = backend.asarray(rng.normal(size=(4, 3)), dtype="float64")
    g = backend.asarray(np.ones((4, 2)), dtype="float64")
    layer.forward(x)
    layer.backward(g)
    first = to_np(layer.weight.grad).copy()
    layer.forward(x)
    layer.backward(g)
    np.testing.assert_array_equal(to_np(layer.weight.grad), first)
    np.testing.assert_allclose(first, to_np(x).T @ np.ones((4, 2)))


def test_sequential_in_place_chain_equals_the_layers_called_one_by_one(backend, rng):
    """Sequential lets ReLU write over the Dense output it is given (and over the gradient coming
    back): the results must be exactly those of the plain passes, and the caller's x and g, and
    the arrays a layer cached for backward, must be left alone."""
    def make():
        # a ReLU first and last: it is given the caller's x and g, which it must not write over
        return Sequential(ReLU(), Dense(3, 5), ReLU(), Dense(5, 4), ReLU(), ReLU(), Dense(4, 2),
                          ReLU(), device=backend, dtype="float64", seed=3)

    chained, plain = make(), make()
    x = backend.asarray(rng.normal(size=(6, 3)), dtype="float64")
    g = backend.asarray(rng.normal(size=(6, 2)), dtype="float64")
    x0, g0 = to_np(x).copy(), to_np(g).copy()
    for _ in range(2):  # the second round runs over the gradient buffers of the first
        y = chained.forward(x, training=True)
        h = x
        for layer in plain.layers:
            h = layer.forward(h, training=True)
        np.testing.assert_array_equal(to_np(y), to_np(h))
        # what backward will use is still what forward produced: the first ReLU's output
        # (written over the first Dense's) is the second Dense's cached input, as in the plain
        # chain
        h1 = to_np(plain.layers[2]._cache)
        np.testing.assert_array_equal(to_np(chained.layers[3]._cache_x), h1)
        np.testing.assert_array_equal(to_np(chained.layers[2]._cache), h1)
        s = chained.state_dict()
        np.testing.assert_allclose(h1, np.maximum(np.maximum(x0, 0) @ s["1.weight"] + s["1.bias"],
                                                  0.0),
                                   rtol=1e-12, atol=1e-15)
        gx = chained.backward(g)
        gh = g
        for layer in reversed(plain.layers):
            gh = layer.backward(gh)
        np.testing.assert_array_equal(to_np(gx), to_np(gh))
        for p, q in zip(chained.parameters(), plain.parameters()):
            np.testing.assert_array_equal(to_np(p.grad), to_np(q.grad))
        np.testing.assert_array_equal(to_np(x), x0)
        np.testing.assert_array_equal(to_np(g), g0)


def test_sequential_backward_frees_the_activations_and_retain_cache_keeps_them(backend, rng):
    """Like torch's graph, the activations forward cached are freed by backward (one forward,
    one backward); retain_cache=True keeps them, and a second backward then gives the same
    gradients. Without a forward, backward says what is missing, before any gradient is set."""
    model = Sequential(Dense(3, 5), ReLU(), Dropout(0.0), Dense(5, 2), device=backend,
                       dtype="float64", seed=1)
    x = backend.asarray(rng.normal(size=(4, 3)), dtype="float64")
    g = backend.asarray(rng.normal(size=(4, 2)), dtype="float64")
    with pytest.raises(RuntimeError, match="called before forward"):
        model.backward(g)
    assert all(p.grad is None for p in model.parameters())
    model.forward(x, training=True)
    first = to_np(model.backward(g, retain_cache=True))
    grads = [to_np(p.grad).copy() for p in model.parameters()]
    assert model.layers[3]._cache_x is not None
    second = to_np(model.backward(g))
    np.testing.assert_array_equal(second, first)
    for p, before in zip(model.parameters(), grads):
        np.testing.assert_array_equal(to_np(p.grad), before)
    for layer in model.layers:
        assert all(v is None for k, v in vars(layer).items() if k.startswith("_cache")), layer
    with pytest.raises(RuntimeError, match="retain_cache=True"):
        model.backward(g)
    with pytest.raises(TypeError, match="retain_cache"):
        model.backward(g, retain_cache=1)
    model.forward(x, training=True)  # a new forward allows a new backward
    np.testing.assert_array_equal(to_np(model.backward(g)), first)


def test_a_second_forward_frees_the_first_ones_activations_before_making_new_ones(rng):
    """Without a backward in between (evaluation, predict), Sequential.forward must let go of the
    last pass's activations before the first layer runs: otherwise the peak holds both."""
    import weakref

    seen = []

    class Probe(Identity):
        def forward(self, x, training=False):
            seen.append(old() if old is not None else "first pass")
            return super().forward(x, training)

    model = Sequential(Probe(), Dense(3, 8), ReLU(), Dense(8, 2), seed=0)
    x = np.asarray(rng.normal(size=(5, 3)), dtype="float32")
    old = None
    model.forward(x)
    old = weakref.ref(model.layers[3]._cache_x)  # the ReLU's output, held only by caches
    model.forward(x)
    assert seen == ["first pass", None]
    old = weakref.ref(model.layers[3]._cache_x)
    model.backward(np.ones((5, 2), dtype="float32"))
    assert old() is None  # backward freed it too


def test_clear_cache_finds_a_cache_attribute_a_layer_adds_late(backend):
    layer = Dense(2, 2).build(backend, "float64", seed=0)
    layer.clear_cache()  # the names are remembered here ...
    layer._cache_extra = backend.asarray(np.ones(2))  # ... and a new one appears afterwards
    layer.clear_cache()
    assert layer._cache_extra is None


def test_gradient_arrays_may_be_reused_but_always_hold_the_last_backward(backend, rng):
    layer = Dense(3, 2).build(backend, "float64", seed=0)
    x1 = backend.asarray(rng.normal(size=(4, 3)), dtype="float64")
    x2 = backend.asarray(rng.normal(size=(5, 3)), dtype="float64")
    for x, n in ((x1, 4), (x2, 5), (x1, 4)):
        g = backend.asarray(np.full((n, 2), 0.5), dtype="float64")
        layer.forward(x)
        layer.backward(g)
        np.testing.assert_allclose(to_np(layer.weight.grad), to_np(x).T @ np.full((n, 2), 0.5),
                                   rtol=1e-12)
        np.testing.assert_allclose(to_np(layer.bias.grad), np.full(2, 0.5 * n), rtol=1e-12)
    if backend.name == "numpy":  # NumPy writes the gradient into the previous step's array
        before = layer.weight.grad
        layer.forward(x1)
        layer.backward(backend.asarray(np.ones((4, 2)), dtype="float64"))
        assert layer.weight.grad is before


def test_sequential_backward_can_skip_the_input_gradient(backend, rng):
    model = Sequential(Dense(3, 4), ReLU(), Dense(4, 2), device=backend, dtype="float64", seed=0)
    x = backend.asarray(rng.normal(size=(5, 3)), dtype="float64")
    g = backend.asarray(rng.normal(size=(5, 2)), dtype="float64")
    model.forward(x, training=True)
    full = model.backward(g)
    grads = [to_np(p.grad).copy() for p in model.parameters()]
    model.forward(x, training=True)
    assert model.backward(g, need_input_grad=False) is None
    for p, before in zip(model.parameters(), grads):
        np.testing.assert_array_equal(to_np(p.grad), before)
    assert tuple(full.shape) == (5, 3)


def test_softmax_worked_example_from_the_course(backend):
    layer = Softmax().build(backend, "float64")
    y = to_np(layer.forward(backend.asarray([[-0.21, 0.47, 1.72]], dtype="float64")))
    np.testing.assert_allclose(y, [[0.1, 0.2, 0.7]], atol=0.006)
    assert abs(y.sum() - 1.0) < 1e-12


def test_backprop_derivation_of_the_2_3_2_sigmoid_network(backend):
    """The lecture's deltas: output δ_k = (y_k − t_k) y_k (1 − y_k); hidden
    δ_j = Σ_k δ_k u_jk h_j (1 − h_j); dL/du_jk = δ_k h_j; dL/dw_ij = δ_j x_i."""
    model = Sequential(Dense(2, 3), Sigmoid(), Dense(3, 2), Sigmoid(),
                       device=backend, dtype="float64", seed=7)
    xh, th = np.array([[0.5, -1.2]]), np.array([[1.0, 0.0]])
    loss = pnn.losses.L2(reduction="sum")
    y = model.forward(backend.asarray(xh, dtype="float64"), training=True)
    loss.forward(y, backend.asarray(th, dtype="float64"))
    model.backward(loss.backward())

    w, b = to_np(model[0].weight.value), to_np(model[0].bias.value)
    u, c = to_np(model[2].weight.value), to_np(model[2].bias.value)
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))
    h = sig(xh @ w + b)
    yh = sig(h @ u + c)
    np.testing.assert_allclose(to_np(y), yh, rtol=1e-12)
    delta_out = (yh - th) * yh * (1 - yh)
    delta_hidden = np.array([[sum(delta_out[0, k] * u[j, k] for k in range(2)) * h[0, j] * (1 - h[0, j])
                              for j in range(3)]])
    np.testing.assert_allclose(to_np(model[2].weight.grad), h.T @ delta_out, rtol=1e-10)
    np.testing.assert_allclose(to_np(model[2].bias.grad), delta_out[0], rtol=1e-10)
    np.testing.assert_allclose(to_np(model[0].weight.grad), xh.T @ delta_hidden, rtol=1e-10)
    np.testing.assert_allclose(to_np(model[0].bias.grad), delta_hidden[0], rtol=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("make", [Sigmoid, Softplus, Tanh, Softmax])
def test_activations_are_stable_at_extreme_inputs(backend, make, dtype):
    import warnings

    layer = make().build(backend, dtype)
    x = backend.asarray([[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings on the way either
        y = to_np(layer.forward(x))
        g = to_np(layer.backward(backend.asarray(np.ones((1, 5)), dtype=dtype)))
    assert y.dtype == g.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(g))
    if make is Sigmoid:
        np.testing.assert_allclose(y[0, [0, 2, 4]], [0.0, 0.5, 1.0])
    if make is Softplus:
        np.testing.assert_allclose(y[0, [0, 4]], [0.0, 1e4])
        np.testing.assert_allclose(g[0, [0, 2, 4]], [0.0, 0.5, 1.0])


def test_relu_leaky_step_values(backend):
    x = backend.asarray([[-2.0, -0.5, 0.0, 0.5, 2.0]], dtype="float32")
    np.testing.assert_array_equal(to_np(ReLU().build(backend).forward(x)), [[0, 0, 0, 0.5, 2]])
    np.testing.assert_allclose(to_np(LeakyReLU(0.1).build(backend).forward(x)),
                               [[-0.2, -0.05, 0, 0.5, 2]], rtol=1e-6)
    step = Step().build(backend)
    np.testing.assert_array_equal(to_np(step.forward(x)), [[0, 0, 1, 1, 1]])
    # the step's derivative is zero everywhere: it cannot be trained by backprop
    g = step.backward(backend.asarray(np.ones((1, 5)), dtype="float32"))
    np.testing.assert_array_equal(to_np(g), np.zeros((1, 5)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_preserved_end_to_end(backend, rng, dtype):
    model = Sequential(Dense(4, 8), Sigmoid(), Dense(8, 8), Softplus(), Dense(8, 8), Tanh(),
                       Dense(8, 8), LeakyReLU(), Dense(8, 3), Softmax(),
                       device=backend, dtype=dtype, seed=0)
    x = backend.asarray(rng.normal(size=(5, 4)), dtype=dtype)
    y = model.forward(x, training=True)
    assert y.dtype == backend.dtype(dtype)
    loss = pnn.losses.CrossEntropy(from_logits=False)
    value = loss.forward(y, backend.asarray(np.array([0, 1, 2, 0, 1])))
    assert value.dtype == backend.dtype(dtype)
    gx = model.backward(loss.backward())
    assert gx.dtype == backend.dtype(dtype)
    assert all(p.grad.dtype == backend.dtype(dtype) and p.value.dtype == backend.dtype(dtype)
               for p in model.parameters())


def test_same_seed_same_initial_parameters_on_every_backend(backend):
    def build(device):
        return Sequential(Dense(5, 7, init="he"), ReLU(), Dense(7, 3), device=device,
                          dtype="float32", seed=42)

    ref = build("cpu").state_dict()
    other = build(backend).state_dict()
    assert ref.keys() == other.keys()
    for k in ref:
        np.testing.assert_array_equal(ref[k], other[k])
    different = Sequential(Dense(5, 7, init="he"), ReLU(), Dense(7, 3), seed=43).state_dict()
    assert not np.array_equal(ref["0.weight"], different["0.weight"])


def test_dense_rejects_wrong_feature_count(backend):
    layer = Dense(3, 2).build(backend)
    with pytest.raises(ValueError, match=r"Dense\(3, 2\) expects input of shape \(batch, 3\), got \(4, 5\)"):
        layer.forward(backend.asarray(np.ones((4, 5)), dtype="float32"))
    with pytest.raises(ValueError, match="expects input"):
        layer.forward(backend.asarray(np.ones(3), dtype="float32"))


def test_forward_and_backward_refuse_another_dtype(backend, rng):
    model = Sequential(Dense(3, 2), device=backend, dtype="float32", seed=0)
    before = model.state_dict()
    with pytest.raises(TypeError, match=r"x has dtype .*float64.*model computes in float32"):
        model.forward(backend.asarray(rng.normal(size=(4, 3)), dtype="float64"))
    with pytest.raises(TypeError, match="x has dtype"):
        model.forward(backend.asarray(np.zeros((4, 3), dtype=np.int64)))
    model.forward(backend.asarray(rng.normal(size=(4, 3)), dtype="float32"))
    with pytest.raises(TypeError, match="grad has dtype"):
        model.backward(backend.asarray(np.ones((4, 2)), dtype="float64"))
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert all(p.grad is None for p in model.parameters())


def test_a_lone_dense_refuses_a_list(backend):
    layer = Dense(2, 3).build(backend, "float32", seed=0)
    with pytest.raises(TypeError, match="Dense.forward expects an array.*got list"):
        layer.forward([[1.0, 2.0]])


def test_softmax_requires_2d(backend):
    with pytest.raises(ValueError, match="2-D input"):
        Softmax().build(backend).forward(backend.asarray([0.1, 0.2], dtype="float32"))


def test_backward_before_forward_and_bad_grad_shape(backend):
    layer = Sigmoid().build(backend)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(backend.asarray(np.ones((2, 2)), dtype="float32"))
    layer.forward(backend.asarray(np.ones((2, 2)), dtype="float32"))
    with pytest.raises(ValueError, match="grad_out of shape"):
        layer.backward(backend.asarray(np.ones((2, 3)), dtype="float32"))


@pytest.mark.parametrize("args, exc, match", [
    ((0, 3), ValueError, "in_features must be >= 1"),
    ((2.5, 3), TypeError, "in_features must be an int"),
    ((2, -1), ValueError, "out_features must be >= 1"),
])
def test_dense_constructor_validation(args, exc, match):
    with pytest.raises(exc, match=match):
        Dense(*args)


def test_constructor_errors():
    with pytest.raises(ValueError, match="unknown init 'bogus'"):
        Dense(2, 2, init="bogus")
    with pytest.raises(ValueError, match="alpha must be"):
        LeakyReLU(alpha=-1)
    with pytest.raises(TypeError, match="layer 1 must be a portable_nn Layer"):
        Sequential(Dense(2, 2), "relu")
    with pytest.raises(ValueError, match="dtype must be one of"):
        Sequential(Dense(2, 2), dtype="int8")
    with pytest.raises(RuntimeError, match="not built"):
        Dense(2, 2).forward(np.ones((1, 2)))


def test_summary_and_config_round_trip(backend):
    model = Sequential(Dense(4, 8, init="he", regularizer=pnn.regularizers.L2(0.01)), ReLU(),
                       Dense(8, 3, bias=False), Softmax(), LeakyReLU(0.3),
                       device=backend, seed=5)
    text = model.summary()
    assert "(None, 8)" in text and "(None, 3)" in text
    assert "40" in text and "24" in text and "total parameters: 64" in text
    clone = Sequential.from_config(model.get_config(), device="cpu")
    assert [type(layer) for layer in clone.layers] == [type(layer) for layer in model.layers]
    assert clone[4].alpha == 0.3 and clone[0].weight.regularizer.rate == 0.01
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, clone.state_dict()[k])  # same seed, same weights


def test_to_moves_parameters_between_backends(backend, rng):
    model = Sequential(Dense(3, 4), Tanh(), Dense(4, 2), device="cpu", dtype="float64", seed=0)
    xh = rng.normal(size=(5, 3))
    before = to_np(model.forward(model.backend.asarray(xh, dtype="float64")))
    model.to(backend)
    assert model.backend == backend
    assert all(backend.owns(p.value) for p in model.parameters())
    after = to_np(model.forward(backend.asarray(xh, dtype="float64")))
    np.testing.assert_allclose(after, before, rtol=1e-12)


def test_load_state_dict_is_all_or_nothing():
    model = Sequential(Dense(2, 3), ReLU(), Dense(3, 1), seed=0)
    before = model.state_dict()
    bad = dict(before)
    bad["2.weight"] = np.zeros((4, 1), dtype=np.float32)
    with pytest.raises(ValueError, match=r"state\['2.weight'\] has shape \(4, 1\), expected \(3, 1\)"):
        model.load_state_dict(bad)
    with pytest.raises(ValueError, match="missing"):
        model.load_state_dict({"0.weight": before["0.weight"]})
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_weight_snapshots_are_independent(backend):
    model = Sequential(Dense(2, 2), device=backend, seed=0)
    snap = model.get_weights()
    saved = to_np(snap["0.weight"]).copy()
    model.set_weights(snap)
    model[0].weight.value += 1.0  # in place where the backend allows: must not reach the snapshot
    np.testing.assert_array_equal(to_np(snap["0.weight"]), saved)


def test_load_state_dict_never_shares_memory_with_the_callers_arrays(backend):
    model = Sequential(Dense(2, 2), device=backend, dtype="float64", seed=0)
    state = model.state_dict()
    saved = state["0.weight"].copy()
    model.load_state_dict(state)
    model[0].weight.value += 1.0  # in place where the backend allows
    np.testing.assert_array_equal(state["0.weight"], saved)


def test_declared_state_shapes_are_what_building_creates(backend):
    layers = [Dense(3, 4), L.BatchNorm(4), ReLU(), L.Dropout(0.3), Dense(4, 2, bias=False),
              Sigmoid(), Softmax()]
    model = Sequential(*layers, device=backend, dtype="float64", seed=0)
    for layer in model.layers:
        built = {k: tuple(p.value.shape) for k, p in layer.named_parameters().items()}
        built.update({k: tuple(b.shape) for k, b in layer.buffers().items()})
        assert layer.state_shapes() == built

    class Custom(L.Layer):
        def _build(self, rng):
            self.add_parameter("w", np.zeros(2))

    assert Custom().state_shapes() is None  # cannot know without building: not checked
