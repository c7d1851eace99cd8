"""Losses: ``forward(pred, target, sample_weight=None)`` returns a 0-d array, ``backward()`` returns
``dL/d(pred)``.

Every loss is the reduction of a per-row loss ``l_i``: ``reduction="mean"`` (default) gives
``(1/n) Σ_i l_i`` and ``reduction="sum"`` gives ``Σ_i l_i``; with sample weights ``w_i`` they become
``Σ_i w_i l_i / Σ_i w_i`` and ``Σ_i w_i l_i``. ``MSE``, ``MAE``, ``Huber`` and
``BinaryCrossEntropy`` count every element, as PyTorch and Keras do: their ``l_i`` is the mean of
the row's element losses under ``"mean"`` (so the mean over rows is the mean over elements) and
their sum under ``"sum"``. ``L2`` is the course's ``½ Σ_j (y_j − t_j)²`` per row and
``CrossEntropy`` is ``−Σ_k t_k log ŷ_k`` per row, under either reduction.

``forward`` checks shapes, dtypes, target values and weights (a few device-to-host syncs). The
training loop validates the whole data set once and calls ``_forward``, which checks nothing.
"""

from __future__ import annotations

import math

from array_api_compat import device as device_of

from .backends import backend_of, device_context_of
from .backends.ops import namespace_of, ops_for
from .functional import log_softmax, sigmoid, softmax, softplus

__all__ = ["L2", "MAE", "MSE", "BinaryCrossEntropy", "CrossEntropy", "Huber", "Loss", "get"]

_EPS = 1e-7


_KIND: dict = {}  # (dtype, kind) -> xp.isdtype(dtype, kind), which costs microseconds a call


def _is_kind(xp, dtype, kind):
    # the dtype's type first: dtypes of two libraries are then never compared (strict warns)
    key = (type(dtype), dtype, kind)
    answer = _KIND.get(key)
    if answer is None:
        answer = _KIND[key] = bool(xp.isdtype(dtype, kind))
    return answer


def _check_pred(xp, loss, pred):
    if not _is_kind(xp, pred.dtype, "real floating"):
        raise TypeError(f"{type(loss).__name__}: pred must be a floating-point array, got dtype "
                        f"{pred.dtype}")


def _check_same_dtype(loss, pred, target):
    # a float64 (or integer) target would silently turn a float32 loss and gradient into float64
    if target.dtype != pred.dtype:
        raise TypeError(
            f"{type(loss).__name__}: target has dtype {target.dtype}, pred has {pred.dtype}; "
            f"give the target the dtype of the predictions"
        )


def _is_host(a):
    """Lists, tuples and NumPy arrays: data that any backend can take in."""
    return isinstance(a, (list, tuple)) or type(a).__module__.split(".")[0] == "numpy"


class _PerSample(tuple):
    """What the generic path caches: ``(xp, pred, target, coef)``; ``coef`` is the factor of each
    row's gradient (a float, or an (n,) array with weights)."""


_PROTOCOL: dict = {}  # class -> "per_sample" | "forward" | "internal", or the TypeError to raise


def _protocol_of(cls):
    kind = _PROTOCOL.get(cls)
    if kind is not None:
        return kind
    name = cls.__name__
    if cls.per_sample is not Loss.per_sample:
        kind = "per_sample" if cls.per_sample_grad is not Loss.per_sample_grad else TypeError(
            f"{name} implements per_sample but not per_sample_grad(self, xp, pred, target), "
            "the gradient of each row's loss with respect to pred (pred's shape)")
    elif cls.forward is not Loss.forward:
        kind = "forward" if cls.backward is not Loss.backward else TypeError(
            f"{name} overrides forward but not backward; implement per_sample(self, xp, pred, "
            "target) and per_sample_grad(self, xp, pred, target) instead of both")
    elif cls._forward is not Loss._forward:
        kind = "internal"
    else:
        kind = TypeError(
            f"{name} does not define its loss: implement per_sample(self, xp, pred, target) "
            "(the loss of each row, shape (batch,)) and per_sample_grad(self, xp, pred, target) "
            "(its gradient with respect to pred, pred's shape); see help(portable_nn.losses.Loss)")
    _PROTOCOL[cls] = kind
    return kind


_OWN: dict = {}  # class -> whether its per_sample and per_sample_grad are this module's


