"""Pooling over ``(N, C, L)`` / ``(N, C, H, W)``: max, average and global average, as PyTorch's.

The windows are walked one kernel offset at a time (`functional.window_slices`): each offset is a
strided slice of the padded input covering every window at once, so the loops run over the
kernel's offsets only and no patch array is built. Backward adds each offset's share into a zero
canvas through `functional.scatter_windows` (functional on immutable arrays).
"""

from __future__ import annotations

import math

from array_api_compat import device as device_of

from ..functional import (
    crop_spatial,
    from_batch_last,
    pad_spatial,
    scatter_windows,
    to_batch_last,
    window_output_size,
    window_slices,
)
from .base import Layer
from .conv import _array_ndim, _config_value, _int_tuple

__all__ = ["AvgPool1D", "AvgPool2D", "GlobalAvgPool1D", "GlobalAvgPool2D", "MaxPool1D",
           "MaxPool2D"]


class _Pool(Layer):
    """The shared body of the windowed pools (``nd`` spatial axes)."""

    nd = 0
    _axes = ""
    owns_output = True  # a new array, never a view of the input (see forward)
    owns_input_grad = True  # the canvas of scatter_windows

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _int_tuple(kernel_size, self.nd, "kernel_size", 1)
        self.stride = (self.kernel_size if stride is None
                       else _int_tuple(stride, self.nd, "stride", 1))
        self.padding = _int_tuple(padding, self.nd, "padding", 0)
        for p, k in zip(self.padding, self.kernel_size):
            if 2 * p > k:  # PyTorch's rule: every window keeps at least one real cell
                raise ValueError(f"padding must be at most half of kernel_size (as in PyTorch), "
                                 f"got padding={padding!r} with kernel_size={kernel_size!r}")
        self._cache_shape = None  # the input's shape

    @property
    def pads(self):
        return tuple((p, p) for p in self.padding)

    def _describe(self):
        return (f"{type(self).__name__}(kernel_size="
                f"{_config_value(self.kernel_size, self.nd)!r})")

    def _out_sizes(self, spatial):
        out = []
        for i, (size, k, s, p) in enumerate(zip(spatial, self.kernel_size, self.stride,
                                                self.padding)):
            if size is None:
                out.append(None)
                continue
            o = window_output_size(size, k, s, 1, (p, p))
            if o < 1:
                raise ValueError(f"{self._describe()}: the kernel spans {k} cells along spatial "
                                 f"axis {i}, more than the padded input's {size + 2 * p} (size "
                                 f"{size}, padding {p})")
            out.append(o)
        return tuple(out)

    def _check_input(self, x):
        ndim = _array_ndim(self, x)
        if ndim != self.nd + 2:
            raise ValueError(f"{self._describe()} expects input of shape {self._axes}, got "
                             f"{tuple(x.shape)}")
        return self._out_sizes(tuple(x.shape[2:]))

    def _check_grad(self, grad_out):
        shape = self._cache_shape
        if shape is None:
            raise self._no_cache()
        expected = (*shape[:2], *self._out_sizes(shape[2:]))
        if tuple(grad_out.shape) != expected:
            raise ValueError(f"{type(self).__name__}.backward expects grad_out of shape "
                             f"{expected}, got {tuple(grad_out.shape)}")
        # batch-last, as the windows are walked (see functional.to_batch_last)
        padded = (shape[1], *(n + 2 * p for n, p in zip(shape[2:], self.padding)), shape[0])
        return padded, window_slices(self.kernel_size, self.stride, (1,) * self.nd, expected[2:])

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) != self.nd + 2:
            raise ValueError(f"{self._describe()} expects input of shape {self._axes}, got "
                             f"{shape}")
        return (*shape[:2], *self._out_sizes(shape[2:]))

    def get_config(self):
        return {"kernel_size": _config_value(self.kernel_size, self.nd),
                "stride": _config_value(self.stride, self.nd),
                "padding": _config_value(self.padding, self.nd)}


