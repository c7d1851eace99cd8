"""JAX arrays (CPU or CUDA): immutable arrays, so the library's generic, functional path runs end
to end (no fast path writes into a JAX array).

float64 needs JAX's 64-bit mode (``jax.config.update("jax_enable_x64", True)`` before any array is
made): without it JAX silently computes float64 requests in float32, so a float64 model on JAX
is refused with an error that says how to enable it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .base import Backend, DeviceRNG


class JaxRNG(DeviceRNG):
    """JAX's counter-based generator behind the stateful interface: every draw splits the key."""

    def __init__(self, backend, seed=None):
        self.backend = backend
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        seed = int(seed)
        with backend.device_context():
            # a key takes 32 bits (64 in x64 mode); seeds up to 2**64 fold their high half in
            key = jax.random.key(seed & 0xFFFFFFFF)
            self._key = jax.random.fold_in(key, (seed >> 32) & 0xFFFFFFFF) if seed >> 32 else key

    def _next(self):
        self._key, sub = jax.random.split(self._key)
        return sub

    def uniform(self, shape, low=0.0, high=1.0, dtype="float32"):
        with self.backend.device_context():
            return jax.random.uniform(self._next(), tuple(shape), dtype=self.backend.dtype(dtype),
                                      minval=low, maxval=high)

    def normal(self, shape, mean=0.0, std=1.0, dtype="float32"):
        with self.backend.device_context():
            z = jax.random.normal(self._next(), tuple(shape), dtype=self.backend.dtype(dtype))
        return z if (mean, std) == (0.0, 1.0) else z * std + mean

    def bernoulli(self, shape, p, dtype="float32"):
        return jnp.astype(self.uniform(shape, dtype=dtype) < p, self.backend.dtype(dtype))


def _device(target):
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> the JAX device object."""
    head, _, index = target.partition(":")
    platform = "gpu" if head == "cuda" else "cpu"
    return jax.devices(platform)[int(index) if index else 0]


class JaxBackend(Backend):
    name = "jax"

    def __init__(self, target="cpu"):
        dev = _device(target)
        suffix = "cpu" if dev.platform == "cpu" else f"cuda:{dev.id}"
        super().__init__(jnp, dev, f"jax:{suffix}")

    def dtype(self, dtype):
        if (isinstance(dtype, str) and dtype == "float64" or dtype is jnp.float64) and \
                not jax.config.jax_enable_x64:
            raise ValueError(
                "dtype 'float64' on JAX needs its 64-bit mode, which is off: call "
                'jax.config.update("jax_enable_x64", True) at the start of the program (or set '
                "JAX_ENABLE_X64=1), or use dtype='float32'"
            )
        return super().dtype(dtype)

    def owns(self, x):
        return isinstance(x, jax.Array) and getattr(x, "device", None) == self.device

    def _from_host(self, arr, dtype):
        return jax.device_put(np.asarray(arr, dtype=None if dtype is None else np.dtype(dtype)),
                              self.device)

    def asarray(self, x, dtype=None):
        if isinstance(x, jax.Array) and not self.owns(x):
            x = jax.device_put(x, self.device)
        return super().asarray(x, dtype)

    def to_numpy(self, x):
        # np.asarray would give a read-only view of JAX's buffer; host arrays must be writeable
        # (other libraries wrap them without copying and may update them in place)
        return np.array(x)

    def device_context(self):
        return jax.default_device(self.device)

    def rng(self, seed=None):
        return JaxRNG(self, seed)

    def synchronize(self):
        # JAX dispatches asynchronously; work queued on one device runs in order, so waiting for
        # a new trivial computation there waits for what was queued before it
        jax.device_put(0.0, self.device).block_until_ready()

    def describe(self):
        kind = getattr(self.device, "device_kind", self.device.platform)
        return f"{self.device_string} ({kind})"