def _generic(loss, weight):
    """Whether a built-in loss must take the per-sample path: with weights, or in a subclass that
    redefines ``per_sample`` (the fused formulas would silently ignore it)."""
    if weight is not None:
        return True
    own = _OWN.get(type(loss))
    if own is None:
        cls = type(loss)
        own = _OWN[cls] = (cls.per_sample.__module__ == __name__ and
                           cls.per_sample_grad.__module__ == __name__)
    return not own


class Loss:
    """Base class of the losses. A loss of your own implements two methods::

        import math
        import portable_nn as pnn

        class LogCosh(pnn.losses.Loss):
            '''log(cosh(y − t)), averaged over the row's outputs.'''

            def per_sample(self, xp, pred, target):
                # the loss of each row, shape (batch,); log cosh d = |d| + log1p(e^{−2|d|}) − log 2
                a = xp.abs(pred - target)
                return xp.mean(a + xp.log1p(xp.exp(-2.0 * a)) - math.log(2.0), axis=1)

            def per_sample_grad(self, xp, pred, target):
                # d(row loss)/d pred, pred's shape
                return xp.tanh(pred - target) / pred.shape[1]

        loss = LogCosh()                                   # or LogCosh(reduction="sum")
        value = loss(pred, target)                         # a 0-d array: the mean over rows
        value = loss(pred, target, sample_weight=w)        # Σ w_i l_i / Σ w_i
        model.backward(loss.backward())                    # dL/d pred for the last forward
        assert pnn.gradcheck(loss, pred, target=target)    # check the gradient (float64)
        model.fit(X, y, loss=LogCosh(), optimizer="adam")  # works in fit and evaluate too

    ``xp`` is the arrays' namespace (write the math with it only, so the loss runs on every
    backend); ``pred`` is (batch, outputs) and ``target`` has passed ``validate``. The base class
    does the rest: the reduction (``"mean"``: ``(1/n) Σ_i l_i``; ``"sum"``: ``Σ_i l_i``), sample
    weights (``Σ_i w_i l_i / Σ_i w_i`` and ``Σ_i w_i l_i``; integer weights equal repeating
    rows), caching for ``backward``, and the checks of ``forward``. Override ``validate(xp, pred,
    target, check_values=True)`` (call ``super().validate`` first) for other target shapes or
    value checks; ``check_values=False`` asks to skip checks that read values (host syncs).
    Override ``probabilities(xp, pred)`` if the outputs can be read as class probabilities.

    A loss that overrides ``forward(pred, target)`` and ``backward()`` itself (the older way)
    still works in ``gradcheck``, ``fit`` and ``evaluate``, but without sample weights.

    Public: ``forward``/``__call__`` (checked), ``backward``, ``check_protocol``, ``validate``.
    Internal, for the training loop: ``_forward(xp, pred, target, weight=None)``, which checks
    nothing; ``weight`` is None or an (n,) array of pred's dtype, ≥ 0 with a positive sum.
    """

    reduction = "mean"
    _cache = None

    def __init__(self, reduction="mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        self._cache = None

    def __getstate__(self):
        # what the last forward cached for backward (arrays and a namespace module) is not part
        # of the loss: a copy or a pickle starts without it
        state = dict(self.__dict__)
        state["_cache"] = None
        return state

    # the protocol --------------------------------------------------------------------------------
    def per_sample(self, xp, pred, target):
        """The loss of each row, shape (batch,). Implement it in a subclass."""
        raise NotImplementedError(f"{type(self).__name__}.per_sample")

    def per_sample_grad(self, xp, pred, target):
        """``d l_i / d pred``, of pred's shape (row i holds the gradient of row i's loss)."""
        raise NotImplementedError(f"{type(self).__name__}.per_sample_grad")

    def check_protocol(self):
        """Raise ``TypeError`` unless this loss implements ``per_sample`` and ``per_sample_grad``
        (or, the older way, ``forward`` and ``backward``); says which methods are missing."""
        kind = _protocol_of(type(self))
        if isinstance(kind, TypeError):
            raise TypeError(str(kind))

    @property
    def expects_logits(self):
        """True when ``pred`` holds logits (CrossEntropy/BinaryCrossEntropy with from_logits)."""
        return False

    def probabilities(self, xp, pred):
        """The model's outputs read as class probabilities (``predict_proba``). A regression
        loss has none: ``TypeError``."""
        raise TypeError(
            f"{type(self).__name__} is a regression loss, so the model is a regressor: its "
            "outputs are not class probabilities (train with CrossEntropy or BinaryCrossEntropy "
            "to get predict_proba)")

    # public, checked -----------------------------------------------------------------------------
    def __call__(self, pred, target, sample_weight=None):
        if sample_weight is None:
            return self.forward(pred, target)
        if _protocol_of(type(self)) == "forward":
            raise ValueError(self._no_weights())
        return self.forward(pred, target, sample_weight=sample_weight)

    def forward(self, pred, target, sample_weight=None):
        """The loss of a batch (0-d array), after checking ``pred``, ``target`` and
        ``sample_weight`` (None, or one non-negative weight per row: host data or an array of
        pred's library, with a positive sum)."""
        self.check_protocol()
        if _protocol_of(type(self)) == "forward":  # an override of forward called Loss.forward
            raise TypeError(
                f"{type(self).__name__}.forward calls Loss.forward, which computes the loss from "
                "per_sample: implement per_sample and per_sample_grad")
        try:
            xp = namespace_of(pred, target)
        except TypeError:
            raise TypeError(
                f"{type(self).__name__}: pred and target must be arrays of one library, got "
                f"{type(pred).__module__}.{type(pred).__name__} and "
                f"{type(target).__module__}.{type(target).__name__}"
            ) from None
        _check_pred(xp, self, pred)
        self.validate(xp, pred, target)
        if pred.shape[0] == 0:
            raise ValueError(f"{type(self).__name__}: pred has no rows (an empty batch)")
        weight = None if sample_weight is None else self._check_weight(xp, pred, sample_weight)
        # on cuda:N the arrays a loss makes (class indices, say) must be made on that GPU
        with device_context_of(pred):
            return self._forward(xp, pred, target, weight)

    def validate(self, xp, pred, target, check_values=True):
        """Raise ``ValueError`` (``TypeError`` for a dtype) if ``target`` cannot go with ``pred``."""
        if pred.ndim != 2:
            raise ValueError(
                f"{type(self).__name__} expects predictions of shape (batch, outputs), "
                f"got {tuple(pred.shape)}"
            )
        if tuple(target.shape) != tuple(pred.shape):
            raise ValueError(
                f"{type(self).__name__}: target shape {tuple(target.shape)} does not match "
                f"prediction shape {tuple(pred.shape)}"
            )
        _check_same_dtype(self, pred, target)

    def _check_weight(self, xp, pred, sample_weight):
        """``sample_weight`` checked and as an (n,) array of pred's dtype and device."""
        name, n = type(self).__name__, pred.shape[0]
        if _is_host(sample_weight):
            try:
                w = backend_of(pred).asarray(sample_weight)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"{name}: sample_weight must be a 1-D array of numbers: {exc}") \
                    from None
        else:
            try:
                namespace_of(pred, sample_weight)
            except TypeError:
                raise TypeError(
                    f"{name}: sample_weight must be host data (a list or NumPy array) or an array "
                    f"of pred's library, got {type(sample_weight).__module__}."
                    f"{type(sample_weight).__name__}") from None
            w = sample_weight
            if device_of(w) != device_of(pred):
                raise ValueError(f"{name}: sample_weight is on {device_of(w)}, pred on "
                                 f"{device_of(pred)}")
        if not _is_kind(xp, w.dtype, ("integral", "real floating")):
            raise TypeError(f"{name}: sample_weight must hold real numbers, got dtype {w.dtype}")
        if w.ndim != 1 or w.shape[0] != n:
            raise ValueError(f"{name}: sample_weight must have shape ({n},), one weight per row, "
                             f"got {tuple(w.shape)}")
        w = w if w.dtype == pred.dtype else xp.astype(w, pred.dtype)
        if not bool(xp.all(xp.isfinite(w))):
            raise ValueError(f"{name}: sample_weight contains NaN or Inf")
        low, total = float(xp.min(w)), float(xp.sum(w))
        if low < 0.0:
            raise ValueError(f"{name}: sample_weight must be >= 0, got a weight of {low}")
        if not total > 0.0:
            raise ValueError(f"{name}: sample_weight must have a positive sum, got {total}")
        return w

    def _no_weights(self):
        return (f"{type(self).__name__} overrides forward/backward, which take no sample weights: "
                "implement per_sample and per_sample_grad to train with sample_weight")

    # internal, unchecked -------------------------------------------------------------------------
    def _forward(self, xp, pred, target, weight=None):
        """The loss without checks; the built-in losses override it with fused formulas."""
        if _protocol_of(type(self)) == "forward":
            if weight is not None:
                raise ValueError(self._no_weights())
            return self.forward(pred, target)
        self.check_protocol()
        return self._forward_per_sample(xp, pred, target, weight)

    def _forward_per_sample(self, xp, pred, target, weight):
        """The reduction of ``per_sample`` (weighted when ``weight`` is an array)."""
        n = pred.shape[0]
        rows = self.per_sample(xp, pred, target)
        if tuple(rows.shape) != (n,):
            raise ValueError(f"{type(self).__name__}.per_sample must return one loss per row, "
                             f"shape ({n},), got {tuple(rows.shape)}")
        if weight is None:
            coef = self._scale(n)
            value = coef * xp.sum(rows)
        elif self.reduction == "mean":
            total = xp.sum(weight)
            coef = weight / total
            value = xp.sum(weight * rows) / total
        else:
            coef = weight
            value = xp.sum(weight * rows)
        self._cache = _PerSample((xp, pred, target, coef))
        return value

    def backward(self):
        """``dL/d pred`` for the last ``forward`` (pred's shape)."""
        cache = self._cache
        if cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        if type(cache) is _PerSample:
            xp, pred, target, coef = cache
            g = self.per_sample_grad(xp, pred, target)
            if tuple(g.shape) != tuple(pred.shape):
                raise ValueError(f"{type(self).__name__}.per_sample_grad must return pred's shape "
                                 f"{tuple(pred.shape)}, got {tuple(g.shape)}")
            if isinstance(coef, float):
                return g * coef if coef != 1.0 else g
            return g * xp.reshape(coef, (pred.shape[0],) + (1,) * (pred.ndim - 1))
        return self._backward()

    def _backward(self):
        raise NotImplementedError(f"{type(self).__name__}._backward")

    def _scale(self, n):
        """Factor that turns a sum into the chosen reduction over ``n`` items."""
        return 1.0 / n if self.reduction == "mean" else 1.0

    def get_config(self):
        return {"reduction": self.reduction}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _Elementwise(Loss):
    """A loss of one term per element: ``l_i`` is the row's mean (``"mean"``) or sum (``"sum"``)
    of ``_elements``, so the reduction over rows is PyTorch's reduction over elements."""

    def _elements(self, xp, pred, target):
        raise NotImplementedError

    def _element_grad(self, xp, pred, target):
        raise NotImplementedError

    def per_sample(self, xp, pred, target):
        return self._scale(pred.shape[1]) * xp.sum(self._elements(xp, pred, target), axis=1)

    def per_sample_grad(self, xp, pred, target):
        return self._scale(pred.shape[1]) * self._element_grad(xp, pred, target)

    def _forward(self, xp, pred, target, weight=None):
        if _generic(self, weight):
            return self._forward_per_sample(xp, pred, target, weight)
        scale = self._scale(pred.shape[0] * pred.shape[1])
        self._cache = (xp, pred, target, scale)
        return scale * xp.sum(self._elements(xp, pred, target))

    def _backward(self):
        xp, pred, target, scale = self._cache
        g = self._element_grad(xp, pred, target)
        return g * scale if scale != 1.0 else g


