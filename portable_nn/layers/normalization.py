"""Normalisation layers: `BatchNorm` (per channel, over the batch) and `LayerNorm` (per sample,
over its trailing axes)."""

from __future__ import annotations

import math

from array_api_compat import device as _device
from array_api_compat import is_array_api_obj

from .. import initializers
from .base import Layer, _positive_int

__all__ = ["BatchNorm", "LayerNorm"]


def _eps(eps):
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"eps must be a number, got {type(eps).__name__} {eps!r}")
    if not (math.isfinite(eps) and eps > 0.0):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    return float(eps)


def _check_array(layer, x):
    layer._require_built()
    if not is_array_api_obj(x):
        raise TypeError(f"{type(layer).__name__}.forward expects an array of the layer's backend, "
                        f"got {type(x).__name__}; convert it with layer.backend.asarray(x)")


class BatchNorm(Layer):
    """Batch normalisation (Ioffe & Szegedy 2015) of each feature (channel) over the batch, as
    PyTorch's ``BatchNorm1d``/``BatchNorm2d``: input ``(n, C)``, ``(n, C, L)`` or ``(n, C, H, W)``
    with ``C = features``; the statistics of channel ``c`` run over every other axis, ``m``
    values per channel (``m = n``, ``n·L`` or ``n·H·W``).

    Forward, training: with the batch statistics ``μ = mean x`` and ``σ² = mean (x − μ)²``
    (biased) of each channel, ``x̂ = (x − μ) / √(σ² + ε)`` and ``y = γ ⊙ x̂ + β``. The running
    statistics move towards the batch's: ``running_mean ← m_o · running_mean + (1 − m_o) μ`` and
    ``running_var ← m_o · running_var + (1 − m_o) σ² m/(m − 1)`` (unbiased, as PyTorch), ``m_o`` the
    ``momentum`` (Keras's convention: PyTorch's ``momentum`` is ``1 − m_o``). Inference: the same
    with the running statistics in place of ``μ, σ²``.

    Local gradient, ``g = dL/dy``, sums ``Σ`` over the ``m`` values of a channel,
    ``s = √(σ² + ε)``:

    - ``dL/dβ = Σ g``,  ``dL/dγ = Σ g ⊙ x̂``
    - training (``μ, σ²`` depend on ``x``):
      ``dL/dx = (γ / s) / m ⊙ (m g − Σ g − x̂ ⊙ Σ g x̂)``
    - inference (constants): ``dL/dx = g ⊙ γ / s``

    Synchronized (``portable_nn.distributed.sync_batchnorm(model, comm)``): ``sync`` sums arrays
    over every process of a data-parallel job, and the statistics ``μ, σ²`` and the sums of the
    input gradient then run over the whole global batch (``m`` counts every process's values),
    as PyTorch's SyncBatchNorm; by default each process uses its own batch. The layer only calls
    the function; it knows nothing of processes.

    A frozen BatchNorm (``trainable = False``) runs in inference mode, on its running
    statistics, also in training (Keras's rule): its buffers stay as they are.

    ``gamma`` (ones) and ``beta`` (zeros) are parameters (a frozen one, ``trainable=False``, gets
    no gradient); ``running_mean`` (zeros) and ``running_var`` (ones) are buffers: saved in
    checkpoints, moved by ``to``, never optimised. ``nonnegative_state`` names the state that
    must never be negative (a variance): a checkpoint holding a negative value there is refused.
    """

    #: state entries that must hold no negative value (checked when a checkpoint is read)
    nonnegative_state = ("running_var",)

    def __init__(self, features, momentum=0.9, eps=1e-5):
        super().__init__()
        self.features = _positive_int(features, "features")
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)):
            raise TypeError(f"momentum must be a number, got {type(momentum).__name__} "
                            f"{momentum!r}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.eps = _eps(eps)
        self.momentum = float(momentum)
        #: ``None``, or ``sync(list of arrays) -> their sums over every process`` (set by
        #: ``portable_nn.distributed.sync_batchnorm``; not part of the configuration)
        self.sync = None
        self._cache_xhat = None
        self._cache_inv_std = None
        self._cache_training = None
        self._cache_count = None

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

    def _check_input(self, x):
        _check_array(self, x)
        if x.ndim not in (2, 3, 4) or x.shape[1] != self.features:
            c = self.features
            raise ValueError(
                f"BatchNorm({c}) expects input of shape (batch, {c}), (batch, {c}, length) or "
                f"(batch, {c}, height, width), got {tuple(x.shape)}")

    def forward(self, x, training=False):
        self._check_input(x)
        xp = self.xp
        axes = (0, *range(2, x.ndim))  # every axis but the channels'
        shape = (self.features,) + (1,) * (x.ndim - 2)  # a channel vector broadcast against x
        training = training and self.trainable  # frozen, it runs on its running statistics (Keras)
        if training:
            m = math.prod(x.shape) // self.features
            if m < 2:
                raise ValueError(
                    f"BatchNorm in training needs at least 2 samples per channel (batch size "
                    f"times length or height·width) to estimate the variance, got input of shape "
                    f"{tuple(x.shape)}")
            if self.sync is None:
                mean = xp.mean(x, axis=axes, keepdims=True)
                xc = x - mean
                var = xp.mean(xc * xc, axis=axes, keepdims=True)
            else:  # the global batch's statistics, in two passes (stable as the local ones)
                total, count = self.sync([xp.sum(x, axis=axes, keepdims=True),
                                          xp.full((1,), float(m), dtype=x.dtype,
                                                  device=_device(x))])
                m = round(float(count[0]))
                mean = total / float(m)
                xc = x - mean
                (var,) = self.sync([xp.sum(xc * xc, axis=axes, keepdims=True)])
                var = var / float(m)
            self._cache_count = m
            inv_std = 1.0 / xp.sqrt(var + self.eps)
            xhat = xc * inv_std
            mo = self.momentum
            # functional updates: the buffers are small, and snapshots must never see them change
            self.set_buffer("running_mean", mo * self._buffers["running_mean"]
                            + (1.0 - mo) * xp.reshape(mean, (self.features,)))
            self.set_buffer("running_var", mo * self._buffers["running_var"]
                            + ((1.0 - mo) * m / (m - 1)) * xp.reshape(var, (self.features,)))
        else:
            inv_std = xp.reshape(1.0 / xp.sqrt(self._buffers["running_var"] + self.eps), shape)
            xhat = (x - xp.reshape(self._buffers["running_mean"], shape)) * inv_std
        self._cache_xhat = xhat
        self._cache_inv_std = inv_std
        self._cache_training = bool(training)
        return xp.reshape(self.gamma.value, shape) * xhat + xp.reshape(self.beta.value, shape)

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
        axes = (0, *range(2, xhat.ndim))
        shape = (self.features,) + (1,) * (xhat.ndim - 2)
        need_sums = need_input_grad and self._cache_training
        sum_g = sum_gx = None
        if self.beta.trainable or need_sums:
            sum_g = xp.sum(grad_out, axis=axes)
        if self.gamma.trainable or need_sums:
            sum_gx = xp.sum(grad_out * xhat, axis=axes)
        self.beta.grad = sum_g if self.beta.trainable else None
        self.gamma.grad = sum_gx if self.gamma.trainable else None
        if not need_input_grad:
            return None
        scale = xp.reshape(self.gamma.value, shape) * self._cache_inv_std
        if not self._cache_training:
            return grad_out * scale
        m = self._cache_count
        if self.sync is not None:  # the sums over the global batch (the grads above stay local)
            sum_g, sum_gx = self.sync([sum_g, sum_gx])
        return (scale * (1.0 / m)) * (m * grad_out - xp.reshape(sum_g, shape)
                                      - xhat * xp.reshape(sum_gx, shape))

    def get_config(self):
        return {"features": self.features, "momentum": self.momentum, "eps": self.eps}


class LayerNorm(Layer):
    """Layer normalisation (Ba, Kiros & Hinton 2016), as ``torch.nn.LayerNorm``: each sample is
    normalised over its trailing ``normalized_shape`` axes (``k`` values), with no running
    statistics, identically in training and inference.

    Forward: ``μ = mean x``, ``σ² = mean (x − μ)²`` (biased) over those axes,
    ``x̂ = (x − μ) / √(σ² + ε)``, ``y = w ⊙ x̂ + b`` with ``w``, ``b`` of shape
    ``normalized_shape``.

    Local gradient, ``g = dL/dy``, ``Σ_k`` over the normalised axes, ``Σ_n`` over the others,
    ``s = √(σ² + ε)``, ``ĝ = g ⊙ w``:

    - ``dL/db = Σ_n g``,  ``dL/dw = Σ_n g ⊙ x̂``
    - ``dL/dx = (1 / s) / k ⊙ (k ĝ − Σ_k ĝ − x̂ ⊙ Σ_k ĝ x̂)``

    ``weight`` (ones) and ``bias`` (zeros) are parameters; a frozen one (``trainable=False``)
    gets no gradient.
    """

    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        if isinstance(normalized_shape, (list, tuple)):
            if not normalized_shape:
                raise ValueError("normalized_shape must name at least one axis, got ()")
            shape = tuple(_positive_int(n, "normalized_shape") for n in normalized_shape)
        elif isinstance(normalized_shape, int) and not isinstance(normalized_shape, bool):
            shape = (_positive_int(normalized_shape, "normalized_shape"),)
        else:
            raise TypeError(f"normalized_shape must be an int or a tuple of ints, got "
                            f"{type(normalized_shape).__name__} {normalized_shape!r}")
        self.normalized_shape = shape
        self.eps = _eps(eps)
        self._cache_xhat = None
        self._cache_inv_std = None

    def state_shapes(self):
        return {"weight": self.normalized_shape, "bias": self.normalized_shape}

    def _build(self, rng):
        self.add_parameter("weight", initializers.Ones()(self.normalized_shape, rng))
        self.add_parameter("bias", initializers.Zeros()(self.normalized_shape, rng))

    def forward(self, x, training=False):
        _check_array(self, x)
        k = len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise ValueError(
                f"LayerNorm({self.normalized_shape}) expects input of shape (..., "
                f"{', '.join(map(str, self.normalized_shape))}), got {tuple(x.shape)}")
        xp = self.xp
        axes = tuple(range(x.ndim - k, x.ndim))
        mean = xp.mean(x, axis=axes, keepdims=True)
        xc = x - mean
        inv_std = 1.0 / xp.sqrt(xp.mean(xc * xc, axis=axes, keepdims=True) + self.eps)
        xhat = xc * inv_std
        self._cache_xhat = xhat
        self._cache_inv_std = inv_std
        return self.weight.value * xhat + self.bias.value

    def backward(self, grad_out, need_input_grad=True):
        xhat = self._cache_xhat
        if xhat is None:
            raise self._no_cache()
        if tuple(grad_out.shape) != tuple(xhat.shape):
            raise ValueError(f"LayerNorm.backward expects grad_out of shape "
                             f"{tuple(xhat.shape)}, got {tuple(grad_out.shape)}")
        xp = self.xp
        k = len(self.normalized_shape)
        batch_axes = tuple(range(xhat.ndim - k))
        w, b = self.weight, self.bias

        def batch_sum(a):  # an input of exactly normalized_shape has no batch axis to sum
            return xp.sum(a, axis=batch_axes) if batch_axes else a

        b.grad = batch_sum(grad_out) if b.trainable else None
        w.grad = batch_sum(grad_out * xhat) if w.trainable else None
        if not need_input_grad:
            return None
        axes = tuple(range(xhat.ndim - k, xhat.ndim))
        n = math.prod(self.normalized_shape)
        gh = grad_out * w.value
        return (self._cache_inv_std * (1.0 / n)) * (
            n * gh - xp.sum(gh, axis=axes, keepdims=True)
            - xhat * xp.sum(gh * xhat, axis=axes, keepdims=True))

    def output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {"normalized_shape": list(self.normalized_shape), "eps": self.eps}
