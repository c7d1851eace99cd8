"""Pure array functions shared by layers and losses, as ``torch.nn.functional``.

Each takes the array namespace ``xp`` first and works on arrays of any Array API library: nothing
here keeps state, writes into its arguments or imports an array library. Layers call these for
their forward passes and losses for theirs, so that ``losses`` never imports ``layers``.
"""

from __future__ import annotations

import itertools

import array_api_extra as xpx
from array_api_compat import device as device_of
from array_api_compat import is_writeable_array

__all__ = [
    "crop_spatial",
    "erf",
    "erfc",
    "from_batch_last",
    "gather_windows",
    "log_softmax",
    "pad_spatial",
    "scatter_windows",
    "sigmoid",
    "softmax",
    "softplus",
    "to_batch_last",
    "window_output_size",
    "window_slices",
]


def sigmoid(xp, x):
    """``1 / (1 + e^-x)`` without overflow: only ``e^-|x|`` is ever computed."""
    e = xp.exp(-xp.abs(x))
    inv = 1.0 / (1.0 + e)
    return xp.where(x >= 0, inv, e * inv)


def softplus(xp, x):
    """``log(1 + e^x) = max(x, 0) + log1p(e^-|x|)``, exact and overflow-free."""
    return xp.maximum(x, 0.0) + xp.log1p(xp.exp(-xp.abs(x)))


def log_softmax(xp, x, axis=-1):
    """``x_i - log Σ_j e^{x_j}`` along ``axis``, via the log-sum-exp trick."""
    shifted = x - xp.max(x, axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


def softmax(xp, x, axis=-1):
    """``e^{x_i} / Σ_j e^{x_j}`` along ``axis``, shifted by the maximum so nothing overflows."""
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


# --- the error function -----------------------------------------------------------------------
# The Array API has no erf. W. J. Cody, "Rational Chebyshev approximations for the error
# function", Math. Comp. 23 (1969) 631-638, as in Netlib SPECFUN's CALERF: erf(x) = x P(x²)/Q(x²)
# on |x| <= 0.46875; erfc(y) = e^{-y²} P(y)/Q(y) on (0.46875, 4]; and
# erfc(y) = e^{-y²}/y (1/√π + 1/y² P(1/y²)/Q(1/y²)) beyond 4. Relative error below 1e-16 in
# each piece before rounding; every branch is evaluated on inputs clamped into its own interval,
# so the branches not selected cannot overflow or divide by zero.

_ERF_THRESHOLD = 0.46875
_ERFC_ZERO = 30.0  # erfc(y) underflows to 0 beyond ~27.3 (float64) and ~10 (float32)
_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
      3.20937758913846947e03, 1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
      2.84423683343917062e03)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
      2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
      2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
      1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
      3.43936767414372164e03, 1.23033935480374942e03)
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
      1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
      6.05183413124413191e-2, 2.33520497626869185e-3)
_ONE_OVER_SQRT_PI = 5.6418958354775628695e-1


def _ratio(x, num_coeffs, den_coeffs):
    """Cody's ``P(x)/Q(x)``: the last numerator coefficient leads, ``Q`` is monic."""
    num = num_coeffs[-1] * x
    den = x
    for a, b in zip(num_coeffs[:-2], den_coeffs[:-1]):
        num = (num + a) * x
        den = (den + b) * x
    return (num + num_coeffs[-2]) / (den + den_coeffs[-1])


def _erf_small(xp, x):
    """``erf(x)`` for ``|x| <= 0.46875``; ``x`` is clamped to that range first."""
    x = xp.maximum(xp.minimum(x, _ERF_THRESHOLD), -_ERF_THRESHOLD)
    return x * _ratio(x * x, _A, _B)


def _erfc_positive(xp, y):
    """``erfc(y)`` for ``y = |x| > 0.46875`` (finite nonsense below: the caller selects)."""
    y = xp.minimum(y, _ERFC_ZERO)
    mid = _ratio(xp.minimum(y, 4.0), _C, _D)
    t = xp.maximum(y, 4.0)
    z = 1.0 / (t * t)
    tail = (_ONE_OVER_SQRT_PI - z * _ratio(z, _P, _Q)) / t
    # e^{-y²} as e^{-s²} e^{-(y-s)(y+s)} with s = y rounded down to a multiple of 1/16: s² is
    # exact, so the rounding error of y² (relative eps, absolute eps·y²) never reaches the exponent
    s = xp.floor(y * 16.0) / 16.0
    return xp.exp(-s * s) * xp.exp(-(y - s) * (y + s)) * xp.where(y <= 4.0, mid, tail)


def erf(xp, x):
    """The error function ``erf(x) = 2/√π ∫_0^x e^{-t²} dt`` of a real floating array, in ``xp``.

    Cody's rational approximations (see above): within a few ulp of the correctly rounded value in
    float64 and float32, odd (``erf(-x) = -erf(x)``), ``±1`` at ``±inf``, NaN for NaN, and no
    overflow or warning for any input.
    """
    y = xp.abs(x)
    large = 0.5 - _erfc_positive(xp, y) + 0.5
    return xp.where(y <= _ERF_THRESHOLD, _erf_small(xp, x), xp.where(x < 0, -large, large))


def erfc(xp, x):
    """The complementary error function ``erfc(x) = 1 − erf(x)``, accurate where it is tiny.

    For large positive ``x``, ``1 − erf(x)`` loses every digit (``erf`` rounds to 1); this keeps
    full relative accuracy down to the underflow threshold. ``erfc(-x) = 2 − erfc(x)``.
    """
    y = xp.abs(x)
    large = _erfc_positive(xp, y)
    return xp.where(y <= _ERF_THRESHOLD, 1.0 - _erf_small(xp, x),
                    xp.where(x < 0, 2.0 - large, large))


