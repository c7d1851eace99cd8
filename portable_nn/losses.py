"""Losses: ``forward(pred, target)`` returns a 0-d array, ``backward()`` returns ``dL/d(pred)``.

``reduction="mean"`` (default) averages over the batch (``MSE`` and ``BinaryCrossEntropy``: over
every element, as PyTorch and Keras do); ``reduction="sum"`` adds up.

``forward`` checks shapes and, for class labels, their range (one device-to-host sync). The training
loop validates the whole data set once and calls ``_forward``, which skips the per-batch checks.
"""

from __future__ import annotations

from array_api_compat import device as device_of

from .backends.ops import namespace_of, ops_for
from .functional import log_softmax, sigmoid, softplus

__all__ = ["L2", "MSE", "BinaryCrossEntropy", "CrossEntropy", "Loss", "get"]

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


class Loss:
    def __init__(self, reduction="mean"):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        self._cache = None

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def forward(self, pred, target):
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
        return self._forward(xp, pred, target)

    def validate(self, xp, pred, target, check_values=True):
        """Raise ``ValueError`` if ``target`` cannot go with ``pred``."""
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

    def _forward(self, xp, pred, target):
        raise NotImplementedError

    def backward(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._backward()

    def _scale(self, n):
        """Factor that turns a sum into the chosen reduction over ``n`` items."""
        return 1.0 / n if self.reduction == "mean" else 1.0

    def get_config(self):
        return {"reduction": self.reduction}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L2(Loss):
    """The course's L2-norm loss: ``L = ½ Σ_j (y_j − t_j)²`` per sample, averaged over the batch
    (``reduction="sum"``: summed). Gradient: ``dL/dy = (y − t)`` (divided by the batch size for
    the mean)."""

    def _forward(self, xp, pred, target):
        diff = pred - target
        self._cache = (diff, self._scale(pred.shape[0]))
        return (0.5 * self._cache[1]) * ops_for(xp).sum_of_squares(diff)

    def _backward(self):
        diff, scale = self._cache
        return diff * scale if scale != 1.0 else diff


class MSE(Loss):
    """Mean squared error over every element: ``L = (1/(n m)) Σ (y − t)²``;
    ``dL/dy = 2 (y − t) / (n m)``. ``reduction="sum"``: ``Σ (y − t)²``."""

    def _forward(self, xp, pred, target):
        diff = pred - target
        n = pred.shape[0] * pred.shape[1]
        self._cache = (diff, self._scale(n))
        return self._cache[1] * ops_for(xp).sum_of_squares(diff)

    def _backward(self):
        diff, scale = self._cache
        return (2.0 * scale) * diff


class BinaryCrossEntropy(Loss):
    """``L = −[t log p + (1 − t) log(1 − p)]`` per element, with ``p = σ(z)``.

    ``from_logits=True`` (default): ``pred`` is ``z`` and the loss is computed as
    ``softplus(z) − t z``, which never overflows; ``dL/dz = σ(z) − t``.
    ``from_logits=False``: ``pred`` is ``p`` in (0, 1), clipped to [1e-7, 1 − 1e-7];
    ``dL/dp = (p − t) / (p (1 − p))``. Targets are 0/1 (or probabilities) of the same shape.
    """

    def __init__(self, from_logits=True, reduction="mean"):
        super().__init__(reduction)
        if not isinstance(from_logits, bool):
            raise TypeError(f"from_logits must be True or False, got {from_logits!r}")
        self.from_logits = from_logits

    def _forward(self, xp, pred, target):
        n = pred.shape[0] * pred.shape[1]
        scale = self._scale(n)
        if self.from_logits:
            self._cache = (xp, pred, target, scale)
            return scale * xp.sum(softplus(xp, pred) - target * pred)
        p = xp.minimum(xp.maximum(pred, _EPS), 1.0 - _EPS)
        self._cache = (xp, p, target, scale)
        return -scale * xp.sum(target * xp.log(p) + (1.0 - target) * xp.log(1.0 - p))

    def _backward(self):
        xp, z_or_p, target, scale = self._cache
        if self.from_logits:
            return (sigmoid(xp, z_or_p) - target) * scale
        p = z_or_p
        return (p - target) / (p * (1.0 - p)) * scale

    def get_config(self):
        return {"from_logits": self.from_logits, "reduction": self.reduction}


class CrossEntropy(Loss):
    """Categorical cross-entropy ``L = −Σ_k t_k log ŷ_k`` per sample.

    ``target``: integer class labels of shape (batch,), or one-hot / probability rows of shape
    (batch, classes). ``from_logits=True`` (default): ``pred`` holds logits ``z``, softmax is
    fused (``log ŷ = z − logsumexp(z)``) and the gradient is the lecture's ``dL/dz = ŷ − t``.
    ``from_logits=False``: ``pred`` holds probabilities (a ``Softmax`` layer's output), clipped at
    1e-7; ``dL/dŷ = −t / ŷ``.
    """

    def __init__(self, from_logits=True, reduction="mean"):
        super().__init__(reduction)
        if not isinstance(from_logits, bool):
            raise TypeError(f"from_logits must be True or False, got {from_logits!r}")
        self.from_logits = from_logits

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

    @staticmethod
    def one_hot(xp, labels, k, dtype):
        classes = xp.arange(k, device=device_of(labels))
        return xp.astype(labels[:, None] == classes[None, :], dtype)

    def _forward(self, xp, pred, target):
        n, k = pred.shape
        scale = self._scale(n)
        if self.from_logits and target.ndim == 1:
            # the common case (logits, class labels) goes through the backend's ops, which may
            # have a fast path; the formula is the same as below
            ops = ops_for(xp)
            value, state = ops.softmax_cross_entropy(pred, target, scale)
            self._cache = (ops, state)
            return value
        t = self.one_hot(xp, target, k, pred.dtype) if target.ndim == 1 else target
        if self.from_logits:
            logp = log_softmax(xp, pred)
            self._cache = (xp, logp, t, scale)
            return -scale * xp.sum(t * logp)
        p = xp.maximum(pred, _EPS)
        self._cache = (xp, p, t, scale)
        return -scale * xp.sum(t * xp.log(p))

    def _backward(self):
        if len(self._cache) == 2:  # (ops, state) from the fused path of _forward
            ops, state = self._cache
            return ops.softmax_cross_entropy_backward(state)
        xp, a, t, scale = self._cache
        if self.from_logits:
            return (xp.exp(a) - t) * scale
        return -(t / a) * scale

    def get_config(self):
        return {"from_logits": self.from_logits, "reduction": self.reduction}


_BY_NAME = {
    "l2": L2, "mse": MSE, "binary_crossentropy": BinaryCrossEntropy, "bce": BinaryCrossEntropy,
    "crossentropy": CrossEntropy, "cross_entropy": CrossEntropy,
    "categorical_crossentropy": CrossEntropy,
}


def get(spec):
    """A loss from an instance or a name ('l2', 'mse', 'bce', 'cross_entropy')."""
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, str) and spec.lower() in _BY_NAME:
        return _BY_NAME[spec.lower()]()
    raise ValueError(f"loss must be a Loss or one of {sorted(_BY_NAME)}, got {spec!r}")
