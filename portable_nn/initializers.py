"""Weight initializers.

Every initializer draws on the host from the model's ``numpy.random.Generator`` and returns a NumPy
array of float64; the layer then moves it to its device in the model's dtype. So one seed gives the
same starting weights on every backend. With ``fan_in``/``fan_out`` the weight's fans (see `fans`):

==================  ======================================  =====================================
name                distribution                            note
==================  ======================================  =====================================
``zeros``/``ones``  constant 0 / 1                          biases
``constant``        constant ``value``
``normal``          N(mean, std^2), std 0.01 by default     the lecture's "small random numbers"
``uniform``         U(low, high), [-0.05, 0.05] by default
``glorot_normal``   N(0, 2 / (fan_in + fan_out))            Xavier/Glorot (2010), normal
``glorot_uniform``  U(-a, a), a = sqrt(6 / (fan_in+fan_out))  Xavier/Glorot, uniform; Keras default
``lecun_normal``    N(0, 1 / fan_in)                        the lecture's randn(fan_in, fan_out)
                                                            / sqrt(fan_in) ("xavier_fan_in")
``he_normal``       N(0, 2 / fan_in)                        He et al. (2015), for ReLU
``he_uniform``      U(-a, a), a = sqrt(6 / fan_in)
``lecun_uniform``   U(-a, a), a = sqrt(3 / fan_in)            variance 1 / fan_in, as lecun_normal
``torch_uniform``   U(-a, a), a = 1 / sqrt(fan_in)            PyTorch's default for ``nn.Conv*``
                                                            and ``nn.Linear``, weight and bias
==================  ======================================  =====================================

Fans. Dense's weight is ``(fan_in, fan_out)`` (the course's ``x W``); a convolution's is PyTorch's
``(out_channels, in_channels / groups, *kernel)``, whose fans are ``in_channels / groups · Π kernel``
and ``out_channels · Π kernel`` (each input and output cell sees the whole receptive field).
``fans(shape, layout)`` computes them for either layout; a layer passes ``fans=(fan_in, fan_out)``
of its weight when it calls an initializer (``init(shape, rng, fans=...)``), so the same names
scale correctly for both, and a bias (whose own shape says nothing of the weight's fan-in) is drawn
with its weight's fans, as ``torch_uniform`` needs. Without ``fans=`` they come from ``shape`` in
Dense's layout. An initializer of your own should accept ``fans=None`` too.

Aliases: ``xavier`` and ``glorot`` = ``glorot_uniform``, ``xavier_normal``, ``xavier_uniform``,
``he`` = ``he_normal``, ``xavier_fan_in`` = ``lecun_normal``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "Constant",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "Initializer",
    "LeCunNormal",
    "LeCunUniform",
    "Normal",
    "Ones",
    "TorchUniform",
    "Uniform",
    "Zeros",
    "fans",
    "get",
]


LAYOUTS = ("in_out", "out_in")


def fans(shape, layout="in_out"):
    """``(fan_in, fan_out)`` of a weight of ``shape``.

    ``layout="in_out"`` (Dense's ``(in, out)``): the first and the last dimension; a vector's
    fans are both its size, a scalar's 1. ``layout="out_in"`` (PyTorch's ``(out, in, *kernel)``,
    a convolution's weight): ``in · Π kernel`` and ``out · Π kernel``, as
    ``torch.nn.init._calculate_fan_in_and_fan_out``."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if layout == "out_in":
        receptive = math.prod(shape[2:])
        return shape[1] * receptive, shape[0] * receptive
    return shape[0], shape[-1]


def _check_fans(value, shape):
    """``value`` (a pair of positive ints) or, for ``None``, the fans of ``shape`` as Dense's."""
    if value is None:
        return fans(shape)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in value)):
        raise ValueError(f"fans must be a pair (fan_in, fan_out) of positive ints, got {value!r}")
    return tuple(value)


