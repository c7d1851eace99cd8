"""`Dropout` (inverted dropout) and Monte Carlo dropout prediction."""

from __future__ import annotations

from array_api_compat import is_array_api_obj

from ..backends import check_array
from .base import Layer, _positive_int

__all__ = ["Dropout", "mc_dropout_predict"]


class Dropout(Layer):
    """Inverted dropout (Srivastava et al. 2014): in training each unit is kept with probability
    ``1 − p`` and the kept ones are scaled by ``1 / (1 − p)``, so the expected activation is
    unchanged and inference is the identity.

    Forward (training): ``y = x ⊙ m / (1 − p)`` with each ``m_i ~ Bernoulli(1 − p)`` drawn fresh
    per call, ``m`` of the shape of ``x`` (any rank: each element is dropped on its own, as
    ``torch.nn.Dropout``); (inference, or ``p = 0``): ``y = x``.

    Local gradient: ``dL/dx = g ⊙ m / (1 − p)`` with the same mask as the forward pass (the
    gradient flows only through the kept units); ``g`` unchanged at inference.

    The mask is drawn on the model's device by the backend's own generator. Its stream is
    counter-based: the ``k``-th mask comes from a generator seeded with ``(seed, k)``, ``seed``
    drawn at build time from the model's host generator. So a model seed fixes the masks,
    ``fit(seed=...)`` restarts them (``reseed``), and the whole state is two integers
    (``rng_state()``), which checkpoints carry: a loaded model goes on with the masks an
    uninterrupted one would have drawn. A move to another device keeps the stream.
    """

    def __init__(self, p=0.5):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ValueError(f"p (the drop probability) must be a number in [0, 1), got {p!r}")
        self.p = float(p)
        self._seed = None
        self._calls = 0
        self._mc = False  # on in Monte Carlo dropout: masks drawn in inference mode too
        self._cache_mask = None
        self._cache_shape = None

    def state_shapes(self):
        return {}  # only a generator's seed and count, no arrays

    def _build(self, rng):
        self._seed = int(rng.integers(2**31))
        self._calls = 0

    def reseed(self, seed):
        """Restart the masks' stream from ``seed`` (a non-negative int below 2**31)."""
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
            raise ValueError(f"seed must be an int in [0, 2**31), got {seed!r}")
        self._seed, self._calls = seed, 0

    def rng_state(self):
        """``{"seed", "calls"}``: where the stream of masks stands (JSON-able)."""
        return {"seed": self._seed, "calls": self._calls}

    def set_rng_state(self, state):
        """Go on from ``rng_state()`` output; a malformed one is a ValueError."""
        ok = isinstance(state, dict) and set(state) == {"seed", "calls"} and all(
            isinstance(state[k], int) and not isinstance(state[k], bool) for k in state) and \
            0 <= state["seed"] < 2**31 and 0 <= state["calls"] < 2**32
        if not ok:
            raise ValueError(f"a Dropout generator state is {{'seed': int in [0, 2**31), "
                             f"'calls': int in [0, 2**32)}}, got {state!r}")
        self._seed, self._calls = state["seed"], state["calls"]

    def _draw(self, shape, keep, dtype):
        """The next mask of 0/1 (kept with probability ``keep``), from the ``(seed, count)``
        generator."""
        gen = self.backend.rng(self._seed * 2**32 + self._calls)
        self._calls += 1
        return gen.bernoulli(shape, keep, dtype=dtype)

    def forward(self, x, training=False):
        self._require_built()
        if not is_array_api_obj(x):
            raise TypeError(f"Dropout.forward expects an array of the layer's backend, got "
                            f"{type(x).__name__}; convert it with layer.backend.asarray(x)")
        self._cache_shape = tuple(x.shape)
        if not (training or self._mc) or self.p == 0.0:
            self._cache_mask = None
            return x
        keep = 1.0 - self.p
        mask = self._draw(self._cache_shape, keep, self.backend.dtype_name(x.dtype))
        mask = mask * (1.0 / keep)
        self._cache_mask = mask
        return x * mask

    def backward(self, grad_out, need_input_grad=True):
        if self._cache_shape is None:
            raise self._no_cache()
        if tuple(grad_out.shape) != self._cache_shape:
            raise ValueError(
                f"Dropout.backward expects grad_out of shape {self._cache_shape}, got "
                f"{tuple(grad_out.shape)}"
            )
        if not need_input_grad:
            return None
        return grad_out if self._cache_mask is None else grad_out * self._cache_mask

    def get_config(self):
        return {"p": self.p}


def _is_host(X):
    return isinstance(X, (list, tuple)) or type(X).__module__.split(".")[0] == "numpy"


def mc_dropout_predict(model, X, n_samples=30, batch_size=None):
    """Monte Carlo dropout (Gal & Ghahramani 2016): ``(mean, std)`` of ``n_samples`` stochastic
    forward passes in which only the ``Dropout`` layers are in training mode; every other layer
    (BatchNorm in particular, which then uses its running statistics) runs in inference mode.

    ``std`` is the population standard deviation over the samples (``ddof=0``), elementwise, with
    the shape of the model's output. Host data in (NumPy, lists) gives NumPy out; arrays of the
    model's backend give arrays of that backend. ``batch_size`` bounds device memory (``None``:
    the whole ``X`` at once).
    """
    if not hasattr(model, "modules") or not hasattr(model, "backend"):
        raise TypeError(f"model must be a Sequential, got {type(model).__name__}")
    dropouts = [layer for layer in model.modules() if isinstance(layer, Dropout)]
    if not dropouts:
        raise ValueError("model has no Dropout layer: Monte Carlo dropout would give std = 0")
    n_samples = _positive_int(n_samples, "n_samples")
    if batch_size is not None:
        batch_size = _positive_int(batch_size, "batch_size")
    backend = model.backend
    host = _is_host(X)
    if not host:
        check_array(backend, X, "X")
    x = backend.asarray(X, dtype=model.dtype_name)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"X must hold at least one sample, got shape {tuple(x.shape)}")
    xp = backend.xp
    n = x.shape[0]
    step = n if batch_size is None else batch_size
    means, stds = [], []
    for layer in dropouts:  # only the Dropout layers sample; everything else infers
        layer._mc = True
    try:
        for start in range(0, n, step):
            xb = x[start:min(start + step, n), ...]
            outs = [model.forward(xb, training=False) for _ in range(n_samples)]
            stacked = xp.stack(outs, axis=0)
            means.append(xp.mean(stacked, axis=0))
            stds.append(xp.std(stacked, axis=0))
    finally:
        for layer in dropouts:
            layer._mc = False
        model.clear_cache()
    mean = means[0] if len(means) == 1 else xp.concat(means, axis=0)
    std = stds[0] if len(stds) == 1 else xp.concat(stds, axis=0)
    if host:
        return backend.to_numpy(mean), backend.to_numpy(std)
    return mean, std