class _MaxPool(_Pool):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size, stride, padding)
        self._cache_index = None  # per output cell: the offset of its window's maximum

    def forward(self, x, training=False):
        self._require_built()
        out = self._check_input(x)
        xp = self.xp
        slices = window_slices(self.kernel_size, self.stride, (1,) * self.nd, out)
        x_pad = pad_spatial(xp, to_batch_last(xp, x), self.pads, value=-math.inf)
        # where padding exists, track whether the best cell so far is a real one: a window whose
        # real cells are all -inf still picks its first real cell, as PyTorch (which never
        # looks at padding) does, so the gradient is not lost in the padding
        real = None
        if any(self.padding):
            ones = xp.ones((1, *x.shape[2:], 1), dtype=xp.bool, device=device_of(x))
            real = pad_spatial(xp, ones, self.pads, value=False)
        best = x_pad[slices[0]]
        best_real = None if real is None else real[slices[0]]
        count = len(slices)
        index_dtype = xp.int8 if count <= 127 else xp.int16 if count <= 32767 else xp.int32
        index = xp.zeros_like(best, dtype=index_dtype)
        for k in range(1, count):
            v = x_pad[slices[k]]
            # strictly greater: ties keep the first maximum in window order, as PyTorch
            take = v > best
            if real is not None:
                v_real = real[slices[k]]
                take = take | (v_real & ~best_real)
                best_real = best_real | take  # a cell taken is a real one
            best = xp.maximum(best, v)  # NaN propagates, as in PyTorch
            # k grows, so the last offset taken is the larger: max(index, k·take) is
            # where(take, k, index) without where's branch per element (3x faster on NumPy)
            index = xp.maximum(index, xp.astype(take, index_dtype) * k)
        if count == 1:  # the slice is a view of x: copy, as the layer declares owns_output
            best = xp.asarray(best, copy=True)
        self._cache_shape = tuple(x.shape)
        self._cache_index = index
        return from_batch_last(xp, best)

    def backward(self, grad_out, need_input_grad=True):
        padded, slices = self._check_grad(grad_out)
        if not need_input_grad:
            return None
        xp = self.xp
        index = self._cache_index
        g = to_batch_last(xp, grad_out)
        # g ⊙ [index = k], as a product rather than a where (3x faster on NumPy; only a
        # non-finite g differs, spreading NaN over its window instead of one cell)
        pieces = (g * xp.astype(index == k, g.dtype) for k in range(len(slices)))
        canvas = scatter_windows(xp, pieces, padded, slices, like=grad_out)
        return from_batch_last(xp, crop_spatial(canvas, self.pads))


class _AvgPool(_Pool):
    def forward(self, x, training=False):
        self._require_built()
        out = self._check_input(x)
        xp = self.xp
        slices = window_slices(self.kernel_size, self.stride, (1,) * self.nd, out)
        x_pad = pad_spatial(xp, to_batch_last(xp, x), self.pads)
        if len(slices) == 1:
            total = x_pad[slices[0]] * 1.0  # a new array, not a view of x
        else:
            total = x_pad[slices[0]] + x_pad[slices[1]]  # new: += below never touches x
            for s in slices[2:]:
                total += x_pad[s]
            total *= 1.0 / len(slices)
        self._cache_shape = tuple(x.shape)
        return from_batch_last(xp, total)

    def backward(self, grad_out, need_input_grad=True):
        padded, slices = self._check_grad(grad_out)
        if not need_input_grad:
            return None
        xp = self.xp
        share = to_batch_last(xp, grad_out) * (1.0 / len(slices))
        canvas = scatter_windows(xp, [share] * len(slices), padded, slices, like=grad_out)
        return from_batch_last(xp, crop_spatial(canvas, self.pads))


_MAX_DOC = """{dim} max pooling over ``x`` of shape {axes}, as ``torch.nn.functional.max_pool{n}d``.

    Forward: ``y[n, c, p] = max_{{k}} x_pad[n, c, s·p + k]`` over the window of ``kernel_size``
    cells at stride ``stride`` (default: ``kernel_size``), the input padded with ``-inf`` by
    ``padding`` (at most half the kernel, PyTorch's rule).

    Local gradient: ``dL/dx`` receives each ``g[n, c, p]`` at the arg-max of window ``p`` and 0
    elsewhere; cells shared by overlapping windows sum their shares. Ties: the first maximum in
    window order (row-major) gets the gradient, as in PyTorch, so the gradient check and PyTorch
    agree; a NaN in a window makes its output NaN, as in PyTorch. Outputs are batch-last in
    memory like the convolutions' (see `portable_nn.layers.conv`).
    """