class Initializer:
    """``init(shape, rng, fans=None) -> numpy.ndarray`` (float64). ``fans``: the
    ``(fan_in, fan_out)`` of the weight that the array belongs to (the layer knows its layout:
    see `fans`); ``None``: from ``shape`` as Dense's ``(in, out)``. ``get_config()`` makes it
    serialisable."""

    def __call__(self, shape, rng, fans=None):
        raise NotImplementedError

    def get_config(self):
        return {"name": _NAME_OF[type(self)], **{k: v for k, v in vars(self).items()}}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _number(value, argname):
    """``value`` as a finite float, or a TypeError/ValueError naming ``argname``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{argname} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{argname} must be finite, got {value!r}")
    return float(value)


class Constant(Initializer):
    def __init__(self, value=0.0):
        self.value = _number(value, "value")

    def __call__(self, shape, rng, fans=None):
        return np.full(shape, self.value)


class Zeros(Constant):
    def __init__(self):
        super().__init__(0.0)

    def get_config(self):
        return {"name": "zeros"}


class Ones(Constant):
    def __init__(self):
        super().__init__(1.0)

    def get_config(self):
        return {"name": "ones"}


class Normal(Initializer):
    def __init__(self, std=0.01, mean=0.0):
        if not _number(std, "std") >= 0:
            raise ValueError(f"std must be >= 0, got {std!r}")
        self.std = float(std)
        self.mean = _number(mean, "mean")

    def __call__(self, shape, rng, fans=None):
        return rng.normal(self.mean, self.std, size=shape)


class Uniform(Initializer):
    def __init__(self, low=-0.05, high=0.05):
        if not _number(high, "high") > _number(low, "low"):
            raise ValueError(f"uniform needs low < high, got low={low!r}, high={high!r}")
        self.low = float(low)
        self.high = float(high)

    def __call__(self, shape, rng, fans=None):
        return rng.uniform(self.low, self.high, size=shape)


class _Scaled(Initializer):
    """Zero-mean with variance ``scale / fan`` where ``fan`` is fan_in or the fans' average."""

    scale = 1.0
    mode = "fan_in"
    uniform = False

    def __init__(self):
        pass

    def __call__(self, shape, rng, fans=None):
        fan_in, fan_out = _check_fans(fans, shape)
        fan = fan_in if self.mode == "fan_in" else (fan_in + fan_out) / 2.0
        var = self.scale / max(1.0, fan)
        if self.uniform:
            limit = math.sqrt(3.0 * var)
            return rng.uniform(-limit, limit, size=shape)
        return rng.normal(0.0, math.sqrt(var), size=shape)


class GlorotNormal(_Scaled):
    mode = "fan_avg"


class GlorotUniform(_Scaled):
    mode = "fan_avg"
    uniform = True


class LeCunNormal(_Scaled):
    pass


class LeCunUniform(_Scaled):
    uniform = True


class TorchUniform(_Scaled):
    """U(-1/√fan_in, 1/√fan_in): what ``torch.nn.Conv*``/``nn.Linear`` draw for weight and bias
    (``kaiming_uniform_(a=√5)``), i.e. variance ``1 / (3 fan_in)``."""

    scale = 1.0 / 3.0
    uniform = True


class HeNormal(_Scaled):
    scale = 2.0


class HeUniform(_Scaled):
    scale = 2.0
    uniform = True


_REGISTRY = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "normal": Normal, "uniform": Uniform,
    "glorot_normal": GlorotNormal, "glorot_uniform": GlorotUniform, "lecun_normal": LeCunNormal,
    "lecun_uniform": LeCunUniform, "torch_uniform": TorchUniform,
    "he_normal": HeNormal, "he_uniform": HeUniform,
}
_NAME_OF = {cls: name for name, cls in _REGISTRY.items()}
_ALIASES = {
    "xavier": "glorot_uniform", "glorot": "glorot_uniform", "xavier_normal": "glorot_normal",
    "xavier_uniform": "glorot_uniform", "he": "he_normal", "kaiming": "he_normal",
    "xavier_fan_in": "lecun_normal", "random_normal": "normal", "random_uniform": "uniform",
}


def get(spec, argname="init"):
    """An initializer from a name, a config dict ``{"name": ..., **kwargs}``, or an instance."""
    if isinstance(spec, Initializer):
        return spec
    if isinstance(spec, dict):
        kwargs = dict(spec)
        name = kwargs.pop("name", None)
        if not isinstance(name, str):
            # a malformed config is a bad value, like any other missing key
            raise ValueError(  # noqa: TRY004
                f"{argname} config needs a 'name', got {spec!r}")
        return type(get(name, argname))(**kwargs)
    if isinstance(spec, str):
        key = _ALIASES.get(spec.lower(), spec.lower())
        if key in _REGISTRY:
            return _REGISTRY[key]()
        names = sorted(set(_REGISTRY) | set(_ALIASES))
        raise ValueError(f"unknown {argname} {spec!r}; expected one of {', '.join(names)}")
    raise TypeError(
        f"{argname} must be an initializer name, config dict or Initializer, got "
        f"{type(spec).__name__}"
    )