class L2(Loss):
    """The course's L2-norm loss: ``L = ½ Σ_j (y_j − t_j)²`` per sample, averaged over the batch
    (``reduction="sum"``: summed). Gradient: ``dL/dy = (y − t)`` (divided by the batch size for
    the mean)."""

    def per_sample(self, xp, pred, target):
        d = pred - target
        return 0.5 * xp.sum(d * d, axis=1)

    def per_sample_grad(self, xp, pred, target):
        return pred - target

    def _forward(self, xp, pred, target, weight=None):
        if _generic(self, weight):
            return self._forward_per_sample(xp, pred, target, weight)
        diff = pred - target
        self._cache = (diff, self._scale(pred.shape[0]))
        return (0.5 * self._cache[1]) * ops_for(xp).sum_of_squares(diff)

    def _backward(self):
        diff, scale = self._cache
        return diff * scale if scale != 1.0 else diff


class MSE(_Elementwise):
    """Mean squared error over every element: ``L = (1/(n m)) Σ (y − t)²``;
    ``dL/dy = 2 (y − t) / (n m)``. ``reduction="sum"``: ``Σ (y − t)²``. PyTorch's ``mse_loss``."""

    def _elements(self, xp, pred, target):
        d = pred - target
        return d * d

    def _element_grad(self, xp, pred, target):
        return 2.0 * (pred - target)

    def _forward(self, xp, pred, target, weight=None):
        if _generic(self, weight):
            return self._forward_per_sample(xp, pred, target, weight)
        diff = pred - target
        scale = self._scale(pred.shape[0] * pred.shape[1])
        self._cache = (diff, scale)
        return scale * ops_for(xp).sum_of_squares(diff)

    def _backward(self):
        diff, scale = self._cache
        return (2.0 * scale) * diff