_AVG_DOC = """{dim} average pooling over ``x`` of shape {axes}, as ``torch.nn.functional.avg_pool{n}d``.

    Forward: ``y[n, c, p] = (1/K) Σ_{{k}} x_pad[n, c, s·p + k]`` over the window of ``kernel_size``
    cells (``K`` of them) at stride ``stride`` (default: ``kernel_size``), zero-padded by
    ``padding`` (at most half the kernel); padded cells count in the average (PyTorch's default
    ``count_include_pad=True``).

    Local gradient: ``dL/dx`` receives ``g[n, c, p] / K`` at every cell of window ``p``; cells shared
    by overlapping windows sum their shares.
    """


class MaxPool1D(_MaxPool):
    __doc__ = _MAX_DOC.format(dim="1-D", axes="``(N, C, L)``", n=1)
    nd = 1
    _axes = "(batch, channels, length)"


class MaxPool2D(_MaxPool):
    __doc__ = _MAX_DOC.format(dim="2-D", axes="``(N, C, H, W)``", n=2)
    nd = 2
    _axes = "(batch, channels, height, width)"


class AvgPool1D(_AvgPool):
    __doc__ = _AVG_DOC.format(dim="1-D", axes="``(N, C, L)``", n=1)
    nd = 1
    _axes = "(batch, channels, length)"


class AvgPool2D(_AvgPool):
    __doc__ = _AVG_DOC.format(dim="2-D", axes="``(N, C, H, W)``", n=2)
    nd = 2
    _axes = "(batch, channels, height, width)"


class _GlobalAvgPool(Layer):
    nd = 0
    _axes = ""
    owns_output = True  # the mean is a new array

    def __init__(self):
        super().__init__()
        self._cache_shape = None

    def forward(self, x, training=False):
        self._require_built()
        ndim = _array_ndim(self, x)
        if ndim != self.nd + 2:
            raise ValueError(f"{type(self).__name__} expects input of shape {self._axes}, got "
                             f"{tuple(x.shape)}")
        self._cache_shape = tuple(x.shape)
        return self.xp.mean(x, axis=tuple(range(2, 2 + self.nd)))

    def backward(self, grad_out, need_input_grad=True):
        shape = self._cache_shape
        if shape is None:
            raise self._no_cache()
        if tuple(grad_out.shape) != shape[:2]:
            raise ValueError(f"{type(self).__name__}.backward expects grad_out of shape "
                             f"{shape[:2]}, got {tuple(grad_out.shape)}")
        if not need_input_grad:
            return None
        xp = self.xp
        share = grad_out * (1.0 / math.prod(shape[2:]))
        # a broadcast view (read-only on NumPy): owns_input_grad stays False, so no layer
        # writes over it
        return xp.broadcast_to(xp.reshape(share, (*shape[:2],) + (1,) * self.nd), shape)

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) != self.nd + 2:
            raise ValueError(f"{type(self).__name__} expects input of shape {self._axes}, got "
                             f"{shape}")
        return shape[:2]


class GlobalAvgPool1D(_GlobalAvgPool):
    """Mean over the length: ``(N, C, L) → (N, C)``, ``y[n, c] = (1/L) Σ_l x[n, c, l]``
    (``torch.mean(x, dim=2)``). Local gradient: ``dL/dx[n, c, l] = g[n, c] / L``."""

    nd = 1
    _axes = "(batch, channels, length)"


class GlobalAvgPool2D(_GlobalAvgPool):
    """Mean over height and width: ``(N, C, H, W) → (N, C)``,
    ``y[n, c] = (1/(H·W)) Σ_{h, w} x[n, c, h, w]`` (``adaptive_avg_pool2d(x, 1)``).
    Local gradient: ``dL/dx[n, c, h, w] = g[n, c] / (H·W)``."""

    nd = 2
    _axes = "(batch, channels, height, width)"
