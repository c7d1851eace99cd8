"""L1 and L2 weight penalties, attached to a layer's weight (``Dense(..., regularizer=L2(1e-4))``).

``L1(rate)``: penalty ``rate * sum(|w|)``, gradient ``rate * sign(w)``.
``L2(rate)``: penalty ``rate * sum(w^2)``, gradient ``2 * rate * w`` (Keras's convention; an
optimizer's ``weight_decay=wd`` is the same as ``L2(wd / 2)`` for plain SGD).

The penalty is added once per batch to the loss that training reports, and its gradient to the
weight's gradient in the layer's backward.
"""

from __future__ import annotations

from math import inf

from array_api_compat import array_namespace

__all__ = ["L1", "L2", "Regularizer", "get"]


class Regularizer:
    def __init__(self, rate=0.01):
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < inf:
            raise ValueError(f"rate must be a finite number >= 0, got {rate!r}")
        self.rate = float(rate)

    def penalty(self, w):
        raise NotImplementedError

    def gradient(self, w):
        raise NotImplementedError

    def get_config(self):
        return {"name": type(self).__name__, "rate": self.rate}

    def __repr__(self):
        return f"{type(self).__name__}({self.rate!r})"


class L1(Regularizer):
    def penalty(self, w):
        xp = array_namespace(w)
        return self.rate * xp.sum(xp.abs(w))

    def gradient(self, w):
        xp = array_namespace(w)
        return self.rate * xp.sign(w)


class L2(Regularizer):
    def penalty(self, w):
        xp = array_namespace(w)
        return self.rate * xp.sum(w * w)

    def gradient(self, w):
        return (2.0 * self.rate) * w


def get(spec):
    if spec is None or isinstance(spec, Regularizer):
        return spec
    if isinstance(spec, dict):
        cls = {"L1": L1, "L2": L2}.get(spec.get("name"))
        if cls is None:
            raise ValueError(f"unknown regularizer config {spec!r}")
        return cls(spec["rate"])
    raise TypeError(f"regularizer must be L1(rate), L2(rate) or None, got {type(spec).__name__}")
