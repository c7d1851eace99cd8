"""Finite-difference gradient check for layers, losses and models, usable on your own layers.

    result = pnn.gradcheck(layer, x)                    # a built layer
    result = pnn.gradcheck(loss, pred, target=t)        # a loss (sample_weight=w: weighted)
    result = pnn.gradcheck(model, x, target=t, loss=pnn.losses.MSE())
    assert result.max_error < 1e-6, result

For a layer (or a model without a loss) the scalar checked is ``L = Σ f(x) ⊙ R + penalty`` with a
fixed random floating ``R``, so ``dL/df = R`` goes into ``backward``; ``penalty`` is the object's
regularizer penalty (``obj.penalty()``), whose gradient ``backward`` adds to ``p.grad``. Each input
element and each parameter element is nudged by ``±eps`` and ``(L(+) − L(−)) / 2eps`` is compared
with the analytic gradient. The error of a tensor is
``‖analytic − numeric‖ / max(‖analytic‖, ‖numeric‖, 1e-12)``. Use float64.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

from array_api_compat import array_namespace

from .backends import backend_of, host_array, host_rng
from .layers.base import Layer
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


def _positive(value, name):
    """A finite number > 0 (``eps``, ``tol``) as a float; TypeError/ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number > 0, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_obj(obj):
    """``"loss"``, ``"layer"`` or ``"model"``, or the error saying what ``obj`` must be."""
    if isinstance(obj, Loss):
        obj.check_protocol()
        return "loss"
    if isinstance(obj, Layer):
        if not obj.built:
            raise RuntimeError(f"gradcheck needs a built layer: {type(obj).__name__} is not built; "
                               "call layer.build(device, 'float64') or put it in a Sequential")
        return "layer"
    if all(callable(getattr(obj, m, None)) for m in ("forward", "backward", "named_parameters")):
        return "model"  # a Sequential, or a container model of the same shape
    raise TypeError("gradcheck checks a built Layer, a Sequential (or another container model) "
                    f"or a Loss; got {type(obj).__module__}.{type(obj).__name__} {obj!r:.60}")


def _backend_of(obj, x):
    backend = getattr(obj, "backend", None)
    return backend if backend is not None else backend_of(x)


def _on_backend(backend, a, dtype):
    """Host data (NumPy, lists) moved to ``backend`` in ``dtype``; device arrays are left alone
    (a wrong device is reported by the model's own check). Integer data stays integer."""
    if a is None or isinstance(a, (int, float)):
        return a
    if isinstance(a, (list, tuple)) or type(a).__module__.split(".")[0] == "numpy":
        host = host_array(a)
        floating = host.dtype.kind == "f" or (isinstance(a, (list, tuple)) and
                                              host.dtype.kind not in "iub")
        return backend.asarray(host, dtype=dtype if floating else None)
    return a


def _layers_of(obj):
    """The layers whose buffers a check may disturb (BatchNorm's running statistics): every
    nested layer where the object can list them (``modules()``), else its direct layers."""
    if callable(getattr(obj, "modules", None)):
        found = list(obj.modules())
    elif hasattr(obj, "layers"):
        found = list(obj.layers)
    else:
        found = [obj]
    return [layer for layer in found if isinstance(getattr(layer, "_buffers", None), dict)]


def _rel_error(a, n):
    diff = math.sqrt(float(((a - n) ** 2).sum()))
    scale = max(math.sqrt(float((a**2).sum())), math.sqrt(float((n**2).sum())), 1e-12)
    return diff / scale


