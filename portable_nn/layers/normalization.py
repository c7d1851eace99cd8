"""`BatchNorm`: batch normalisation over the batch axis of ``(n, features)`` input."""

from __future__ import annotations

import math

from .. import initializers
from .base import Layer, _positive_int

__all__ = ["BatchNorm"]


class BatchNorm(Layer):
    """Batch normalisation (Ioffe & Szegedy 2015) of each feature over the batch.

    Forward, training: with the batch statistics ``μ = mean_i x_i`` and ``σ² = mean_i (x_i − μ)²``
    (biased), ``x̂ = (x − μ) / √(σ² + ε)`` and ``y = γ ⊙ x̂ + β``. The running statistics move
    towards the batch's: ``running_mean ← m · running_mean + (1 − m) μ`` and
    ``running_var ← m · running_var + (1 − m) σ² n/(n − 1)`` (unbiased, as PyTorch), ``m`` the
    ``momentum``. Inference: the same with the running statistics in place of ``μ, σ²``.

    Local gradient, ``g = dL/dy`` of shape (n, features), ``s = √(σ² + ε)``:

    - ``dL/dβ = Σ_i g_i``,  ``dL/dγ = Σ_i g_i ⊙ x̂_i``
    - training (``μ, σ²`` depend on ``x``):
      ``dL/dx = (γ / s) / n ⊙ (n g − Σ_i g_i − x̂ ⊙ Σ_i g_i x̂_i)``
    - inference (constants): ``dL/dx = g ⊙ γ / s``

    ``gamma`` (ones) and ``beta`` (zeros) are parameters; ``running_mean`` (zeros) and
    ``running_var`` (ones) are buffers: saved in checkpoints, moved by ``to``, never optimised.
    """

    def __init__(self, features, momentum=0.9, eps=1e-5):
        super().__init__()
        self.features = _positive_int(features, "features")
        for value, name in ((momentum, "momentum"), (eps, "eps")):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if not (math.isfinite(eps) and eps > 0.0):
            raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
        self.momentum = float(momentum)
        self.eps = float(eps)
        self._cache_xhat = None
        self._cache_inv_std = None
        self._cache_training = None

    def state_shapes(self):
        return dict.fromkeys(("gamma", "beta", "running_mean", "running_var"), (self.features,))

    def _build(self, rng):
        shape = (self.features,)
        self.add_parameter("gamma", initializers.Ones()(shape, rng))
        self.add_parameter("beta", initializers.Zeros()(shape, rng))
        self.set_buffer("running_mean",
                        self.backend.asarray(initializers.Zeros()(shape, rng), dtype=self.dtype))
        self.set_buffer("running_var",
                        self.backend.asarray(initializers.Ones()(shape, rng), dtype=self.dtype))

    def forward(self, x, training=False):
        self._require_built()
        if x.ndim != 2 or x.shape[1] != self.features:
            raise ValueError(
                f"BatchNorm({self.features}) expects input of shape (batch, {self.features}), "
                f"got {tuple(x.shape)}"
            )
        xp = self.xp
        if training:
            n = x.shape[0]
            if n < 2:
                raise ValueError(
                    f"BatchNorm in training needs a batch of at least 2 samples to estimate the "
                    f"variance, got input of shape {tuple(x.shape)}"
                )
            mean = xp.mean(x, axis=0)
            xc = x - mean
            var = xp.mean(xc * xc, axis=0)
            inv_std = 1.0 / xp.sqrt(var + self.eps)
            xhat = xc * inv_std
            m = self.momentum
            # functional updates: the buffers are small, and snapshots must never see them change
            self.set_buffer("running_mean", m * self._buffers["running_mean"] + (1.0 - m) * mean)
            self.set_buffer("running_var",
                            m * self._buffers["running_var"] + ((1.0 - m) * n / (n - 1)) * var)
        else:
            inv_std = 1.0 / xp.sqrt(self._buffers["running_var"] + self.eps)
            xhat = (x - self._buffers["running_mean"]) * inv_std
        self._cache_xhat = xhat
        self._cache_inv_std = inv_std
        self._cache_training = bool(training)
        return self.gamma.value * xhat + self.beta.value

    def backward(self, grad_out, need_input_grad=True):
        xhat = self._cache_xhat
        if xhat is None:
            raise self._no_cache()
        if tuple(grad_out.shape) != tuple(xhat.shape):
            raise ValueError(
                f"BatchNorm.backward expects grad_out of shape {tuple(xhat.shape)}, got "
                f"{tuple(grad_out.shape)}"
            )
        xp = self.xp
        sum_g = xp.sum(grad_out, axis=0)
        sum_gx = xp.sum(grad_out * xhat, axis=0)
        self.beta.grad = sum_g
        self.gamma.grad = sum_gx
        if not need_input_grad:
            return None
        scale = self.gamma.value * self._cache_inv_std
        if not self._cache_training:
            return grad_out * scale
        n = xhat.shape[0]
        return (scale * (1.0 / n)) * (n * grad_out - sum_g - xhat * sum_gx)

    def get_config(self):
        return {"features": self.features, "momentum": self.momentum, "eps": self.eps}