# --- windows of convolution and pooling ------------------------------------------------------
# im2col without ``as_strided`` (Chainer's ``utils/conv.py``, in the standard only): the input cell
# under kernel offset ``k`` for every output position is ONE strided slice of the padded input, so
# the K offsets of a kernel give K slices, stacked into one patch array for one matmul. The way
# back (col2im) adds each offset's piece into the same strided slice of a zero canvas through
# ``array_api_extra.at``: in place where the library allows it, functional on immutable arrays
# (JAX). Python loops run over the kernel's offsets only, never over the batch or the positions.
#
# These work on the batch-last layout ``(C, *spatial, N)`` (`to_batch_last`): a window slice then
# moves whole runs of ``out_width · N`` contiguous values instead of rows of ``out_width``, which
# is what makes a strided slice cheap, and a convolution's patches ``(C·K, positions · N)`` meet
# its weight in ONE matrix product per group. Layers take and return the usual ``(N, C, ...)``
# arrays: `from_batch_last` is a view of the same memory where the library makes views.


def to_batch_last(xp, x):
    """``(N, C, *spatial)`` → ``(C, *spatial, N)`` (``permute_dims``: a view on NumPy/torch)."""
    return xp.permute_dims(x, (*range(1, x.ndim), 0))


def from_batch_last(xp, x):
    """``(C, *spatial, N)`` → ``(N, C, *spatial)``, the inverse of `to_batch_last`."""
    return xp.permute_dims(x, (x.ndim - 1, *range(x.ndim - 1)))


def window_output_size(size, kernel, stride=1, dilation=1, padding=(0, 0)):
    """Window positions along an axis of ``size`` cells padded by ``padding = (lo, hi)``:
    ``⌊(size + lo + hi − d(k − 1) − 1) / s⌋ + 1`` (below 1: the kernel does not fit)."""
    lo, hi = padding
    return (size + lo + hi - dilation * (kernel - 1) - 1) // stride + 1


def window_slices(kernel, stride, dilation, out_sizes):
    """One index tuple per kernel offset, in row-major order (the order of a weight's trailing
    axes), picking from a padded batch-last ``(C, *spatial, N)`` array the cell under that offset
    for every output position: ``x[:, i·d : i·d + s·(o − 1) + 1 : s, :]`` along each spatial
    axis."""
    per_axis = [[slice(i * d, i * d + s * (o - 1) + 1, s) for i in range(k)]
                for k, s, d, o in zip(kernel, stride, dilation, out_sizes)]
    return [(slice(None), *combo, slice(None)) for combo in itertools.product(*per_axis)]


def pad_spatial(xp, x, padding, value=0.0):
    """Batch-last ``x`` (``(C, *spatial, N)``) with ``padding[i] = (lo, hi)`` cells of ``value``
    added along spatial axis ``i`` (``x`` itself when there is nothing to add)."""
    if not any(lo or hi for lo, hi in padding):
        return x
    return xpx.pad(x, [(0, 0), *padding, (0, 0)], constant_values=value, xp=xp)


def crop_spatial(x, padding):
    """The inverse of `pad_spatial`: the cells of ``x`` that are not padding (a view)."""
    if not any(lo or hi for lo, hi in padding):
        return x
    return x[(slice(None),
              *(slice(lo, x.shape[1 + i] - hi) for i, (lo, hi) in enumerate(padding)),
              slice(None))]


def gather_windows(xp, x_padded, slices):
    """im2col: ``(C, K, *out, N)`` from the batch-last ``x_padded``, entry ``[c, k, p, n]`` the
    input cell under kernel offset ``k`` of output position ``p`` (``slices`` from
    `window_slices`)."""
    return xp.stack([x_padded[s] for s in slices], axis=1)


def scatter_windows(xp, pieces, padded_shape, slices, like):
    """col2im, the adjoint of `gather_windows`: a zero batch-last array of ``padded_shape`` to
    which each ``pieces[k]`` (shaped ``(C, *out, N)``, one per offset) is added at the cells that
    offset covers, so a cell shared by overlapping windows gets the sum. ``like`` gives dtype
    and device.

    Where arrays can be written (NumPy, torch, CuPy, array-api-strict) each piece is added into
    its strided slice of the canvas (``array_api_extra.at``, in place). Immutable arrays (JAX)
    would make that a scatter per offset, slow outside ``jit``: there each piece is spread to
    the canvas's shape instead (zeros interleaved for a stride, zeros padded around) and the
    pieces are summed."""
    out = xp.zeros(padded_shape, dtype=like.dtype, device=device_of(like))
    if is_writeable_array(out):
        for piece, s in zip(pieces, slices):
            out = xpx.at(out, s).add(piece, xp=xp)
        return out
    for piece, s in zip(pieces, slices):
        out = out + _spread(xp, piece, s, padded_shape)
    return out


def _spread(xp, piece, index, shape):
    """A zero array of ``shape`` holding ``piece`` at the strided slice ``index``, built without
    writing into any array: (step − 1) zeros interleaved along each strided axis, then padding."""
    widths = [(0, 0)]
    for axis, s in enumerate(index[1:-1], start=1):
        n = piece.shape[axis]
        if s.step > 1 and n > 1:
            zeros = xp.zeros_like(piece)
            piece = xp.stack([piece] + [zeros] * (s.step - 1), axis=axis + 1)
            piece = xp.reshape(piece, (*piece.shape[:axis], n * s.step, *piece.shape[axis + 2:]))
            piece = piece[(slice(None),) * axis + (slice(0, (n - 1) * s.step + 1),)]
        widths.append((s.start, shape[axis] - s.start - piece.shape[axis]))
    widths.append((0, 0))
    return xpx.pad(piece, widths, xp=xp)
