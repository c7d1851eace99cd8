"""`Conv1D` and `Conv2D`: cross-correlation over ``(N, C, L)`` / ``(N, C, H, W)``, PyTorch's layout.

One implementation for both: the padded input's windows are gathered by strided slicing into a
patch array (im2col, `functional.gather_windows`) and multiplied by the weight in one matrix
product per group; the input gradient goes back through the adjoint (col2im,
`functional.scatter_windows`), which adds into a zero canvas in place where the library allows it
and functionally elsewhere, so immutable arrays (JAX) work too.

Inside, the arrays are batch-last, ``(C, *spatial, N)`` (`functional.to_batch_last`): slices then
move long contiguous runs and the patches ``(C·K, positions·N)`` need no transpose before the
product. The output is the usual ``(N, C_out, *spatial)`` array, a permuted view of that memory
where the library makes views (NumPy, torch): code that needs C-contiguous memory copies it.
The patches live only inside one forward or backward call: forward caches the input (a patch
array is K times the input), backward gathers again.
"""

from __future__ import annotations

import math

from .. import initializers, regularizers
from ..functional import (
    crop_spatial,
    from_batch_last,
    gather_windows,
    pad_spatial,
    scatter_windows,
    to_batch_last,
    window_output_size,
    window_slices,
)
from .base import Layer, _positive_int

__all__ = ["Conv1D", "Conv2D"]


def _int_tuple(value, nd, argname, minimum):
    """``value`` (an int, or a sequence of ``nd`` ints: tuple or list) as a tuple of ``nd`` ints
    ``>= minimum``; a TypeError or ValueError naming ``argname`` otherwise."""
    items = value if isinstance(value, (tuple, list)) else (value,) * nd
    if len(items) != nd:
        raise ValueError(f"{argname} must be an int or a sequence of {nd} ints, got {value!r}")
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{argname} must be an int or a sequence of {nd} ints, got "
                            f"{type(v).__name__} {v!r} in {value!r}")
        if v < minimum:
            raise ValueError(f"{argname} must be >= {minimum}, got {value!r}")
    return tuple(items)


def _config_value(values, nd):
    """A tuple of ``nd`` ints as its JSON-able config: an int in 1-D, a list in 2-D."""
    return values[0] if nd == 1 else list(values)


def _array_ndim(layer, x):
    """``x.ndim``, or the TypeError of a value that is not an array of the layer's backend."""
    try:
        return x.ndim
    except AttributeError:
        raise TypeError(f"{type(layer).__name__}.forward expects an array of the layer's backend, "
                        f"got {type(x).__name__}; convert it with layer.backend.asarray(x)") from None