class MAE(_Elementwise):
    """Mean absolute error over every element: ``L = (1/(n m)) Σ |y − t|``;
    ``dL/dy = sign(y − t) / (n m)``, 0 where ``y = t`` (as PyTorch's ``l1_loss``).
    ``reduction="sum"``: ``Σ |y − t|``."""

    def _elements(self, xp, pred, target):
        return xp.abs(pred - target)

    def _element_grad(self, xp, pred, target):
        return xp.sign(pred - target)


class Huber(_Elementwise):
    """Huber loss over every element (PyTorch's ``huber_loss``), with ``d = y − t``:
    ``½ d²`` where ``|d| < δ``, ``δ (|d| − ½ δ)`` elsewhere, averaged over the n·m elements
    (``reduction="sum"``: summed). ``dL/dy = clip(d, −δ, δ) / (n m)``: quadratic near the target,
    and a bounded pull of ``δ`` from outliers. ``delta``: δ > 0 (default 1.0)."""

    def __init__(self, delta=1.0, reduction="mean"):
        super().__init__(reduction)
        if isinstance(delta, bool) or not isinstance(delta, (int, float)):
            raise TypeError(f"delta must be a number > 0, got {type(delta).__name__} {delta!r}")
        if not (math.isfinite(delta) and delta > 0):
            raise ValueError(f"delta must be a finite number > 0, got {delta!r}")
        self.delta = float(delta)

    def _elements(self, xp, pred, target):
        a = xp.abs(pred - target)
        q = xp.minimum(a, self.delta)
        return q * (a - 0.5 * q)  # ½a² inside, δ(a − ½δ) outside, with no branch

    def _element_grad(self, xp, pred, target):
        return xp.minimum(xp.maximum(pred - target, -self.delta), self.delta)

    def get_config(self):
        return {"delta": self.delta, "reduction": self.reduction}


