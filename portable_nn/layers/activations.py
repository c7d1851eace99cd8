"""Activation functions as layers; each docstring gives ``y = f(x)`` and ``dy/dx``.

Backward receives ``g = dL/dy`` and returns ``dL/dx = g * f'(x)`` (elementwise), except ``Softmax``
whose Jacobian is full. Every formula is written so that it cannot overflow for any finite input.
"""

from __future__ import annotations

import math

from array_api_compat import is_array_api_obj

from ..functional import erfc, sigmoid, softmax, softplus
from .base import Layer

__all__ = ["ELU", "GELU", "Identity", "LeakyReLU", "ReLU", "SiLU", "Sigmoid", "Softmax",
           "Softplus", "Step", "Tanh"]


class _Elementwise(Layer):
    """Caches what its derivative needs (input or output) and checks the gradient's shape."""

    def __init__(self):
        super().__init__()
        self._cache = None

    def _check_input(self, x):
        """Built, and given an array: else a RuntimeError / TypeError, not an AttributeError
        from deep inside the formula."""
        if self.backend is None:
            self._require_built()
        if not is_array_api_obj(x):
            raise TypeError(
                f"{type(self).__name__}.forward expects an array of the layer's backend, got "
                f"{type(x).__name__}; convert it with layer.backend.asarray(x)")

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
        self._check_input(x)
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
        self._check_input(x)
        self._cache = x
        return self.xp.astype(x >= 0, x.dtype)

    def backward(self, grad_out, need_input_grad=True):
        self._check_backward(grad_out)
        return self.xp.zeros_like(grad_out)


class Sigmoid(_Elementwise):
    """``y = σ(x) = 1 / (1 + e^-x)``;  ``dy/dx = y (1 - y)``."""

    def forward(self, x, training=False):
        self._check_input(x)
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
        self._check_input(x)
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
        self._check_input(x)
        y = self.backend.ops.relu(x)
        self._cache = y
        return y

    def backward(self, grad_out, need_input_grad=True):
        self._check_backward(grad_out)
        return self.backend.ops.relu_backward(grad_out, self._cache)

    # in a Sequential after a Dense: max(x, 0) written over x, and g ⊙ [y > 0] over g
    owns_input_grad = True

    def forward_inplace(self, x, training=False):
        self._check_input(x)
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
        self._check_input(x)
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
        self._check_input(x)
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
        self._check_input(x)
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


_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_SCALE = math.sqrt(2.0 / math.pi)
_TANH_CUBIC = 0.044715
# beyond ±40 the Gaussian density e^{-x²/2} is 0 and beyond ±30 the tanh form's σ(±2u) is 0 or 1
# exactly, in float32 and float64: clamping there changes no result and keeps x², x³ finite
_GELU_CLAMP = 40.0
_GELU_TANH_CLAMP = 30.0