class _Conv(Layer):
    """The shared body of `Conv1D` and `Conv2D` (``nd`` spatial axes)."""

    nd = 0
    _axes = ""
    owns_output = True  # the matmul's result is new and not kept
    owns_input_grad = True  # so is the col2im canvas

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, init="torch_uniform", bias_init="torch_uniform",
                 regularizer=None):
        super().__init__()
        nd = self.nd
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.out_channels = _positive_int(out_channels, "out_channels")
        self.groups = _positive_int(groups, "groups")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) must "
                             f"both be divisible by groups ({groups})")
        self.kernel_size = _int_tuple(kernel_size, nd, "kernel_size", 1)
        self.stride = _int_tuple(stride, nd, "stride", 1)
        self.dilation = _int_tuple(dilation, nd, "dilation", 1)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"padding must be an int, a sequence of {nd} ints, 'valid' or "
                                 f"'same', got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"padding='same' needs stride 1 (as in PyTorch), got stride "
                                 f"{stride!r}")
            self.padding = padding
        else:
            self.padding = _int_tuple(padding, nd, "padding", 0)
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        self.use_bias = bias
        self.init = initializers.get(init, "init")
        self.bias_init = initializers.get(bias_init, "bias_init")
        self.regularizer = regularizers.get(regularizer)
        self._cache_x = None

    # configuration ------------------------------------------------------------------------------
    @property
    def pads(self):
        """``(lo, hi)`` zero cells added on each spatial axis. For ``"same"`` the total
        ``d·(k − 1)`` is split with the odd cell at the end (right, bottom), as PyTorch does."""
        if self.padding == "valid":
            return ((0, 0),) * self.nd
        if self.padding == "same":
            totals = [d * (k - 1) for k, d in zip(self.kernel_size, self.dilation)]
            return tuple((t // 2, t - t // 2) for t in totals)
        return tuple((p, p) for p in self.padding)

    def _weight_shape(self):
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    def state_shapes(self):
        shapes = {"weight": self._weight_shape()}
        if self.use_bias:
            shapes["bias"] = (self.out_channels,)
        return shapes

    def _build(self, rng):
        shape = self._weight_shape()
        fans = initializers.fans(shape, layout="out_in")
        self.add_parameter("weight", self.init(shape, rng, fans=fans),
                           regularizer=self.regularizer)
        if self.use_bias:
            # the bias is drawn with its weight's fans (torch_uniform: U(±1/√fan_in), as torch)
            self.add_parameter("bias", self.bias_init((self.out_channels,), rng, fans=fans))
        else:
            self.bias = None

    def _describe(self):
        return (f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
                f"kernel_size={_config_value(self.kernel_size, self.nd)!r})")

    def _out_sizes(self, spatial):
        """Output sizes for input ``spatial`` sizes (``None`` stays unknown), or ValueError where
        the dilated kernel is larger than the padded input."""
        out = []
        for i, (size, k, s, d, pad) in enumerate(zip(spatial, self.kernel_size, self.stride,
                                                     self.dilation, self.pads)):
            if size is None:
                out.append(None)
                continue
            o = window_output_size(size, k, s, d, pad)
            if o < 1:
                raise ValueError(
                    f"{self._describe()}: the kernel spans {d * (k - 1) + 1} cells along spatial "
                    f"axis {i} (kernel {k}, dilation {d}), more than the padded input's "
                    f"{size + sum(pad)} (size {size}, padding {pad})")
            out.append(o)
        return tuple(out)

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        if len(shape) != self.nd + 2:
            raise ValueError(f"{self._describe()} expects input of shape {self._axes}, got "
                             f"{shape}")
        if shape[1] is not None and shape[1] != self.in_channels:
            raise ValueError(f"{self._describe()} expects {self.in_channels} input channels, got "
                             f"input of shape {shape}")
        return (shape[0], self.out_channels, *self._out_sizes(shape[2:]))

    def get_config(self):
        nd = self.nd
        cfg = {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": _config_value(self.kernel_size, nd),
            "stride": _config_value(self.stride, nd),
            "padding": (self.padding if isinstance(self.padding, str)
                        else _config_value(self.padding, nd)),
            "dilation": _config_value(self.dilation, nd),
            "groups": self.groups,
            "bias": self.use_bias,
            "init": self.init.get_config(),
            "bias_init": self.bias_init.get_config(),
        }
        if self.regularizer is not None:
            cfg["regularizer"] = self.regularizer.get_config()
        return cfg

    # the two passes -----------------------------------------------------------------------------
    def _patches(self, x, out):
        """The patches of ``x`` as ``(groups, in_channels/groups · K, P · N)`` (P output
        positions, batch last; see `functional.to_batch_last`), and what col2im needs: the
        padded batch-last shape and the window slices."""
        xp = self.xp
        slices = window_slices(self.kernel_size, self.stride, self.dilation, out)
        x_pad = pad_spatial(xp, to_batch_last(xp, x), self.pads)
        cols = gather_windows(xp, x_pad, slices)  # (C, K, *out, N)
        g = self.groups
        cols = xp.reshape(cols, (g, self.in_channels // g * math.prod(self.kernel_size), -1))
        return cols, tuple(x_pad.shape), slices

    def _weight_matrix(self):
        """The weight as ``(groups, out_channels/groups, in_channels/groups · K)``."""
        g = self.groups
        return self.xp.reshape(self.weight.value, (g, self.out_channels // g, -1))

    def forward(self, x, training=False):
        self._require_built()
        ndim = _array_ndim(self, x)
        if ndim != self.nd + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self._describe()} expects input of shape {self._axes} with in_channels = "
                f"{self.in_channels}, got {tuple(x.shape)}")
        out = self._out_sizes(tuple(x.shape[2:]))
        xp = self.xp
        cols, _, _ = self._patches(x, out)
        # (groups, O/g, C/g·K) @ (groups, C/g·K, P·N): one matrix product per group, its
        # result already batch last (O, *out, N)
        y = xp.reshape(xp.matmul(self._weight_matrix(), cols),
                       (self.out_channels, *out, x.shape[0]))
        if self.use_bias:
            y += xp.reshape(self.bias.value, (self.out_channels,) + (1,) * (self.nd + 1))
        self._cache_x = x
        return from_batch_last(xp, y)

    def backward(self, grad_out, need_input_grad=True):
        x = self._cache_x
        if x is None:
            raise self._no_cache()
        out = self._out_sizes(tuple(x.shape[2:]))
        expected = (x.shape[0], self.out_channels, *out)
        if tuple(grad_out.shape) != expected:
            raise ValueError(f"{type(self).__name__}.backward expects grad_out of shape "
                             f"{expected}, got {tuple(grad_out.shape)}")
        xp = self.xp
        w, b = self.weight, self.bias
        g = self.groups
        if b is not None:
            b.grad = (xp.sum(grad_out, axis=(0, *range(2, 2 + self.nd))) if b.trainable
                      else None)
        if not (w.trainable or need_input_grad):
            w.grad = None
            return None
        # g as (groups, O/g, P·N), batch last like the patches
        g3 = xp.reshape(to_batch_last(xp, grad_out), (g, self.out_channels // g, -1))
        cols, padded_shape, slices = self._patches(x, out)
        if w.trainable:
            # dL/dW = g · patchesᵀ per group, the sum over samples and positions in one product
            # (computed as (patches · gᵀ)ᵀ: the long axis inside, faster on NumPy)
            dw = xp.matrix_transpose(xp.matmul(cols, xp.matrix_transpose(g3)))
            w.grad = xp.reshape(dw, w.shape)
            if w.regularizer is not None:
                w.grad = w.grad + w.regularizer.gradient(w.value)
        else:
            w.grad = None
        if not need_input_grad:
            return None
        del cols
        # dL/dpatches = Wᵀ g, then col2im adds every window's share back onto the input cells
        dcols = xp.matmul(xp.matrix_transpose(self._weight_matrix()), g3)
        dcols = xp.reshape(dcols, (self.in_channels, len(slices), *out, x.shape[0]))
        canvas = scatter_windows(xp, (dcols[:, k, ...] for k in range(len(slices))),
                                 padded_shape, slices, like=dcols)
        return from_batch_last(xp, crop_spatial(canvas, self.pads))


class Conv1D(_Conv):
    """1-D convolution (cross-correlation, as ``torch.nn.Conv1d``) over ``x`` of shape
    ``(N, C_in, L)``.

    Forward, with the weight ``W`` of shape ``(C_out, C_in/groups, k)`` and the input zero-padded:
    ``y[n, o, l] = b[o] + Σ_{c ∈ group(o)} Σ_j W[o, c, j] · x[n, c, s·l + d·j]``.

    Local gradient, ``g = dL/dy`` of shape ``(N, C_out, L_out)``:

    - ``dL/dW[o, c, j] = Σ_{n, l} g[n, o, l] · x[n, c, s·l + d·j]``
    - ``dL/db[o] = Σ_{n, l} g[n, o, l]``
    - ``dL/dx[n, c, i] = Σ_{o ∈ group(c)} Σ_{(l, j): s·l + d·j = i} g[n, o, l] · W[o, c, j]``
      (the transposed convolution; padding cells dropped)

    ``kernel_size``, ``stride``, ``padding``, ``dilation``: ints (or 1-sequences); ``padding`` may
    be ``"valid"`` (none) or ``"same"`` (stride 1; output length = input length; the odd cell
    of an even total goes at the end, as PyTorch). ``groups`` splits the channels into
    independent groups (``groups = C_in``: depthwise). Default init: ``torch_uniform``,
    U(±1/√fan_in) with ``fan_in = C_in/groups · k``, for weight and bias (PyTorch's). ``weight``
    and ``bias`` have PyTorch's shapes, so weights move between the two unchanged.
    """

    nd = 1
    _axes = "(batch, in_channels, length)"


class Conv2D(_Conv):
    """2-D convolution (cross-correlation, as ``torch.nn.Conv2d``) over ``x`` of shape
    ``(N, C_in, H, W)``.

    Forward, with the weight ``W`` of shape ``(C_out, C_in/groups, kh, kw)``, the input
    zero-padded, ``s`` the stride and ``d`` the dilation (each per axis):
    ``y[n, o, h, w] = b[o] + Σ_{c ∈ group(o)} Σ_{i, j} W[o, c, i, j] · x[n, c, s·h + d·i, s·w + d·j]``,
    computed as one matmul ``W (C_out, C_in·kh·kw) @ patches (C_in·kh·kw, H_out·W_out)`` per
    sample and group (im2col).

    Local gradient, ``g = dL/dy`` of shape ``(N, C_out, H_out, W_out)``:

    - ``dL/dW = Σ_n g_n · patches_nᵀ``  (per group)
    - ``dL/db[o] = Σ_{n, h, w} g[n, o, h, w]``
    - ``dL/dx = col2im(Wᵀ g_n)``: every window's share added back onto the input cells it
      covered (the transposed convolution), padding cells dropped.

    ``kernel_size``, ``stride``, ``padding``, ``dilation``: an int or a pair ``(h, w)``;
    ``padding`` may be ``"valid"`` or ``"same"`` (stride 1; output size = input size; for an even
    total the extra cell goes right/bottom, as PyTorch). ``groups`` splits the channels into
    independent groups (``groups = C_in``: depthwise). Default init: ``torch_uniform``,
    U(±1/√fan_in) with ``fan_in = C_in/groups · kh · kw``, for weight and bias (PyTorch's).
    ``weight`` and ``bias`` have PyTorch's shapes, so weights move between the two unchanged.
    """

    nd = 2
    _axes = "(batch, in_channels, height, width)"