def gradcheck(obj, x, target=None, *, loss=None, eps=1e-6, seed=0, check_input=True,
              training=False, tol=1e-6, sample_weight=None):
    """Compare ``obj``'s analytic gradients with central differences; return a GradcheckResult.

    ``obj``: a built Layer, a Sequential (or another container model), or a Loss (then ``x`` is
    the prediction and ``target`` is required). ``loss``: with a layer or model, check
    ``loss(obj(x), target)`` instead of the random projection. ``sample_weight``: per-row weights
    passed to the loss (a Loss, or ``loss=``). ``training`` is passed to ``forward`` (use it for
    BatchNorm; not Dropout, whose random mask changes between evaluations). ``eps``: the nudge,
    ``tol``: the relative error below which the result counts as passed (``bool(result)``); both
    finite and > 0. ``x`` and ``target`` may be host data (NumPy, lists); they are moved to the
    object's backend, floating data in the object's dtype.

    An integer ``x`` (token ids for an Embedding) cannot be nudged: only the parameters are
    checked, and ``backward`` is called with ``need_input_grad=False``. The projection ``R`` is
    floating (the object's dtype) whatever ``x`` is.

    Buffers of the object and of every nested layer (BatchNorm's running statistics, updated by
    every training-mode forward) are put back afterwards; each parameter's ``grad`` is left
    holding the analytic gradient checked.
    """
    kind = _check_obj(obj)
    eps, tol = _positive(eps, "eps"), _positive(tol, "tol")
    if kind == "loss" and target is None:
        raise ValueError("gradcheck of a loss needs target=")
    if loss is not None and target is None:
        raise ValueError("gradcheck with loss= needs target=")
    if sample_weight is not None and kind != "loss" and loss is None:
        raise ValueError("gradcheck with sample_weight= needs a loss (a Loss as obj, or loss=)")
    dtype = None
    if kind != "loss":
        dtype = getattr(obj, "dtype_name", None) or obj.backend.dtype_name(obj.dtype)
        x = _on_backend(obj.backend, x, dtype)
        target = _on_backend(obj.backend, target, dtype)
        sample_weight = _on_backend(obj.backend, sample_weight, dtype)
    if dtype is None and hasattr(x, "dtype"):
        dtype = backend_of(x).dtype_name(x.dtype)
    if dtype == "float32":
        warnings.warn(
            "gradcheck in float32: central differences with eps=1e-6 are dominated by rounding, "
            "so even a correct gradient fails; build the layer or model with dtype='float64'",
            stacklevel=2,
        )
    layers = _layers_of(obj)
    saved_buffers = [dict(layer._buffers) for layer in layers]
    try:
        return _gradcheck(obj, kind, x, target, loss, sample_weight, eps, seed, check_input,
                          training, tol, dtype)
    finally:
        for layer, buffers in zip(layers, saved_buffers):
            layer._buffers = buffers
            if callable(getattr(layer, "clear_cache", None)):
                layer.clear_cache()


def _gradcheck(obj, kind, x, target, loss, weight, eps, seed, check_input, training, tol,
               dtype):
    """The check itself (arguments already checked and moved)."""
    backend = _backend_of(obj, x)
    xp = array_namespace(x)
    integer_x = bool(xp.isdtype(x.dtype, ("integral", "bool")))
    penalty = getattr(obj, "penalty", None) if kind != "loss" else None

    def with_loss(fn, pred):
        return fn(pred, target) if weight is None else fn(pred, target, sample_weight=weight)

    if kind == "loss":
        def scalar(inp):
            return with_loss(obj, inp)
    else:
        out = obj.forward(x, training=training)
        # R in the object's dtype: cast to an integer x's dtype it would be all zeros, and any
        # backward would pass
        proj = host_rng(seed).standard_normal(tuple(out.shape))
        r = backend.asarray(proj, dtype=dtype)

        def scalar(inp):
            y = obj.forward(inp, training=training)
            value = with_loss(loss, y) if loss is not None else xp.sum(y * r)
            return value + penalty() if penalty is not None else value

    def value(inp):
        return float(scalar(inp))

    # analytic
    value(x)
    params = {}
    if kind == "loss":
        analytic = {"input": host_array(obj.backward()).copy()}
    else:
        grad_out = loss.backward() if loss is not None else r
        gx = (obj.backward(grad_out, need_input_grad=False) if integer_x
              else obj.backward(grad_out))
        for name, p in obj.named_parameters().items():
            params[name] = p
        analytic = {name: host_array(p.grad).copy() for name, p in params.items()}
        if check_input and not integer_x:
            analytic["input"] = host_array(gx).copy()

    # numeric
    errors = {}
    if "input" in analytic:
        host_x = host_array(x).astype("float64", copy=True)
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
