"""Finite-difference gradient check for layers, losses and models, usable on your own layers.

    result = pnn.gradcheck(layer, x)                    # a built layer
    result = pnn.gradcheck(loss, pred, target=t)        # a loss
    result = pnn.gradcheck(model, x, target=t, loss=pnn.losses.MSE())
    assert result.max_error < 1e-6, result

For a layer (or a model without a loss) the scalar checked is ``L = Σ f(x) ⊙ R`` with a fixed random
``R``, so ``dL/df = R`` goes into ``backward``. Each input element and each parameter element is
nudged by ``±eps`` and ``(L(+) − L(−)) / 2eps`` is compared with the analytic gradient. The error of a
tensor is ``‖analytic − numeric‖ / max(‖analytic‖, ‖numeric‖, 1e-12)``. Use float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from array_api_compat import array_namespace

from .backends import backend_of, host_array, host_rng
from .losses import Loss

__all__ = ["GradcheckResult", "gradcheck"]


@dataclass
class GradcheckResult:
    max_error: float
    worst: str
    errors: dict = field(default_factory=dict)

    def __bool__(self):
        return math.isfinite(self.max_error)

    def __str__(self):
        parts = ", ".join(f"{k}: {v:.2e}" for k, v in self.errors.items())
        return f"max relative error {self.max_error:.3e} at {self.worst!r} ({parts})"


def _backend_of(obj, x):
    backend = getattr(obj, "backend", None)
    return backend if backend is not None else backend_of(x)


def _rel_error(a, n):
    diff = math.sqrt(float(((a - n) ** 2).sum()))
    scale = max(math.sqrt(float((a**2).sum())), math.sqrt(float((n**2).sum())), 1e-12)
    return diff / scale


def gradcheck(obj, x, target=None, *, loss=None, eps=1e-6, seed=0, check_input=True,
              training=False):
    """Compare ``obj``'s analytic gradients with central differences; return a GradcheckResult.

    ``obj``: a built Layer, a Sequential, or a Loss (then ``x`` is the prediction and ``target``
    is required). ``loss``: with a layer or model, check ``loss(obj(x), target)`` instead of the
    random projection. ``training`` is passed to ``forward`` (use it for BatchNorm; not Dropout,
    whose random mask changes between evaluations).
    """
    is_loss = isinstance(obj, Loss)
    if is_loss and target is None:
        raise ValueError("gradcheck of a loss needs target=")
    if loss is not None and target is None:
        raise ValueError("gradcheck with loss= needs target=")
    backend = _backend_of(obj, x)
    xp = array_namespace(x)
    if is_loss:
        def scalar(inp):
            return obj.forward(inp, target)
    else:
        out = obj.forward(x, training=training)
        proj = host_rng(seed).standard_normal(tuple(out.shape))
        r = backend.asarray(proj, dtype=x.dtype)

        def scalar(inp):
            y = obj.forward(inp, training=training)
            return loss.forward(y, target) if loss is not None else xp.sum(y * r)

    def value(inp):
        return float(scalar(inp))

    # analytic
    value(x)
    if is_loss:
        analytic = {"input": host_array(obj.backward()).copy()}
        params = {}
    else:
        grad_out = loss.backward() if loss is not None else r
        gx = obj.backward(grad_out)
        params = {}
        named = (obj.named_parameters() if hasattr(obj, "named_parameters") else {})
        for name, p in named.items():
            params[name] = p
        analytic = {name: host_array(p.grad).copy() for name, p in params.items()}
        if check_input:
            analytic["input"] = host_array(gx).copy()

    # numeric
    errors = {}
    host_x = host_array(x).astype("float64", copy=True)
    if "input" in analytic:
        numeric = _numeric(lambda h: value(backend.asarray(h, dtype=x.dtype)), host_x, eps)
        errors["input"] = _rel_error(analytic["input"], numeric)
    for name, p in params.items():
        original = p.value
        host_p = host_array(original).astype("float64", copy=True)

        def f(h, p=p):
            p.value = backend.asarray(h, dtype=original.dtype)
            return value(x)

        try:
            numeric = _numeric(f, host_p, eps)
        finally:
            p.value = original
        errors[name] = _rel_error(analytic[name], numeric)
    if not errors:
        return GradcheckResult(0.0, "", {})
    worst = max(errors, key=lambda k: errors[k])
    return GradcheckResult(errors[worst], worst, errors)


def _numeric(f, h, eps):
    grad = h * 0.0
    flat, gflat = h.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f(h)
        flat[i] = old - eps
        down = f(h)
        flat[i] = old
        gflat[i] = (up - down) / (2.0 * eps)
    return grad
