"""The bar: an MLP written by hand in NumPy (or CuPy, the same code), as a careful person would.

The same math as portable_nn's ``Dense``/``ReLU``/loss/optimizer chain, with everything that a
hand-written loop can do and a general library cannot easily do:

- every intermediate array (activations, gradients, parameter gradients, optimizer moments and
  temporaries) is allocated once per batch size and then written with ``out=``;
- softmax cross-entropy from logits is computed in the logits' buffer and turned into the gradient
  ``(softmax(z) - onehot(t)) / n`` in place;
- the ReLU derivative reuses the layer's output (``y > 0``) and is applied in place;
- SGD and Adam (PyTorch's formula: ``eps`` added to ``sqrt(v_hat)``) update in place, and use the
  gradient buffers as scratch (``g *= -lr``, ``g *= g``): a library must leave ``p.grad`` intact.

``xp`` is the raw ``numpy`` or ``cupy`` module: both accept ``out=`` with these calls.
``GemmBound`` is the floor: only the matrix products of one training step.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np


def init_weights(sizes, seed, dtype="float32"):
    """Glorot-uniform weights and zero biases for ``sizes = [784, 256, 128, 10]`` (host NumPy)."""
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for k, m in pairwise(sizes):
        a = math.sqrt(6.0 / (k + m))
        weights.append(rng.uniform(-a, a, size=(k, m)).astype(dtype))
        biases.append(np.zeros(m, dtype=dtype))
    return weights, biases


class ReferenceMLP:
    """``sizes[0] -> ReLU hidden layers -> sizes[-1]`` logits, trained one batch per ``step``.

    ``loss``: ``"cross_entropy"`` (integer labels, softmax fused, mean over the batch) or ``"mse"``
    (mean over every element). ``optimizer``: ``"sgd"`` (``W -= lr dW``) or ``"adam"``.
    """

    def __init__(self, sizes, xp=np, dtype="float32", seed=0, loss="cross_entropy",
                 optimizer="sgd", lr=0.01, betas=(0.9, 0.999), eps=1e-8):
        if loss not in ("cross_entropy", "mse"):
            raise ValueError(f"loss must be 'cross_entropy' or 'mse', got {loss!r}")
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
        self.xp, self.sizes, self.loss, self.optimizer = xp, list(sizes), loss, optimizer
        self.dtype = np.dtype(dtype)
        self.lr, self.beta1, self.beta2, self.eps = float(lr), *map(float, betas), float(eps)
        w, b = init_weights(sizes, seed, dtype)
        self.params = [xp.asarray(a) for pair in zip(w, b) for a in pair]  # W0, b0, W1, b1, ...
        self.grads = [xp.empty_like(p) for p in self.params]
        if optimizer == "adam":
            self.m = [xp.zeros_like(p) for p in self.params]
            self.v = [xp.zeros_like(p) for p in self.params]
            self.tmp = [xp.empty_like(p) for p in self.params]
            self.t = 0
        self._n = None

    def _buffers(self, n):
        """Activations ``z[i]`` (n, sizes[i+1]) and input gradients ``g[i]`` (n, sizes[i+1])."""
        xp = self.xp
        self._n = n
        self.z = [xp.empty((n, m), dtype=self.dtype) for m in self.sizes[1:]]
        self.gin = [xp.empty((n, m), dtype=self.dtype) for m in self.sizes[1:-1]]
        self.rows = xp.arange(n)

    def forward(self, x):
        """Logits for ``x`` (written into this object's buffers: valid until the next call)."""
        xp = self.xp
        if x.shape[0] != self._n:
            self._buffers(x.shape[0])
        h = x
        last = len(self.z) - 1
        for i, z in enumerate(self.z):
            xp.matmul(h, self.params[2 * i], out=z)
            z += self.params[2 * i + 1]
            if i < last:
                xp.maximum(z, 0, out=z)
            h = z
        return h

    def _loss_and_grad(self, z, target):
        """Loss value (0-d array, left on the device) and dL/dz written over ``z``."""
        xp = self.xp
        n = z.shape[0]
        if self.loss == "mse":
            z -= target
            value = xp.vdot(z, z) * (1.0 / z.size)
            z *= 2.0 / z.size
            return value
        z -= z.max(axis=1, keepdims=True)
        picked = z[self.rows, target]
        xp.exp(z, out=z)
        s = z.sum(axis=1, keepdims=True)
        value = (xp.log(s).sum() - picked.sum()) * (1.0 / n)
        z *= 1.0 / n / s
        z[self.rows, target] -= 1.0 / n
        return value

    def step(self, x, target):
        """One SGD/Adam step on the batch ``(x, target)``; returns the loss as a 0-d array."""
        xp = self.xp
        z = self.forward(x)
        value = self._loss_and_grad(z, target)
        g = z
        for i in range(len(self.z) - 1, -1, -1):
            h = x if i == 0 else self.z[i - 1]
            xp.matmul(h.T, g, out=self.grads[2 * i])
            xp.sum(g, axis=0, out=self.grads[2 * i + 1])
            if i > 0:
                gin = self.gin[i - 1]
                xp.matmul(g, self.params[2 * i].T, out=gin)
                gin *= h > 0  # ReLU: its output h is positive exactly where the slope is 1
                g = gin
        self._update()
        return value

    def _update(self):
        xp = self.xp
        if self.optimizer == "sgd":
            for p, g in zip(self.params, self.grads):
                g *= -self.lr
                p += g
            return
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step = self.lr / (1.0 - b1**self.t)
        inv_bc2 = 1.0 / math.sqrt(1.0 - b2**self.t)
        for p, g, m, v, tmp in zip(self.params, self.grads, self.m, self.v, self.tmp):
            m *= b1
            xp.multiply(g, 1.0 - b1, out=tmp)
            m += tmp
            v *= b2
            g *= g
            g *= 1.0 - b2
            v += g
            xp.sqrt(v, out=tmp)
            tmp *= inv_bc2
            tmp += self.eps
            xp.divide(m, tmp, out=tmp)
            tmp *= step
            p -= tmp


class GemmBound:
    """Only the matrix products of one training step of the same MLP, into preallocated outputs:
    forward ``x W`` per layer, ``dW = x^T g`` per layer, ``dX = g W^T`` for every layer but the
    first. No training library can do a step in less time than this (same BLAS, same threads)."""

    def __init__(self, sizes, n, xp=np, dtype="float32", seed=0):
        self.xp = xp
        w, _ = init_weights(sizes, seed, dtype)
        self.w = [xp.asarray(a) for a in w]
        self.h = [xp.ones((n, k), dtype=dtype) for k in sizes[:-1]]
        self.z = [xp.empty((n, m), dtype=dtype) for m in sizes[1:]]
        self.g = [xp.full((n, m), 0.01, dtype=dtype) for m in sizes[1:]]
        self.gin = [xp.empty((n, k), dtype=dtype) for k in sizes[:-1]]
        self.dw = [xp.empty_like(a) for a in self.w]

    def step(self, x=None, target=None):
        mm = self.xp.matmul
        for i, w in enumerate(self.w):
            mm(self.h[i], w, out=self.z[i])
        for i in range(len(self.w) - 1, -1, -1):
            mm(self.h[i].T, self.g[i], out=self.dw[i])
            if i > 0:
                mm(self.g[i], self.w[i].T, out=self.gin[i])
