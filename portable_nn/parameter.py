"""`Parameter`: a trainable array and the gradient the last backward pass left for it."""

from __future__ import annotations

from array_api_compat import array_namespace


class Parameter:
    """A trainable array of the model's backend.

    ``value`` is the array, ``grad`` the gradient of the loss with respect to it as set by the last
    ``backward`` (``None`` before the first), ``name`` a label such as ``"weight"``.
    ``regularizer`` (an ``L1``/``L2`` or ``None``) adds its penalty to the loss and its gradient to
    ``grad``. ``weight_decay`` (default ``True``) says whether an optimizer's ``weight_decay``
    applies to it. ``trainable`` (default ``True``; ``layer.trainable = False`` sets it for a
    layer's parameters) says whether the parameter learns: a frozen one gets no gradient from
    ``backward``, no update or weight decay from any optimizer and no regularization penalty.
    Parameters hash by identity, so optimizers can keep per-parameter state.

    As in PyTorch, ``backward`` may write the new gradient into the array that ``grad`` already
    holds (the NumPy backend does, saving an allocation per parameter per step): ``p.grad`` always
    holds the last gradient, but an array taken from it earlier is not a snapshot. Copy it
    (``xp.asarray(p.grad, copy=True)``) to keep it, or set ``p.grad = None`` to detach it.
    """

    __slots__ = ("__weakref__", "grad", "moves", "name", "regularizer", "trainable", "value",
                 "weight_decay")

    def __init__(self, value, grad=None, name="", regularizer=None, weight_decay=True,
                 trainable=True):
        if not isinstance(trainable, bool):
            raise TypeError(f"trainable must be True or False, got {trainable!r}")
        self.trainable = trainable
        self.value = value
        self.grad = grad
        self.name = name
        self.regularizer = regularizer
        self.weight_decay = weight_decay
        #: how often ``Layer.to`` moved the value to another backend; an optimizer seeing a
        #: new count moves its state for this parameter along before its next step
        self.moves = 0

    @property
    def shape(self):
        return tuple(self.value.shape)

    @property
    def size(self):
        n = 1
        for d in self.value.shape:
            n *= d
        return n

    def __repr__(self):
        return f"Parameter(name={self.name!r}, shape={self.shape})"


def all_finite(parameters):
    """``True`` if no value of ``parameters`` is NaN or infinite (one device-to-host sync)."""
    if not parameters:
        return True
    xp = array_namespace(parameters[0].value)
    ok = xp.all(xp.isfinite(parameters[0].value))
    for p in parameters[1:]:
        ok = xp.logical_and(ok, xp.all(xp.isfinite(p.value)))
    return bool(ok)
