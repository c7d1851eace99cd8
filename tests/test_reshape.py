"""Flatten, Reshape, Permute: values against NumPy's, gradient checks, shapes, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.layers import (
    Conv2D,
    Dense,
    Flatten,
    GlobalAvgPool1D,
    Permute,
    ReLU,
    Reshape,
    Sequential,
)
from tests.conftest import to_np

CASES = [
    (Flatten, (), (2, 3, 2, 2), lambda x: x.reshape(2, 12)),
    (Flatten, (), (3, 4), lambda x: x),
    (Reshape, ((1, 3, 4),), (2, 12), lambda x: x.reshape(2, 1, 3, 4)),
    (Reshape, ([-1, 2],), (2, 3, 2, 2), lambda x: x.reshape(2, 6, 2)),
    (Permute, ((2, 1),), (2, 3, 4), lambda x: x.transpose(0, 2, 1)),
    (Permute, ([3, 1, 2],), (2, 3, 4, 5), lambda x: x.transpose(0, 3, 1, 2)),
]


def _id(case):
    return f"{case[0].__name__}{case[1]}-{case[2]}"


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_values_gradients_and_shapes(backend, rng, case):
    cls, args, shape, numpy_op = case
    layer = cls(*args).build(backend, "float64")
    xh = rng.normal(size=shape)
    y = layer.forward(backend.asarray(xh, dtype="float64"))
    np.testing.assert_array_equal(to_np(y), numpy_op(xh))
    assert layer.output_shape((None, *shape[1:])) == (None, *y.shape[1:])
    gh = rng.normal(size=tuple(y.shape))
    dx = to_np(layer.backward(backend.asarray(gh, dtype="float64")))
    # the adjoint of a rearrangement: <g, f(x)> = <f^T(g), x> for every x
    assert dx.shape == shape
    np.testing.assert_allclose((gh * numpy_op(xh)).sum(), (dx * xh).sum(), rtol=1e-12)
    assert pnn.gradcheck(layer, backend.asarray(xh, dtype="float64")).max_error < 1e-8


def test_config_round_trip():
    for layer in (Flatten(), Reshape((1, 8, -1)), Permute((2, 3, 1))):
        cfg = json.loads(json.dumps(layer.get_config()))
        rebuilt = pnn.layers.layer_from_config({"class": type(layer).__name__, "config": cfg})
        assert rebuilt.get_config() == cfg and rebuilt.state_shapes() == {}


def test_output_shapes_with_unknown_sizes():
    assert Flatten().output_shape((None, 3, None)) == (None, None)
    assert Reshape((-1, 4)).output_shape((None, 3, None)) == (None, None, 4)
    assert Reshape((-1, 4)).output_shape((None, 6, 2)) == (None, 3, 4)
    assert Permute((2, 1)).output_shape((None, 5, 7)) == (None, 7, 5)


def test_permute_feeds_global_average_pooling_over_the_length(backend, rng):
    """An Embedding's (N, L, d) becomes (N, d, L), which GlobalAvgPool1D pools over L."""
    model = Sequential(Permute((2, 1)), GlobalAvgPool1D(), Dense(4, 2), device=backend,
                       dtype="float64", seed=0)
    xh = rng.normal(size=(3, 5, 4))
    y = to_np(model.forward(backend.asarray(xh, dtype="float64")))
    s = model.state_dict()
    np.testing.assert_allclose(y, xh.mean(axis=1) @ s["2.weight"] + s["2.bias"], rtol=1e-12)
    result = pnn.gradcheck(model, backend.asarray(xh, dtype="float64"))
    assert result.max_error < 1e-7, result


def test_reshape_lets_flat_rows_into_a_cnn(backend, rng):
    """A flat (N, 16) batch (what fit gives) reshaped into images for a convolution."""
    model = Sequential(Reshape((1, 4, 4)), Conv2D(1, 2, 3), ReLU(), Flatten(), Dense(8, 2),
                       device=backend, dtype="float64", seed=1)
    xh = rng.normal(size=(2, 16))
    direct = Sequential(Conv2D(1, 2, 3), ReLU(), Flatten(), Dense(8, 2), device=backend,
                        dtype="float64", seed=1)
    np.testing.assert_allclose(
        to_np(model.forward(backend.asarray(xh, dtype="float64"))),
        to_np(direct.forward(backend.asarray(xh.reshape(2, 1, 4, 4), dtype="float64"))),
        rtol=1e-12)


def test_rearranged_outputs_are_not_written_by_the_next_layer(backend, rng):
    """Flatten returns a view of what the layer before keeps for its backward (ReLU's output):
    it does not declare owns_output, so the ReLU after it must not write over it."""
    model = Sequential(ReLU(), Flatten(), ReLU(), device=backend, dtype="float64")
    xh = rng.normal(size=(2, 2, 3))
    model.forward(backend.asarray(xh, dtype="float64"))
    np.testing.assert_array_equal(to_np(model.layers[0]._cache), np.maximum(xh, 0.0))


@pytest.mark.parametrize("make, error, message", [
    (lambda: Reshape(12), TypeError, "shape must be a tuple or list of ints"),
    (lambda: Reshape(()), ValueError, "shape must have at least one axis"),
    (lambda: Reshape((2, 2.0)), TypeError, "shape must hold ints, got float"),
    (lambda: Reshape((0, 3)), ValueError, "shape entries must be >= 1 or -1"),
    (lambda: Reshape((-1, -1)), ValueError, "at most one -1"),
    (lambda: Permute((1, 1)), ValueError, r"dims must be a permutation of 1\.\.2"),
    (lambda: Permute((0, 1)), ValueError, "the batch axis 0 stays first"),
    (lambda: Permute("21"), TypeError, "dims must be a tuple or list of ints"),
    (lambda: Permute(()), ValueError, "dims must be a permutation"),
])
def test_bad_constructor_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_bad_input_at_forward(backend):
    x = backend.asarray(np.ones((2, 3, 4)), dtype="float64")
    with pytest.raises(ValueError, match=r"Reshape\(\[5, -1\]\) cannot hold a sample of shape "
                                         r"\(3, 4\) \(12 values\)"):
        Reshape((5, -1)).build(backend).forward(x)
    with pytest.raises(ValueError, match=r"Reshape\(\[5, 2\]\) cannot hold"):
        Reshape((5, 2)).build(backend).forward(x)
    with pytest.raises(ValueError, match=r"Permute\(\[2, 3, 1\]\) expects input with 4 axes"):
        Permute((2, 3, 1)).build(backend).forward(x)
    with pytest.raises(ValueError, match="Flatten expects input of shape"):
        Flatten().build(backend).forward(backend.asarray(np.ones(3), dtype="float64"))
    with pytest.raises(TypeError, match="Flatten.forward expects an array"):
        Flatten().build(backend).forward([[1.0]])
    flatten = Flatten().build(backend)
    with pytest.raises(RuntimeError, match="Flatten.backward called before forward"):
        flatten.backward(backend.asarray(np.ones((2, 12)), dtype="float64"))
    flatten.forward(x)
    with pytest.raises(ValueError, match=r"Flatten.backward expects grad_out of shape \(2, 12\)"):
        flatten.backward(backend.asarray(np.ones((2, 11)), dtype="float64"))
