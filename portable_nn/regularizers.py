"""L1 and L2 weight penalties, attached to a layer's weight (``Dense(..., regularizer=L2(1e-4))``).

``L1(rate)``: penalty ``rate * sum(|w|)``, gradient ``rate * sign(w)``.
``L2(rate)``: penalty ``rate * sum(w^2)``, gradient ``2 * rate * w`` (Keras's convention; an
optimizer's ``weight_decay=wd`` is the same as ``L2(wd / 2)`` for plain SGD).

The penalty is added once per batch to the loss that training reports, and its gradient to the
weight's gradient in the layer's backward.
"""

from __future__ import annotations

import math

from array_api_compat import array_namespace

__all__ = ["L1", "L2", "Regularizer", "from_config", "get"]

_FORM = "{'name': 'L1' or 'L2', 'rate': a number >= 0} (as get_config() returns)"


class Regularizer:
    """Base class: a weight penalty ``rate · f(w)`` and its gradient ``rate · f'(w)``."""

    def __init__(self, rate=0.01):
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise TypeError(f"rate must be a finite number >= 0, got {type(rate).__name__} "
                            f"{rate!r}")
        if not 0 <= rate < math.inf:
            raise ValueError(f"rate must be a finite number >= 0, got {rate!r}")
        self.rate = float(rate)

    def penalty(self, w):
        """The penalty for the weights ``w`` (a 0-d array of ``w``'s backend)."""
        raise NotImplementedError

    def gradient(self, w):
        """The penalty's gradient with respect to ``w`` (an array like ``w``)."""
        raise NotImplementedError

    def get_config(self):
        """``{"name": "L1" or "L2", "rate": rate}``: what ``get``/``from_config`` rebuild."""
        return {"name": type(self).__name__, "rate": self.rate}

    def __repr__(self):
        return f"{type(self).__name__}({self.rate!r})"


class L1(Regularizer):
    """``rate · Σ |w|``, gradient ``rate · sign(w)`` (0 at w = 0)."""

    def penalty(self, w):
        xp = array_namespace(w)
        return self.rate * xp.sum(xp.abs(w))

    def gradient(self, w):
        xp = array_namespace(w)
        return self.rate * xp.sign(w)


class L2(Regularizer):
    """``rate · Σ w²``, gradient ``2 · rate · w`` (Keras's convention)."""

    def penalty(self, w):
        xp = array_namespace(w)
        return self.rate * xp.sum(w * w)

    def gradient(self, w):
        return (2.0 * self.rate) * w


_CLASSES = {"L1": L1, "L2": L2}


def from_config(d) -> Regularizer:
    """Rebuild a regularizer from ``{"name": "L1" or "L2", "rate": number}``."""
    if not isinstance(d, dict):
        raise TypeError(f"a regularizer config must be a dict {_FORM}, got {type(d).__name__}")
    name = d.get("name")
    if not isinstance(name, str) or "rate" not in d or set(d) - {"name", "rate"}:
        raise ValueError(f"a regularizer config must be {_FORM}, got {d!r}")
    cls = _CLASSES.get(name)
    if cls is None:
        raise ValueError(f"unknown regularizer config {d!r}: 'name' must be one of "
                         f"{sorted(_CLASSES)}")
    return cls(d["rate"])


def get(spec):
    """``None``, a `Regularizer` (returned as is) or a config dict (``from_config``)."""
    if spec is None or isinstance(spec, Regularizer):
        return spec
    if isinstance(spec, dict):
        return from_config(spec)
    raise TypeError(f"regularizer must be L1(rate), L2(rate), None or a config {_FORM}, got "
                    f"{type(spec).__name__}")
