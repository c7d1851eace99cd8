"""Conv1D / Conv2D: gradient checks, agreement with PyTorch, initialisation, errors, a small CNN."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.layers import Conv1D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
from tests.conftest import to_np

I = pnn.initializers

# (layer arguments, input shape): stride, "same" (odd and even kernels), dilation, groups,
# depthwise, odd sizes, kernels overhanging the border, no bias
CONV2D = [
    ({"in_channels": 2, "out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1},
     (2, 2, 5, 6)),
    ({"in_channels": 2, "out_channels": 2, "kernel_size": (2, 3), "padding": "same",
      "dilation": (2, 1)}, (2, 2, 4, 5)),
    ({"in_channels": 4, "out_channels": 2, "kernel_size": 3, "groups": 2, "dilation": 2,
      "padding": 2}, (1, 4, 5, 5)),
    ({"in_channels": 3, "out_channels": 6, "kernel_size": 2, "groups": 3, "bias": False},
     (2, 3, 4, 3)),
    ({"in_channels": 1, "out_channels": 2, "kernel_size": (3, 1), "stride": (1, 2),
      "padding": (0, 1)}, (2, 1, 5, 4)),
    ({"in_channels": 2, "out_channels": 2, "kernel_size": 2, "padding": "valid"}, (1, 2, 3, 3)),
]
CONV1D = [
    ({"in_channels": 2, "out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1},
     (2, 2, 7)),
    ({"in_channels": 3, "out_channels": 3, "kernel_size": 4, "padding": "same", "groups": 3},
     (2, 3, 6)),
    ({"in_channels": 2, "out_channels": 4, "kernel_size": 2, "dilation": 3, "padding": 2,
      "groups": 2, "bias": False}, (2, 2, 5)),
]
CASES = [(Conv2D, kw, shape) for kw, shape in CONV2D] + [(Conv1D, kw, shape)
                                                          for kw, shape in CONV1D]


def _id(case):
    cls, kw, _ = case
    return cls.__name__ + "-" + "-".join(f"{k}={v}" for k, v in kw.items()
                                         if k not in ("in_channels", "out_channels"))


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_conv_gradcheck_float64(backend, rng, case):
    cls, kw, shape = case
    layer = cls(**kw).build(backend, "float64", seed=1)
    x = backend.asarray(rng.normal(size=shape), dtype="float64")
    result = pnn.gradcheck(layer, x)
    expected = {"input", "weight"} | ({"bias"} if kw.get("bias", True) else set())
    assert set(result.errors) == expected
    assert result.max_error < 1e-7, result


def _torch_conv(cls):
    torch = pytest.importorskip("torch")
    return torch, (torch.nn.functional.conv2d if cls is Conv2D else torch.nn.functional.conv1d)


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note on its own speed
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_conv_equals_torch_forward_and_gradients(backend, rng, case):
    cls, kw, shape = case
    torch, conv = _torch_conv(cls)
    layer = cls(**kw).build(backend, "float64", seed=2)
    xh = rng.normal(size=shape)
    y = layer.forward(backend.asarray(xh, dtype="float64"))
    gh = rng.normal(size=tuple(y.shape))
    dx = layer.backward(backend.asarray(gh, dtype="float64"))

    xt = torch.tensor(xh, requires_grad=True)
    wt = torch.tensor(to_np(layer.weight.value), requires_grad=True)
    bt = torch.tensor(to_np(layer.bias.value), requires_grad=True) if layer.bias else None
    yt = conv(xt, wt, bt, stride=kw.get("stride", 1), padding=kw.get("padding", 0),
              dilation=kw.get("dilation", 1), groups=kw.get("groups", 1))
    yt.backward(torch.tensor(gh))
    np.testing.assert_allclose(to_np(y), yt.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(to_np(dx), xt.grad.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(to_np(layer.weight.grad), wt.grad.numpy(), rtol=0, atol=1e-10)
    if bt is not None:
        np.testing.assert_allclose(to_np(layer.bias.grad), bt.grad.numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("kernel", [(3, 3), (2, 4), (4, 1)])
def test_same_padding_keeps_the_size_and_matches_torch(rng, kernel):
    """An even total padding puts the extra cell right/bottom, as torch does."""
    torch, conv = _torch_conv(Conv2D)
    layer = Conv2D(2, 3, kernel, padding="same", dilation=(1, 2)).build("cpu", "float64", seed=0)
    xh = rng.normal(size=(2, 2, 6, 7))
    y = to_np(layer.forward(layer.backend.asarray(xh, dtype="float64")))
    assert y.shape == (2, 3, 6, 7)
    yt = conv(torch.tensor(xh), torch.tensor(to_np(layer.weight.value)),
              torch.tensor(to_np(layer.bias.value)), padding="same", dilation=(1, 2))
    np.testing.assert_allclose(y, yt.numpy(), rtol=0, atol=1e-12)


def test_regularizer_gradient_is_added_to_the_weight(backend, rng):
    reg = pnn.regularizers.L2(0.3)
    layer = Conv2D(2, 2, 2, regularizer=reg).build(backend, "float64", seed=0)
    plain = Conv2D(2, 2, 2).build(backend, "float64", seed=0)
    x = backend.asarray(rng.normal(size=(2, 2, 3, 3)), dtype="float64")
    g = backend.asarray(rng.normal(size=(2, 2, 2, 2)), dtype="float64")
    for lay in (layer, plain):
        lay.forward(x)
        lay.backward(g)
    w = to_np(layer.weight.value)
    np.testing.assert_allclose(to_np(layer.weight.grad), to_np(plain.weight.grad) + 0.6 * w,
                               rtol=1e-12)
    np.testing.assert_allclose(to_np(layer.bias.grad), to_np(plain.bias.grad), rtol=1e-12)
    assert float(to_np(layer.penalty())) == pytest.approx(0.3 * float((w**2).sum()))


def test_frozen_parameters_get_no_gradient(backend, rng):
    layer = Conv1D(2, 3, 3).build(backend, "float64", seed=0)
    x = backend.asarray(rng.normal(size=(2, 2, 5)), dtype="float64")
    g = backend.asarray(rng.normal(size=(2, 3, 3)), dtype="float64")
    layer.forward(x)
    layer.backward(g)
    reference_dx = to_np(layer.backward(g))
    layer.weight.trainable = False
    layer.forward(x)
    dx = layer.backward(g)
    assert layer.weight.grad is None and layer.bias.grad is not None
    np.testing.assert_allclose(to_np(dx), reference_dx, rtol=1e-12)
    layer.bias.trainable = False
    layer.forward(x)
    assert layer.backward(g, need_input_grad=False) is None
    assert layer.weight.grad is None and layer.bias.grad is None


def test_backward_sets_gradients_and_does_not_accumulate(backend, rng):
    layer = Conv2D(1, 2, 2).build(backend, "float64", seed=0)
    x = backend.asarray(rng.normal(size=(2, 1, 3, 3)), dtype="float64")
    g = backend.asarray(rng.normal(size=(2, 2, 2, 2)), dtype="float64")
    layer.forward(x)
    layer.backward(g)
    first = to_np(layer.weight.grad).copy()
    layer.forward(x)
    assert layer.backward(g, need_input_grad=False) is None
    np.testing.assert_allclose(to_np(layer.weight.grad), first, rtol=1e-12)


def test_the_input_is_not_written(backend, rng):
    layer = Conv2D(2, 2, 3, padding=1).build(backend, "float64", seed=0)
    xh = rng.normal(size=(2, 2, 4, 4))
    x = backend.asarray(xh, dtype="float64")
    y = layer.forward(x)
    layer.backward(backend.asarray(np.ones(tuple(y.shape)), dtype="float64"))
    np.testing.assert_array_equal(to_np(x), xh)


def test_col2im_is_the_adjoint_of_im2col_on_both_paths(rng):
    """<im2col(x), c> = <x, col2im(c)> for strided, dilated windows on the batch-last layout;
    the functional col2im that immutable arrays (JAX) take equals the in-place one."""
    import array_api_compat.numpy as xp

    from portable_nn import functional as F

    for kernel, stride, dilation in [((3, 2), (2, 3), (1, 2)), ((2, 2), (1, 1), (2, 1))]:
        padded = (3, 9, 10, 2)  # (C, H, W, N)
        out = [F.window_output_size(n, k, s, d) for n, k, s, d in
               zip(padded[1:-1], kernel, stride, dilation)]
        slices = F.window_slices(kernel, stride, dilation, out)
        x = rng.normal(size=padded)
        cols = rng.normal(size=(3, len(slices), *out, 2))
        gathered = F.gather_windows(xp, x, slices)
        assert gathered.shape == cols.shape
        pieces = [cols[:, k] for k in range(len(slices))]
        scattered = F.scatter_windows(xp, pieces, padded, slices, like=x)
        assert (gathered * cols).sum() == pytest.approx((x * scattered).sum(), rel=1e-12)
        functional = sum(F._spread(xp, p, s, padded) for p, s in zip(pieces, slices))
        np.testing.assert_allclose(functional, scattered, rtol=1e-13, atol=1e-13)
    nchw = rng.normal(size=(2, 3, 4, 5))
    np.testing.assert_array_equal(F.to_batch_last(xp, nchw), nchw.transpose(1, 2, 3, 0))
    np.testing.assert_array_equal(F.from_batch_last(xp, F.to_batch_last(xp, nchw)), nchw)


# --- initialisation -----------------------------------------------------------------------------
def test_fans_of_a_conv_weight():
    assert I.fans((8, 3, 5, 5), layout="out_in") == (75, 200)
    assert I.fans((8, 3, 5), layout="out_in") == (15, 40)
    assert I.fans((6, 4), layout="out_in") == (4, 6)  # torch's Linear (out, in)
    assert I.fans((4, 6)) == (4, 6) == I.fans((4, 6), layout="in_out")  # Dense's (in, out)
    with pytest.raises(ValueError, match="layout must be one of"):
        I.fans((2, 3), layout="nchw")
    with pytest.raises(ValueError, match=r"fans must be a pair \(fan_in, fan_out\)"):
        I.get("he_normal")((2, 3), np.random.default_rng(0), fans=(0, 3))


def test_default_init_is_torchs_uniform_from_the_receptive_field():
    layer = Conv2D(16, 64, 3, groups=2).build("cpu", "float64", seed=0)
    bound = 1.0 / math.sqrt(16 // 2 * 3 * 3)  # fan_in = in_channels/groups · kh · kw = 72
    for p in (layer.weight, layer.bias):
        v = np.abs(to_np(p.value))
        assert v.max() <= bound
    w = np.abs(to_np(layer.weight.value))
    assert w.max() > 0.99 * bound  # 36 864 draws fill the interval
    # variance 1 / (3 fan_in), within 5 standard errors
    assert abs(w.var() + w.mean() ** 2 - bound**2 / 3) < 5 * bound**2 * math.sqrt(0.2 / w.size)


@pytest.mark.parametrize("name, var", [("he_normal", 2.0), ("lecun_normal", 1.0),
                                        ("glorot_uniform", None), ("lecun_uniform", 1.0)])
def test_fan_based_initializers_use_the_receptive_field(name, var):
    layer = Conv2D(8, 32, (3, 5), init=name).build("cpu", "float64", seed=0)
    w = to_np(layer.weight.value)
    fan_in, fan_out = 8 * 15, 32 * 15
    expected = var / fan_in if var is not None else 2.0 / (fan_in + fan_out)
    assert abs(w.var() - expected) < 5 * expected * math.sqrt(2.0 / w.size)


def test_one_seed_gives_the_same_conv_weights_on_every_backend(backend):
    def make(device):
        return Sequential(Conv2D(2, 4, 3, init="he_uniform"), ReLU(), Conv2D(4, 2, 2, groups=2),
                          device=device, dtype="float32", seed=5)

    ref, model = make("cpu"), make(backend)
    for name, p in model.named_parameters().items():
        assert backend.owns(p.value)
        np.testing.assert_array_equal(to_np(p.value), to_np(ref.named_parameters()[name].value))


# --- configuration --------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_config_round_trip_and_declared_shapes(case):
    cls, kw, shape = case
    layer = cls(**kw, regularizer=pnn.regularizers.L1(0.1))
    cfg = json.loads(json.dumps(layer.get_config()))  # JSON-able: tuples became lists
    rebuilt = pnn.layers.layer_from_config({"class": cls.__name__, "config": cfg})
    assert rebuilt.get_config() == cfg
    rebuilt.build("cpu", "float64", seed=0)
    assert {k: p.shape for k, p in rebuilt.named_parameters().items()} == layer.state_shapes()
    x = rebuilt.backend.asarray(np.zeros(shape), dtype="float64")
    expected = rebuilt.output_shape((None, *shape[1:]))
    assert (None, *rebuilt.forward(x).shape[1:]) == expected


def test_output_shape():
    assert Conv2D(3, 8, 3, stride=2, padding=1).output_shape((None, 3, 28, 27)) == \
        (None, 8, 14, 14)
    assert Conv2D(3, 8, 5, padding="same").output_shape((None, 3, None, 9)) == (None, 8, None, 9)
    assert Conv1D(3, 8, 3, dilation=2).output_shape((4, 3, 10)) == (4, 8, 6)
    with pytest.raises(ValueError, match="expects 3 input channels"):
        Conv2D(3, 8, 3).output_shape((None, 4, 8, 8))
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, in_channels, length"):
        Conv1D(3, 8, 3).output_shape((None, 24))


# --- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, message", [
    ({"kernel_size": 0}, ValueError, "kernel_size must be >= 1"),
    ({"kernel_size": (3, 3, 3)}, ValueError, "kernel_size must be an int or a sequence of 2"),
    ({"kernel_size": 2.5}, TypeError, "kernel_size must be an int"),
    ({"kernel_size": "3"}, TypeError, "kernel_size must be an int"),
    ({"stride": 0}, ValueError, "stride must be >= 1"),
    ({"stride": True}, TypeError, "stride must be an int"),
    ({"dilation": (1, 0)}, ValueError, "dilation must be >= 1"),
    ({"padding": -1}, ValueError, "padding must be >= 0"),
    ({"padding": "full"}, ValueError, "padding must be an int, a sequence of 2 ints, 'valid'"),
    ({"padding": "same", "stride": 2}, ValueError, "padding='same' needs stride 1"),
    ({"groups": 4}, ValueError, (r"in_channels \(6\) and out_channels \(4\) must both be "
                                r"divisible by groups \(4\)")),
    ({"groups": 0}, ValueError, "groups must be >= 1"),
    ({"bias": 1}, TypeError, "bias must be True or False"),
    ({"init": "gaussian"}, ValueError, "unknown init 'gaussian'"),
    ({"regularizer": 0.1}, TypeError, "regularizer must be"),
])
def test_bad_constructor_arguments(kwargs, error, message):
    args = {"in_channels": 6, "out_channels": 4, "kernel_size": 3, **kwargs}
    with pytest.raises(error, match=message):
        Conv2D(**args)


def test_bad_channel_counts():
    with pytest.raises(ValueError, match="in_channels must be >= 1"):
        Conv1D(0, 3, 2)
    with pytest.raises(TypeError, match="out_channels must be an int"):
        Conv1D(2, 3.0, 2)


def test_bad_input_at_forward_leaves_the_layer_as_it_was(backend, rng):
    layer = Conv2D(2, 3, 3, padding=(0, 1)).build(backend, "float64", seed=0)
    x = backend.asarray(rng.normal(size=(2, 2, 4, 4)), dtype="float64")
    layer.forward(x)
    cached = layer._cache_x
    bad = [
        (rng.normal(size=(2, 2, 4)), (r"expects input of shape \(batch, in_channels, height, width\)"
                                     r" with in_channels = 2, got \(2, 2, 4\)")),
        (rng.normal(size=(2, 3, 4, 4)), r"in_channels = 2, got \(2, 3, 4, 4\)"),
        (rng.normal(size=(2, 2, 2, 4)), (r"the kernel spans 3 cells along spatial axis 0 .*"
                                        r"more than the padded input's 2")),
    ]
    for xh, message in bad:
        with pytest.raises(ValueError, match=message):
            layer.forward(backend.asarray(xh, dtype="float64"))
        assert layer._cache_x is cached
    with pytest.raises(TypeError, match="expects an array of the layer's backend, got list"):
        layer.forward([[1.0]])
    dilated = Conv1D(1, 1, 3, dilation=3, padding=1).build(backend, "float64")
    with pytest.raises(ValueError, match="the kernel spans 7 cells .* padded input's 6"):
        dilated.forward(backend.asarray(np.ones((1, 1, 4)), dtype="float64"))
    with pytest.raises(ValueError, match=r"Conv2D.backward expects grad_out of shape \(2, 3, 2, 4\)"):
        layer.backward(backend.asarray(np.ones((2, 3, 4, 4)), dtype="float64"))


def test_unbuilt_and_uncached():
    with pytest.raises(RuntimeError, match="Conv2D is not built"):
        Conv2D(1, 1, 1).forward(np.ones((1, 1, 2, 2)))
    layer = Conv2D(1, 1, 1).build("cpu", "float64")
    with pytest.raises(RuntimeError, match="Conv2D.backward called before forward"):
        layer.backward(np.ones((1, 1, 2, 2)))


# --- in a model -----------------------------------------------------------------------------------
def _small_cnn(device, dtype="float64", seed=3):
    return Sequential(Conv2D(1, 2, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(),
                      Dense(2 * 2 * 2, 3), device=device, dtype=dtype, seed=seed)


def test_small_cnn_gradcheck_with_a_loss(backend, rng):
    model = _small_cnn(backend)
    x = rng.normal(size=(2, 1, 4, 5))
    t = backend.asarray(np.array([2, 0]))
    result = pnn.gradcheck(model, backend.asarray(x, dtype="float64"), target=t,
                           loss=pnn.losses.CrossEntropy())
    assert set(result.errors) == {"input", "0.weight", "0.bias", "4.weight", "4.bias"}
    assert result.max_error < 1e-6, result


def test_small_cnn_is_the_same_on_every_backend(backend, rng):
    """The same seed gives the same weights, and a few SGD steps the same weights after."""
    x = rng.normal(size=(2, 1, 4, 5))  # the gradient check's shapes: JAX compiles them once
    y = np.array([0, 2])
    models = {}
    for device in ("cpu", backend):
        model = models[device] = _small_cnn(device)
        b = model.backend
        loss, opt = pnn.losses.CrossEntropy(), pnn.optimizers.SGD(0.1)
        for _ in range(3):
            loss.forward(model.forward(b.asarray(x, dtype="float64"), training=True),
                         b.asarray(y))
            model.backward(loss.backward(), need_input_grad=False)
            opt.step(model.parameters())
    ref = models["cpu"].state_dict()
    for name, value in models[backend].state_dict().items():
        np.testing.assert_allclose(value, ref[name], rtol=1e-10, atol=1e-12)


def test_the_feature_check_of_sequential_does_not_see_through_conv_and_flatten():
    """Flatten's output width is unknown to Sequential's chain check: any Dense may follow it,
    and a wrong width is reported at the first forward pass with both shapes."""
    model = Sequential(Conv2D(1, 2, 3), Flatten(), Dense(7, 2), device="cpu", seed=0)
    with pytest.raises(ValueError, match=r"Dense\(7, 2\) expects input of shape \(batch, 7\), "
                                         r"got \(1, 8\)"):
        model.forward(np.ones((1, 1, 4, 4), dtype=np.float32))


def test_checkpoint_round_trip(tmp_path, rng):
    model = _small_cnn("cpu", "float32")
    x = rng.normal(size=(2, 1, 4, 5)).astype(np.float32)
    path = tmp_path / "cnn.npz"
    pnn.save(model, path)
    loaded = pnn.load(path, device="cpu")
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
