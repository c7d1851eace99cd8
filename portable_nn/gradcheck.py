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
import warnings
from dataclasses import dataclass, field

from array_api_compat import array_namespace

from .backends import backend_of, host_array, host_rng
from .losses import Loss

__all__ = ["GradcheckResult", "gradcheck"]


@dataclass
class GradcheckResult:
    """What `gradcheck` found: ``max_error`` (the worst relative error), ``worst`` (where:
    ``"input"`` or a parameter name), ``errors`` (per tensor) and the ``tolerance`` it was checked
    against. ``bool(result)`` (and ``result.passed``) is ``max_error < tolerance``, so
    ``assert pnn.gradcheck(layer, x)`` fails for a wrong gradient."""

    max_error: float
    worst: str
    errors: dict = field(default_factory=dict)
    tolerance: float = 1e-6

    @property
    def passed(self):
        return self.max_error < self.tolerance  # NaN fails too

    def __bool__(self):
        return self.passed

    def __str__(self):
        parts = ", ".join(f"{k}: {v:.2e}" for k, v in self.errors.items())
        verdict = "passed" if self.passed else "FAILED"
        return (f"{verdict}: max relative error {self.max_error:.3e} at {self.worst!r} "
                f"(tolerance {self.tolerance:g}; {parts})")


def _backend_of(obj, x):
    backend = getattr(obj, "backend", None)
    return backend if backend is not None else backend_of(x)


def _on_backend(backend, a, dtype):
    """Host data (NumPy, lists) moved to ``backend`` in ``dtype``; device arrays are left alone
    (a wrong device is reported by the model's own check)."""
    if a is None or isinstance(a, (int, float)):
        return a
    if isinstance(a, (list, tuple)) or type(a).__module__.split(".")[0] == "numpy":
        host = host_array(a)
        floating = host.dtype.kind == "f" or (isinstance(a, (list, tuple)) and
                                              host.dtype.kind != "i")
        return backend.asarray(host, dtype=dtype if floating else None)
    return a


def _layers_of(obj):
    """The layers whose buffers a check may disturb (BatchNorm's running statistics)."""
    if hasattr(obj, "layers"):
        return list(obj.layers)
    return [obj] if hasattr(obj, "_buffers") else []


def _rel_error(a, n):
    diff = math.sqrt(float(((a - n) ** 2).sum()))
    scale = max(math.sqrt(float((a**2).sum())), math.sqrt(float((n**2).sum())), 1e-12)
    return diff / scale


def gradcheck(obj, x, target=None, *, loss=None, eps=1e-6, seed=0, check_input=True,
              training=False, tol=1e-6):
    """Compare ``obj``'s analytic gradients with central differences; return a GradcheckResult.

    ``obj``: a built Layer, a Sequential, or a Loss (then ``x`` is the prediction and ``target``
    is required). ``loss``: with a layer or model, check ``loss(obj(x), target)`` instead of the
    random projection. ``training`` is passed to ``forward`` (use it for BatchNorm; not Dropout,
    whose random mask changes between evaluations). ``tol``: the relative error below which
    the result counts as passed (``bool(result)``). ``x`` and ``target`` may be host data (NumPy,
    lists); they are moved to the object's backend, floating data in the object's dtype.
    Buffers (BatchNorm's running statistics, updated by every training-mode forward) are put
    back afterwards; each parameter's ``grad`` is left holding the analytic gradient checked.
    """
    is_loss = isinstance(obj, Loss)
    if is_loss and target is None:
        raise ValueError("gradcheck of a loss needs target=")
    if loss is not None and target is None:
        raise ValueError("gradcheck with loss= needs target=")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 0:
        raise ValueError(f"tol must be a number > 0, got {tol!r}")
    if getattr(obj, "backend", None) is not None:
        dtype = getattr(obj, "dtype_name", None) or obj.backend.dtype_name(obj.dtype)
        x = _on_backend(obj.backend, x, dtype)
        target = _on_backend(obj.backend, target, dtype)
    if hasattr(x, "dtype") and backend_of(x).dtype_name(x.dtype) == "float32":
        warnings.warn(
            "gradcheck in float32: central differences with eps=1e-6 are dominated by rounding, "
            "so even a correct gradient fails; build the layer or model with dtype='float64'",
            stacklevel=2,
        )
    layers = _layers_of(obj)
    saved_buffers = [dict(layer._buffers) for layer in layers]
    try:
        return _gradcheck(obj, x, target, loss, eps, seed, check_input, training, float(tol),
                          is_loss)
    finally:
        for layer, buffers in zip(layers, saved_buffers):
            layer._buffers = buffers
            layer.clear_cache()


def _gradcheck(obj, x, target, loss, eps, seed, check_input, training, tol, is_loss):
    """The check itself (arguments already checked and moved)."""
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

        def f(h, p=p, dtype=original.dtype):
            p.value = backend.asarray(h, dtype=dtype)
            return value(x)

        try:
            numeric = _numeric(f, host_p, eps)
        finally:
            p.value = original
        errors[name] = _rel_error(analytic[name], numeric)
    if not errors:
        return GradcheckResult(0.0, "", {}, tol)
    worst = max(errors, key=lambda k: errors[k])
    return GradcheckResult(errors[worst], worst, errors, tol)


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