class _Classification(Loss):
    """What CrossEntropy and BinaryCrossEntropy share: ``from_logits`` and its consequences."""

    def __init__(self, from_logits=True, reduction="mean"):
        super().__init__(reduction)
        if not isinstance(from_logits, bool):
            raise TypeError(f"from_logits must be True or False, got {from_logits!r}")
        self.from_logits = from_logits

    @property
    def expects_logits(self):
        return self.from_logits

    def get_config(self):
        return {"from_logits": self.from_logits, "reduction": self.reduction}


class BinaryCrossEntropy(_Classification, _Elementwise):
    """``L = −[t log p + (1 − t) log(1 − p)]`` per element, with ``p = σ(z)``, averaged over the
    n·m elements (``reduction="sum"``: summed).

    ``from_logits=True`` (default): ``pred`` is ``z`` and the loss is computed as
    ``softplus(z) − t z``, which never overflows; ``dL/dz = σ(z) − t``.
    ``from_logits=False``: ``pred`` is ``p``, clipped to [1e-7, 1 − 1e-7];
    ``dL/dp = (p − t) / (p (1 − p))`` inside the clip and 0 outside it (where the clipped loss
    is flat). Targets are 0/1 (or probabilities in [0, 1]) of pred's shape; ``validate`` refuses
    others and NaN.
    """

    def validate(self, xp, pred, target, check_values=True):
        super().validate(xp, pred, target, check_values)
        # one sync when the targets are fine; NaN fails both comparisons
        if check_values and target.shape[0] > 0 and \
                not bool(xp.all((target >= 0.0) & (target <= 1.0))):
            nan = int(xp.sum(xp.astype(xp.isnan(target), xp.int32)))
            span = f"values from {float(xp.min(target))} to {float(xp.max(target))}"
            raise ValueError(
                f"BinaryCrossEntropy targets must be in [0, 1], got {f'{nan} NaN' if nan else span}")

    def probabilities(self, xp, pred):
        """``σ(z)`` of logits, or the outputs themselves when they are probabilities."""
        return sigmoid(xp, pred) if self.from_logits else pred

    def _elements(self, xp, pred, target):
        if self.from_logits:
            return softplus(xp, pred) - target * pred
        p = xp.minimum(xp.maximum(pred, _EPS), 1.0 - _EPS)
        return -(target * xp.log(p) + (1.0 - target) * xp.log(1.0 - p))

    def _element_grad(self, xp, pred, target):
        if self.from_logits:
            return sigmoid(xp, pred) - target
        p = xp.minimum(xp.maximum(pred, _EPS), 1.0 - _EPS)
        # inside the clip (bounds included, as torch.clamp's gradient) the slope of the log terms;
        # outside it the clipped loss is constant
        inside = (pred >= _EPS) & (pred <= 1.0 - _EPS)
        return xp.where(inside, (p - target) / (p * (1.0 - p)), xp.zeros_like(p))


