"""Pure array functions shared by layers and losses, as ``torch.nn.functional``.

Each takes the array namespace ``xp`` first and works on arrays of any Array API library: nothing
here keeps state, writes into its arguments or imports an array library. Layers call these for
their forward passes and losses for theirs, so that ``losses`` never imports ``layers``.
"""

from __future__ import annotations

__all__ = ["log_softmax", "sigmoid", "softmax", "softplus"]


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
