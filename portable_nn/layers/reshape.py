"""Layers that only rearrange a sample's values: `Flatten`, `Reshape`, `Permute`.

Each keeps the batch axis 0 and moves the values of one sample; backward moves the gradient back
the inverse way. Their outputs are views where the library makes one (NumPy, torch), so they do
not declare ``owns_output``: no layer after them writes over what the layer before them keeps.
"""

from __future__ import annotations

import math

from .base import Layer
from .conv import _array_ndim

__all__ = ["Flatten", "Permute", "Reshape"]


class _Rearrange(Layer):
    def __init__(self):
        super().__init__()
        self._cache_shape = None  # the input's shape

    def _check_grad(self, grad_out, expected):
        if tuple(grad_out.shape) != tuple(expected):
            raise ValueError(f"{type(self).__name__}.backward expects grad_out of shape "
                             f"{tuple(expected)}, got {tuple(grad_out.shape)}")

    def _input_shape(self):
        if self._cache_shape is None:
            raise self._no_cache()
        return self._cache_shape


class Flatten(_Rearrange):
    """``(N, d1, d2, ...) → (N, d1·d2·...)``: each sample's values in row-major order (C order,
    as ``torch.flatten(x, 1)``). Local gradient: ``dL/dx`` is ``g`` reshaped back to ``x``'s shape.
    """

    def forward(self, x, training=False):
        self._require_built()
        if _array_ndim(self, x) < 2:
            raise ValueError(f"Flatten expects input of shape (batch, ...) with at least 2 axes, "
                             f"got {tuple(x.shape)}")
        self._cache_shape = tuple(x.shape)
        return self.xp.reshape(x, (x.shape[0], math.prod(x.shape[1:])))

    def backward(self, grad_out, need_input_grad=True):
        shape = self._input_shape()
        self._check_grad(grad_out, (shape[0], math.prod(shape[1:])))
        return self.xp.reshape(grad_out, shape) if need_input_grad else None

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) < 2:
            raise ValueError(f"Flatten expects input of shape (batch, ...) with at least 2 axes, "
                             f"got {shape}")
        rest = shape[1:]
        return (shape[0], None if None in rest else math.prod(rest))


class Reshape(_Rearrange):
    """Each sample to ``shape`` (the batch axis is not part of it; one entry may be ``-1``, the
    size left over), row-major as ``x.reshape(N, *shape)``: ``Reshape((1, 8, 8))`` turns
    ``(N, 64)`` into ``(N, 1, 8, 8)``. Local gradient: ``g`` reshaped back to ``x``'s shape.
    """

    def __init__(self, shape):
        super().__init__()
        if not isinstance(shape, (tuple, list)):
            raise TypeError(f"shape must be a tuple or list of ints (the shape of one sample), "
                            f"got {type(shape).__name__} {shape!r}")
        if len(shape) == 0:
            raise ValueError("shape must have at least one axis (the batch axis is not part of "
                             "it), got ()")
        for d in shape:
            if isinstance(d, bool) or not isinstance(d, int):
                raise TypeError(f"shape must hold ints, got {type(d).__name__} {d!r} in "
                                f"{shape!r}")
            if d < 1 and d != -1:
                raise ValueError(f"shape entries must be >= 1 or -1, got {shape!r}")
        if list(shape).count(-1) > 1:
            raise ValueError(f"shape may hold at most one -1, got {shape!r}")
        self.shape = tuple(shape)

    def _resolve(self, sample_shape):
        """``self.shape`` with its -1 filled in for a sample of ``sample_shape``, or ValueError."""
        if None in sample_shape:
            return tuple(None if d == -1 else d for d in self.shape)
        size = math.prod(sample_shape)
        known = math.prod(d for d in self.shape if d != -1)
        if (-1 in self.shape and size % known) or (-1 not in self.shape and size != known):
            raise ValueError(f"Reshape({list(self.shape)}) cannot hold a sample of shape "
                             f"{tuple(sample_shape)} ({size} values)")
        return tuple(size // known if d == -1 else d for d in self.shape)

    def forward(self, x, training=False):
        self._require_built()
        if _array_ndim(self, x) < 1:
            raise ValueError("Reshape expects input with a batch axis, got a 0-d array")
        target = self._resolve(tuple(x.shape[1:]))
        self._cache_shape = tuple(x.shape)
        return self.xp.reshape(x, (x.shape[0], *target))

    def backward(self, grad_out, need_input_grad=True):
        shape = self._input_shape()
        self._check_grad(grad_out, (shape[0], *self._resolve(shape[1:])))
        return self.xp.reshape(grad_out, shape) if need_input_grad else None

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) < 1:
            raise ValueError("Reshape expects input with a batch axis")
        return (shape[0], *self._resolve(shape[1:]))

    def get_config(self):
        return {"shape": list(self.shape)}


class Permute(_Rearrange):
    """Reorder each sample's axes (Keras's ``Permute``): ``dims`` is a permutation of
    ``1 .. rank-1``, the batch axis 0 excluded, so ``Permute((2, 1))`` turns ``(N, L, d)`` into
    ``(N, d, L)`` and ``y[n, j, i] = x[n, i, j]``. Local gradient: ``g`` permuted back by the
    inverse permutation.
    """

    def __init__(self, dims):
        super().__init__()
        if not isinstance(dims, (tuple, list)) or any(
                isinstance(d, bool) or not isinstance(d, int) for d in dims):
            raise TypeError(f"dims must be a tuple or list of ints, got {dims!r}")
        if len(dims) == 0 or sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"dims must be a permutation of 1..{len(dims)} (the axes of one "
                             f"sample, numbered from 1; the batch axis 0 stays first), got "
                             f"{dims!r}")
        self.dims = tuple(dims)
        inverse = [0] * len(dims)
        for i, d in enumerate(dims):
            inverse[d - 1] = i + 1
        self._inverse = (0, *inverse)

    def _check_rank(self, shape):
        if len(shape) != len(self.dims) + 1:
            raise ValueError(f"Permute({list(self.dims)}) expects input with "
                             f"{len(self.dims) + 1} axes (batch first), got shape {tuple(shape)}")

    def forward(self, x, training=False):
        self._require_built()
        _array_ndim(self, x)
        self._check_rank(tuple(x.shape))
        self._cache_shape = tuple(x.shape)
        return self.xp.permute_dims(x, (0, *self.dims))

    def backward(self, grad_out, need_input_grad=True):
        shape = self._input_shape()
        self._check_grad(grad_out, self.output_shape(shape))
        return self.xp.permute_dims(grad_out, self._inverse) if need_input_grad else None

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        self._check_rank(shape)
        return (shape[0], *(shape[d] for d in self.dims))

    def get_config(self):
        return {"dims": list(self.dims)}