class CrossEntropy(_Classification):
    """Categorical cross-entropy ``L = −Σ_k t_k log ŷ_k`` per sample, averaged over the batch
    (``reduction="sum"``: summed).

    ``target``: integer class labels of shape (batch,), or one-hot / probability rows of shape
    (batch, classes), non-negative. ``from_logits=True`` (default): ``pred`` holds logits ``z``,
    softmax is fused (``log ŷ = z − logsumexp(z)``) and the gradient is the lecture's
    ``dL/dz = ŷ − t`` (``ŷ Σ_k t_k − t`` for rows that do not sum to 1).
    ``from_logits=False``: ``pred`` holds probabilities (a ``Softmax`` layer's output), clipped
    below at 1e-7; ``dL/dŷ = −t / ŷ`` where ``ŷ ≥ 1e-7`` and 0 below (the clipped loss is flat).
    """

    def validate(self, xp, pred, target, check_values=True):
        if pred.ndim != 2:
            raise ValueError(
                f"CrossEntropy expects predictions of shape (batch, classes), got {tuple(pred.shape)}"
            )
        n, k = pred.shape
        if k < 2:
            raise ValueError(
                f"CrossEntropy needs at least 2 outputs (one per class), got predictions of shape "
                f"{tuple(pred.shape)}: softmax over one output is always 1; for a single output "
                f"unit use BinaryCrossEntropy"
            )
        if target.ndim == 1:
            if not _is_kind(xp, target.dtype, "integral"):
                raise ValueError(
                    f"CrossEntropy: 1-D targets must be integer class labels, got dtype {target.dtype}"
                )
            if target.shape[0] != n:
                raise ValueError(f"CrossEntropy: {target.shape[0]} labels for {n} predictions")
            if check_values and n > 0:
                lo, hi = ops_for(xp).value_range(target)
                if lo < 0 or hi >= k:
                    raise ValueError(
                        f"CrossEntropy: class labels must be in [0, {k - 1}] for {k} outputs, "
                        f"got labels from {lo} to {hi}"
                    )
        elif tuple(target.shape) != (n, k):
            raise ValueError(
                f"CrossEntropy: target must be labels of shape ({n},) or one-hot rows of shape "
                f"({n}, {k}), got {tuple(target.shape)}"
            )
        else:
            _check_same_dtype(self, pred, target)
            if check_values and n > 0:
                bad = xp.logical_not(xp.all(xp.isfinite(target) & (target >= 0.0), axis=1))
                if bool(xp.any(bad)):
                    count = int(xp.sum(xp.astype(bad, xp.int32)))
                    first = int(xp.argmax(xp.astype(bad, xp.int32)))
                    raise ValueError(
                        f"CrossEntropy: target rows must be one-hot or probabilities (finite, "
                        f">= 0); {count} of {n} rows have NaN, Inf or negative entries "
                        f"(first: row {first})")

    def probabilities(self, xp, pred):
        """``softmax(z)`` of logits, or the outputs themselves when they are probabilities."""
        return softmax(xp, pred, axis=-1) if self.from_logits else pred

    @staticmethod
    def one_hot(xp, labels, k, dtype):
        classes = xp.arange(k, device=device_of(labels))
        return xp.astype(labels[:, None] == classes[None, :], dtype)

    def _rows(self, xp, pred, target):
        """``t`` as rows of pred's shape (labels turned one-hot)."""
        return self.one_hot(xp, target, pred.shape[1], pred.dtype) if target.ndim == 1 else target

    def per_sample(self, xp, pred, target):
        t = self._rows(xp, pred, target)
        logp = log_softmax(xp, pred) if self.from_logits else xp.log(xp.maximum(pred, _EPS))
        return -xp.sum(t * logp, axis=1)

    def per_sample_grad(self, xp, pred, target):
        t = self._rows(xp, pred, target)
        return self._grad(xp, pred, t, softmax(xp, pred) if self.from_logits else None)

    def _grad(self, xp, pred, t, probs):
        if self.from_logits:
            return probs * xp.sum(t, axis=1, keepdims=True) - t
        p = xp.maximum(pred, _EPS)
        return xp.where(pred >= _EPS, -t / p, xp.zeros_like(p))

    def _forward(self, xp, pred, target, weight=None):
        if _generic(self, weight):
            return self._forward_per_sample(xp, pred, target, weight)
        scale = self._scale(pred.shape[0])
        if self.from_logits and target.ndim == 1:
            # the common case (logits, class labels) goes through the backend's ops, which may
            # have a fast path; the formula is the same as below
            ops = ops_for(xp)
            value, state = ops.softmax_cross_entropy(pred, target, scale)
            self._cache = (ops, state)
            return value
        t = self._rows(xp, pred, target)
        if self.from_logits:
            logp = log_softmax(xp, pred)
            self._cache = (xp, logp, t, scale)
            return -scale * xp.sum(t * logp)
        self._cache = (xp, pred, t, scale)
        return -scale * xp.sum(t * xp.log(xp.maximum(pred, _EPS)))

    def _backward(self):
        if len(self._cache) == 2:  # (ops, state) from the fused path of _forward
            ops, state = self._cache
            return ops.softmax_cross_entropy_backward(state)
        xp, a, t, scale = self._cache
        g = self._grad(xp, a, t, xp.exp(a) if self.from_logits else None)
        return g * scale if scale != 1.0 else g


