"""GELU, ELU, SiLU and the erf behind exact GELU; unbuilt activations and non-array input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.functional import erf, erfc
from portable_nn.layers import (
    ELU,
    GELU,
    Identity,
    LeakyReLU,
    ReLU,
    Sequential,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Step,
    Tanh,
)
from tests.conftest import to_np

NEW = {"gelu": GELU, "gelu_tanh": lambda: GELU("tanh"), "elu": ELU,
       "elu_0.5": lambda: ELU(0.5), "silu": SiLU}
ALL_ACTIVATIONS = [Identity, Step, Sigmoid, Tanh, ReLU, LeakyReLU, Softplus, Softmax, GELU, ELU,
                   SiLU]


def _ulps(got, ref, dtype):
    """|got − ref| in units of the last place of ``ref`` in ``dtype``."""
    spacing = np.spacing(np.abs(ref.astype(dtype))).astype(np.float64)
    return np.abs(got.astype(np.float64) - ref.astype(np.float64)) / spacing


def _erf_grid():
    """A dense grid through every branch, the tails past 6 and tiny (normal) magnitudes."""
    return np.concatenate([
        np.linspace(-7.0, 7.0, 28_001),
        np.geomspace(1e-300, 1.0, 400), -np.geomspace(3e-308, 1.0, 400),
        [0.46875, np.nextafter(0.46875, 1.0), 4.0, np.nextafter(4.0, 5.0), 6.0, 9.0, 26.0, 27.0,
         -27.0, 1e10, -1e300],
    ])


# --- erf ----------------------------------------------------------------------------------------
def test_erf_and_erfc_are_within_a_few_ulp_of_math_erf_in_float64(backend):
    x = _erf_grid()
    xp = backend.xp
    got = to_np(erf(xp, backend.asarray(x, dtype="float64")))
    ref = np.array([math.erf(v) for v in x])
    assert _ulps(got, ref, np.float64).max() <= 4
    got_c = to_np(erfc(xp, backend.asarray(x, dtype="float64")))
    ref_c = np.array([math.erfc(v) for v in x])
    normal = ref_c > 1e-300  # below, erfc is subnormal: fewer digits to compare
    assert _ulps(got_c[normal], ref_c[normal], np.float64).max() <= 8
    # erfc keeps its relative accuracy far out where 1 − erf(x) has no digit left
    assert got_c[np.argmin(np.abs(x - 26.0))] == pytest.approx(math.erfc(26.0), rel=1e-14)


def test_erf_in_float32(backend):
    x = _erf_grid()
    x = x[np.abs(x) < 1e30].astype(np.float32)
    x = x[(np.abs(x) >= np.finfo(np.float32).tiny) | (x == 0)]  # JAX flushes subnormals to 0
    got = to_np(erf(backend.xp, backend.asarray(x, dtype="float32")))
    assert got.dtype == np.float32
    ref = np.array([math.erf(float(v)) for v in x]).astype(np.float32)
    assert _ulps(got, ref, np.float32).max() <= 4


def test_erf_special_values_and_symmetry(backend):
    half = np.concatenate([[0.0, np.inf, np.nan, 1e300], np.linspace(0.01, 8.0, 60)])
    x = backend.asarray(np.concatenate([half, -half]), dtype="float64")  # one shape: one compile
    y, yc = to_np(erf(backend.xp, x)), to_np(erfc(backend.xp, x))
    pos, neg = y[:64], y[64:]
    np.testing.assert_array_equal(pos[[0, 1, 3]], [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(neg[[1, 3]], [-1.0, -1.0])
    assert math.copysign(1.0, neg[0]) == -1.0  # erf(-0) = -0
    np.testing.assert_array_equal(yc[[0, 1, 3, 65, 67]], [1.0, 0.0, 0.0, 2.0, 2.0])
    assert np.isnan(pos[2]) and np.isnan(neg[2]) and np.isnan(yc[2])
    np.testing.assert_array_equal(neg[4:], -pos[4:])  # odd, exactly
    np.testing.assert_allclose(yc[4:64] + yc[68:], 2.0, rtol=1e-15)  # erfc(-x) = 2 - erfc(x)


# --- the new activations ------------------------------------------------------------------------
@pytest.mark.parametrize("name", NEW)
def test_gradcheck_float64(backend, name):
    rng = np.random.default_rng(3)
    shape = (3, 2, 4)  # elementwise: any rank
    x = rng.uniform(0.1, 4.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)  # off the kink
    layer = NEW[name]().build(backend, "float64")
    result = pnn.gradcheck(layer, x)
    assert result.max_error < 1e-7, result


def _torch_reference(torch, name, x):
    F = torch.nn.functional
    return {"gelu": lambda t: F.gelu(t), "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
            "elu": lambda t: F.elu(t), "elu_0.5": lambda t: F.elu(t, alpha=0.5),
            "silu": F.silu}[name](x)


@pytest.mark.parametrize("name", NEW)
def test_values_and_gradients_equal_torch(backend, name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-12.0, 12.0, 481), [-40.0, -25.0, 25.0, 40.0]])
    x = x[np.abs(x) > 1e-9].reshape(4, -1)  # the kink of ELU at 0 is a convention; see below
    g = rng.normal(size=x.shape)
    layer = NEW[name]().build(backend, "float64")
    y = to_np(layer.forward(backend.asarray(x, dtype="float64")))
    dx = to_np(layer.backward(backend.asarray(g, dtype="float64")))
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ty = _torch_reference(torch, name, tx)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_elu_slope_at_the_kink_is_alpha_as_torch(backend):
    layer = ELU(0.5).build(backend, "float64")
    layer.forward(backend.asarray([0.0], dtype="float64"))
    assert to_np(layer.backward(backend.asarray([2.0], dtype="float64")))[0] == 1.0


def test_exact_gelu_keeps_its_digits_in_the_negative_tail(backend):
    """x Φ(x) through erfc: ½ x (1 + erf(x/√2)) would round to 0 (or noise) here."""
    layer = GELU().build(backend, "float64")
    x = np.array([-10.0, -20.0, -30.0])
    y = to_np(layer.forward(backend.asarray(x, dtype="float64")))
    expected = [v * 0.5 * math.erfc(-v / math.sqrt(2.0)) for v in x]
    # erfc(z) has condition number ~2z²: one rounding of x/√2 at x = −30 is ~1e-13 relative
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    assert y[0] < 0 and y[1] < 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", NEW)
def test_stable_at_extreme_inputs(backend, name, dtype):
    layer = NEW[name]().build(backend, dtype)
    big = float(np.finfo(dtype).max) / 2
    x = backend.asarray([[-big, -1e4, -50.0, 0.0, 50.0, 1e4, big]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = to_np(layer.forward(x))
        g = to_np(layer.backward(backend.asarray(np.ones((1, 7)), dtype=dtype)))
    assert y.dtype == g.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(g))
    # far right: the identity; far left: 0 (GELU, SiLU) or −α (ELU), slope 0
    np.testing.assert_array_equal(y[0, [4, 5, 6]], to_np(x)[0, [4, 5, 6]])
    np.testing.assert_array_equal(g[0, [0, 1, 5, 6]], [0.0, 0.0, 1.0, 1.0])
    left = -layer.alpha if isinstance(layer, ELU) else 0.0
    np.testing.assert_allclose(y[0, [0, 1]], [left, left], atol=0)


# --- every activation: unbuilt, non-arrays, configs ---------------------------------------------
@pytest.mark.parametrize("cls", ALL_ACTIVATIONS, ids=lambda c: c.__name__)
def test_unbuilt_raises_runtime_error_naming_build(cls):
    with pytest.raises(RuntimeError, match=rf"{cls.__name__} is not built.*Sequential.*build"):
        cls().forward(np.ones((2, 3)))


@pytest.mark.parametrize("cls", ALL_ACTIVATIONS, ids=lambda c: c.__name__)
def test_a_list_is_a_type_error(backend, cls):
    layer = cls().build(backend, "float64")
    with pytest.raises(TypeError, match=rf"{cls.__name__}\.forward expects an array.*got list"):
        layer.forward([[1.0, 2.0]])


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"approximate": "exact"}, ValueError, "approximate must be 'none' or 'tanh'"),
    ({"approximate": None}, TypeError, "approximate must be 'none' or 'tanh'"),
])
def test_gelu_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        GELU(**kwargs)


@pytest.mark.parametrize("alpha,exc", [(-1.0, ValueError), (math.inf, ValueError),
                                       (math.nan, ValueError), ("1", TypeError),
                                       (True, TypeError)])
def test_elu_bad_alpha(alpha, exc):
    with pytest.raises(exc, match="alpha"):
        ELU(alpha)


def test_configs_round_trip_in_a_model(backend):
    model = Sequential(pnn.layers.Dense(3, 4), GELU("tanh"), pnn.layers.Dense(4, 4), ELU(0.3),
                       pnn.layers.Dense(4, 2), SiLU(), device=backend, dtype="float64", seed=0)
    clone = Sequential.from_config(model.get_config(), device=backend)
    assert clone[1].approximate == "tanh" and clone[3].alpha == 0.3 and isinstance(clone[5], SiLU)
    clone.load_state_dict(model.state_dict())
    x = backend.asarray(np.random.default_rng(0).normal(size=(5, 3)), dtype="float64")
    np.testing.assert_array_equal(to_np(clone.forward(x)), to_np(model.forward(x)))
    result = pnn.gradcheck(model, x)
    assert result.max_error < 1e-6, result
    assert GELU().output_shape((None, 2, 3)) == (None, 2, 3)
    assert GELU().state_shapes() == {}
