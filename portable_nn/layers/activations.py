"""Activation functions as layers; each docstring gives ``y = f(x)`` and ``dy/dx``.

Backward receives ``g = dL/dy`` and returns ``dL/dx = g * f'(x)`` (elementwise), except ``Softmax``
whose Jacobian is full. Every formula is written so that it cannot overflow for any finite input.
"""

from __future__ import annotations

from ..functional import sigmoid, softmax, softplus
from .base import Layer


class _Elementwise(Layer):
    """Caches what its derivative needs (input or output) and checks the gradient's shape."""

    def __init__(self):
        super().__init__()
        self._cache = None

    def _check_backward(self, grad_out):
        if self._cache is None:
            raise self._no_cache()
        if tuple(grad_out.shape) != tuple(self._cache.shape):
            raise ValueError(
                f"{type(self).__name__}.backward expects grad_out of shape "
                f"{tuple(self._cache.shape)}, got {tuple(grad_out.shape)}"
            )


class Identity(_Elementwise):
    """``y = x``;  ``dy/dx = 1``."""

    def forward(self, x, training=False):
        self._cache = x
        return x

    def backward(self, grad_out, need_input_grad=True):
        self._check_backward(grad_out)
        return grad_out


class Step(_Elementwise):
    """Heaviside step: ``y = 1 if x >= 0 else 0``;  ``dy/dx = 0`` everywhere (undefined at 0).

    The perceptron's activation. Its gradient is zero, so a network of steps cannot learn by
    backpropagation: ``backward`` returns zeros, honestly, rather than a surrogate.
    """

    def forward(self, x, training=False):
        self._cache = x
        return self.xp.astype(x >= 0, x.dtype)

    def backward(self, grad_out, need_input_grad=True):
        self._check_backward(grad_out)
        return self.xp.zeros_like(grad_out)


class Sigmoid(_Elementwise):
    """``y = σ(x) = 1 / (1 + e^-x)``;  ``dy/dx = y (1 - y)``."""

    def forward(self, x, training=False):
        y = sigmoid(self.xp, x)
        self._cache = y
        return y

    def backward(self, grad_out, need_input_grad=True):
        self._check_backward(grad_out)
        y = self._cache
        return grad_out * y * (1.0 - y)


class Tanh(_Elementwise):
    """``y = tanh(x)``;  ``dy/dx = 1 - y^2``."""

    def forward(self, x, training=False):
        y = self.xp.tanh(x)
        self._cache = y
        return y

    def backward(self, grad_out, need_input_grad=True):
        self._check_backward(grad_out)
        y = self._cache
        return grad_out * (1.0 - y * y)


class ReLU(_Elementwise):
    """``y = max(x, 0)``;  ``dy/dx = 1 if x > 0 else 0`` (0 at the kink)."""

    def forward(self, x, training=False):
        y = self.backend.ops.relu(x)
        self._cache = y
        return y

    def backward(self, grad_out, need_input_grad=True):
        self._check_backward(grad_out)
        return self.backend.ops.relu_backward(grad_out, self._cache)

    # in a Sequential after a Dense: max(x, 0) written over x, and g ⊙ [y > 0] over g
    owns_input_grad = True

    def forward_inplace(self, x, training=False):
        y = self.backend.ops.relu_inplace(x)
        self._cache = y
        return y

    def backward_inplace(self, grad_out, need_input_grad=True):
        self._check_backward(grad_out)
        return self.backend.ops.relu_backward_inplace(grad_out, self._cache)


class LeakyReLU(_Elementwise):
    """``y = x if x > 0 else αx``;  ``dy/dx = 1 if x > 0 else α``."""

    def __init__(self, alpha=0.01):
        super().__init__()
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha < 1:
            raise ValueError(f"alpha must be a number in [0, 1), got {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, x, training=False):
        self._cache = x
        return self.xp.where(x > 0, x, self.alpha * x)

    def backward(self, grad_out, need_input_grad=True):
        self._check_backward(grad_out)
        return self.xp.where(self._cache > 0, grad_out, self.alpha * grad_out)

    def get_config(self):
        return {"alpha": self.alpha}


class Softplus(_Elementwise):
    """``y = log(1 + e^x)`` (a smooth ReLU);  ``dy/dx = σ(x)``."""

    def forward(self, x, training=False):
        self._cache = x
        return softplus(self.xp, x)

    def backward(self, grad_out, need_input_grad=True):
        self._check_backward(grad_out)
        return grad_out * sigmoid(self.xp, self._cache)


class Softmax(_Elementwise):
    """``y_i = e^{x_i} / Σ_j e^{x_j}`` over each row of a 2-D input.

    Jacobian ``dy_i/dx_j = y_i (δ_ij - y_j)``, so the vector-Jacobian product is
    ``dL/dx = y ⊙ (g - Σ_j g_j y_j)``, computed without forming the (k, k) matrix.
    With ``CrossEntropy`` give the loss the logits instead: it fuses softmax and log stably.
    """

    def forward(self, x, training=False):
        if x.ndim != 2:
            raise ValueError(
                f"Softmax expects a 2-D input of shape (batch, classes), got shape {tuple(x.shape)}"
            )
        y = softmax(self.xp, x)
        self._cache = y
        return y

    def backward(self, grad_out, need_input_grad=True):
        self._check_backward(grad_out)
        y = self._cache
        return y * (grad_out - self.xp.sum(grad_out * y, axis=-1, keepdims=True))