_BY_NAME = {
    "l2": L2,
    "mse": MSE, "mean_squared_error": MSE,
    "mae": MAE, "mean_absolute_error": MAE, "l1": MAE,
    "huber": Huber, "huber_loss": Huber,
    "bce": BinaryCrossEntropy, "binary_crossentropy": BinaryCrossEntropy,
    "binary_cross_entropy": BinaryCrossEntropy,
    "cross_entropy": CrossEntropy, "crossentropy": CrossEntropy,
    "categorical_crossentropy": CrossEntropy, "categorical_cross_entropy": CrossEntropy,
    "sparse_categorical_crossentropy": CrossEntropy,
}


def get(spec):
    """A loss from an instance or a name, in any case, with the default arguments.

    ======================================================  ========================================
    name                                                    loss (Keras / PyTorch equivalent)
    ======================================================  ========================================
    ``l2``                                                  ``L2``: the course's ½ Σ (y − t)² per row
    ``mse``, ``mean_squared_error``                         ``MSE`` (Keras ``mse``, torch ``MSELoss``)
    ``mae``, ``mean_absolute_error``, ``l1``                ``MAE`` (Keras ``mae``, torch ``L1Loss``)
    ``huber``, ``huber_loss``                               ``Huber(delta=1.0)`` (torch ``HuberLoss``)
    ``bce``, ``binary_crossentropy``,                       ``BinaryCrossEntropy()``: logits, as
    ``binary_cross_entropy``                                torch ``BCEWithLogitsLoss``
    ``cross_entropy``, ``crossentropy``,                    ``CrossEntropy()``: logits, labels or
    ``categorical_crossentropy``,                           one-hot rows, as torch
    ``categorical_cross_entropy``,                          ``CrossEntropyLoss``; Keras's sparse and
    ``sparse_categorical_crossentropy``                     categorical versions are both this
    ======================================================  ========================================

    Unlike Keras's losses, which take probabilities by default, the names give losses that take
    logits (``from_logits=True``): for probabilities pass an instance,
    ``CrossEntropy(from_logits=False)``.
    """
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, str) and spec.lower() in _BY_NAME:
        return _BY_NAME[spec.lower()]()
    raise ValueError(f"loss must be a Loss or one of {', '.join(sorted(_BY_NAME))}; got {spec!r}")
