"""Initializers: shapes, moments within sampling tolerance, one seed = one model everywhere."""

from __future__ import annotations

import math

import numpy as np
import pytest

import portable_nn as pnn
from tests.conftest import to_np

I = pnn.initializers

FAN_IN, FAN_OUT = 300, 200
SHAPE = (FAN_IN, FAN_OUT)  # 60 000 draws: standard errors well below the tolerances

# name -> (expected mean, expected variance, bound of |w - mean| or None)
MOMENTS = {
    "glorot_normal": (0.0, 2.0 / (FAN_IN + FAN_OUT), None),
    "glorot_uniform": (0.0, 2.0 / (FAN_IN + FAN_OUT), math.sqrt(6.0 / (FAN_IN + FAN_OUT))),
    "he_normal": (0.0, 2.0 / FAN_IN, None),
    "he_uniform": (0.0, 2.0 / FAN_IN, math.sqrt(6.0 / FAN_IN)),
    "lecun_normal": (0.0, 1.0 / FAN_IN, None),
    "normal": (0.0, 0.01**2, None),
    "uniform": (0.0, 0.1**2 / 12.0, 0.05),
}


@pytest.mark.parametrize("name", sorted(MOMENTS))
def test_moments_within_sampling_tolerance(name):
    mean, var, bound = MOMENTS[name]
    w = I.get(name)(SHAPE, np.random.default_rng(0))
    assert w.shape == SHAPE and w.dtype == np.float64
    n = w.size
    # 5 standard errors of the sample mean, and of the sample variance (kurtosis at most 3)
    assert abs(w.mean() - mean) < 5 * math.sqrt(var / n)
    assert abs(w.var() - var) < 5 * var * math.sqrt(2.0 / n)
    if bound is not None:
        assert np.abs(w - mean).max() <= bound
        # a uniform distribution fills its interval
        assert np.abs(w - mean).max() > 0.99 * bound


def test_normal_and_uniform_with_arguments():
    rng = np.random.default_rng(1)
    w = I.Normal(std=2.0, mean=3.0)((500, 200), rng)
    assert abs(w.mean() - 3.0) < 5 * 2.0 / math.sqrt(w.size)
    assert abs(w.std() - 2.0) < 0.02
    u = I.Uniform(1.0, 3.0)((500, 200), rng)
    assert u.min() >= 1.0 and u.max() < 3.0
    assert abs(u.mean() - 2.0) < 5 * math.sqrt(4.0 / 12.0 / u.size)


def test_constants():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(I.get("zeros")((2, 3), rng), np.zeros((2, 3)))
    np.testing.assert_array_equal(I.get("ones")((4,), rng), np.ones(4))
    np.testing.assert_array_equal(I.Constant(0.25)((3, 1), rng), np.full((3, 1), 0.25))
    np.testing.assert_array_equal(I.get({"name": "constant", "value": -1.5})((2,), rng),
                                  [-1.5, -1.5])


@pytest.mark.parametrize("name", sorted(MOMENTS) + ["zeros", "ones", "constant"])
@pytest.mark.parametrize("shape", [(3, 4), (7,), (2, 3, 5)])
def test_shapes(name, shape):
    assert I.get(name)(shape, np.random.default_rng(0)).shape == shape


def test_fans():
    assert I.fans((4, 6)) == (4, 6)
    assert I.fans((5,)) == (5, 5)
    assert I.fans(()) == (1, 1)
    assert I.fans((3, 2, 7)) == (3, 7)


def test_aliases_and_configs_reproduce_the_same_draws():
    for alias, name in [("xavier", "glorot_uniform"), ("he", "he_normal"),
                        ("xavier_fan_in", "lecun_normal"), ("Glorot_Normal", "glorot_normal")]:
        a = I.get(alias)((5, 4), np.random.default_rng(3))
        b = I.get(name)((5, 4), np.random.default_rng(3))
        np.testing.assert_array_equal(a, b)
    original = I.Normal(std=0.5, mean=1.0)
    rebuilt = I.get(original.get_config())
    np.testing.assert_array_equal(original((3, 3), np.random.default_rng(2)),
                                  rebuilt((3, 3), np.random.default_rng(2)))


def test_bad_specs_raise():
    with pytest.raises(ValueError, match="unknown init 'glorious'"):
        I.get("glorious")
    with pytest.raises(ValueError, match="bias_init"):
        I.get("nope", "bias_init")
    with pytest.raises(TypeError, match="init"):
        I.get(3.0)
    with pytest.raises(ValueError, match="name"):
        I.get({"std": 1.0})
    with pytest.raises(ValueError, match="std"):
        I.Normal(std=-1.0)
    with pytest.raises(ValueError, match="low < high"):
        I.Uniform(0.5, 0.5)
    with pytest.raises(TypeError, match="std must be a number, got str"):
        I.Normal(std="a")
    with pytest.raises(ValueError, match="mean must be finite"):
        I.Normal(mean=float("nan"))
    with pytest.raises(TypeError, match="low must be a number"):
        I.Uniform(None, 1.0)
    with pytest.raises(ValueError, match="value must be finite"):
        I.Constant(float("inf"))
    with pytest.raises(ValueError, match="unknown init"):
        pnn.layers.Dense(2, 3, init="gaussian")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_seed_gives_the_same_model_on_every_backend(backend, dtype):
    def build(device):
        return pnn.Sequential(
            pnn.layers.Dense(4, 5, init="he_uniform", bias_init="normal"), pnn.layers.ReLU(),
            pnn.layers.Dense(5, 3, init="glorot_normal"), device=device, dtype=dtype, seed=7,
        )

    reference, model = build("cpu"), build(backend)
    ref_params = reference.named_parameters()
    for name, p in model.named_parameters().items():
        assert backend.owns(p.value)
        assert p.value.dtype == backend.dtype(dtype)
        np.testing.assert_array_equal(to_np(p.value), to_np(ref_params[name].value))
    other = pnn.Sequential(pnn.layers.Dense(4, 5, init="he_uniform"), device=backend,
                           dtype=dtype, seed=8)
    assert not np.array_equal(to_np(other[0].weight.value), to_np(model[0].weight.value))