class GELU(_Elementwise):
    """Gaussian error linear unit (Hendrycks & Gimpel 2016), as ``torch.nn.GELU``.

    ``approximate="none"``: ``y = x Φ(x) = ½ x (1 + erf(x/√2))``, with ``Φ`` the standard normal
    distribution function;  ``dy/dx = Φ(x) + x φ(x)``, ``φ(x) = e^{−x²/2} / √(2π)``.

    ``approximate="tanh"``: ``y = ½ x (1 + tanh u)``, ``u = √(2/π) (x + 0.044715 x³)``;
    ``dy/dx = ½ (1 + tanh u) + ½ x (1 − tanh² u) √(2/π) (1 + 3 · 0.044715 x²)``.

    Computed stably: ``Φ(x) = ½ erfc(−x/√2)`` (``functional.erfc``, accurate also where ``Φ`` is
    tiny), ``½ (1 + tanh u) = σ(2u)`` and ``½ (1 − tanh² u) = 2 σ(2u) σ(−2u)`` (no cancellation
    in ``1 + tanh u`` for ``x ≪ 0``), and ``x²``, ``x³`` of ``x`` clamped where the factors they
    enter are already exactly 0 or 1, so nothing overflows for any finite input.
    """

    def __init__(self, approximate="none"):
        super().__init__()
        if not isinstance(approximate, str):
            raise TypeError(f"approximate must be 'none' or 'tanh', got "
                            f"{type(approximate).__name__} {approximate!r}")
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def _tanh_parts(self, x):
        """``(2u, x²)`` of the tanh form, of ``x`` clamped."""
        xp = self.xp
        xc = xp.maximum(xp.minimum(x, _GELU_TANH_CLAMP), -_GELU_TANH_CLAMP)
        x2 = xc * xc
        return (2.0 * _TANH_SCALE) * xc * (1.0 + _TANH_CUBIC * x2), x2

    def forward(self, x, training=False):
        self._check_input(x)
        self._cache = x
        if self.approximate == "tanh":
            return x * sigmoid(self.xp, self._tanh_parts(x)[0])
        return x * (0.5 * erfc(self.xp, x * -_SQRT_HALF))

    def backward(self, grad_out, need_input_grad=True):
        self._check_backward(grad_out)
        x, xp = self._cache, self.xp
        if self.approximate == "tanh":
            two_u, x2 = self._tanh_parts(x)
            s = sigmoid(xp, two_u)
            du = _TANH_SCALE * (1.0 + (3.0 * _TANH_CUBIC) * x2)
            # σ(2u) σ(−2u) first: exactly 0 wherever x is large enough to overflow a product
            return grad_out * (s + s * sigmoid(xp, -two_u) * (2.0 * du) * x)
        xc = xp.maximum(xp.minimum(x, _GELU_CLAMP), -_GELU_CLAMP)
        density = _INV_SQRT_2PI * xp.exp(-0.5 * xc * xc)
        return grad_out * (0.5 * erfc(xp, x * -_SQRT_HALF) + xc * density)

    def get_config(self):
        return {"approximate": self.approximate}


class ELU(_Elementwise):
    """Exponential linear unit (Clevert et al. 2016), as ``torch.nn.ELU``.

    ``y = x if x > 0 else α (e^x − 1)``;  ``dy/dx = 1 if x > 0 else α e^x`` (``α`` at the kink,
    as PyTorch). ``e^x − 1`` is ``expm1`` of ``min(x, 0)``: exact near 0, never overflowing.
    """

    def __init__(self, alpha=1.0):
        super().__init__()
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise TypeError(f"alpha must be a number, got {type(alpha).__name__} {alpha!r}")
        if not (math.isfinite(alpha) and alpha >= 0.0):
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, x, training=False):
        self._check_input(x)
        self._cache = x
        xp = self.xp
        return xp.where(x > 0, x, self.alpha * xp.expm1(xp.minimum(x, 0.0)))

    def backward(self, grad_out, need_input_grad=True):
        self._check_backward(grad_out)
        x, xp = self._cache, self.xp
        return xp.where(x > 0, grad_out, grad_out * (self.alpha * xp.exp(xp.minimum(x, 0.0))))

    def get_config(self):
        return {"alpha": self.alpha}


class SiLU(_Elementwise):
    """Sigmoid linear unit, or swish (Elfwing et al. 2018; Ramachandran et al. 2017).

    ``y = x σ(x)``;  ``dy/dx = σ(x) (1 + x (1 − σ(x))) = σ(x) + x σ(x) σ(−x)``, with ``1 − σ(x)``
    taken as ``σ(−x)`` so that it keeps its digits for ``x ≫ 0``.
    """

    def forward(self, x, training=False):
        self._check_input(x)
        self._cache = x
        return x * sigmoid(self.xp, x)

    def backward(self, grad_out, need_input_grad=True):
        self._check_backward(grad_out)
        x, xp = self._cache, self.xp
        s = sigmoid(xp, x)
        return grad_out * (s + x * s * sigmoid(xp, -x))
