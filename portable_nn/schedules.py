"""Learning-rate schedules: ``schedule(step) -> float``, passed as an optimizer's ``learning_rate``.

    opt = pnn.optimizers.SGD(learning_rate=pnn.schedules.CosineDecay(0.1, decay_steps=1000))

``step`` counts optimizer steps (batches, not epochs), starting at 0, as in Keras: the optimizer
evaluates its schedule at ``optimizer.iterations`` before each step. With ``η₀`` the initial rate:

====================  ==============================================================
``Constant``          ``η₀``
``StepDecay``         ``η₀ · rate^⌊step / step_size⌋``
``ExponentialDecay``  ``η₀ · rate^(step / decay_steps)`` (exponent floored if ``staircase``)
``InverseTimeDecay``  ``η₀ / (1 + rate · step / decay_steps)`` (floored if ``staircase``)
``CosineDecay``       ``η₀ · ((1 − α) · ½ (1 + cos(π · min(step, T) / T)) + α)``, T = decay_steps
``LinearWarmup``      ``peak · (step + 1) / W`` for ``step < W``, then the target schedule at
                      ``step − W`` (``peak`` = the target at its step 0)
====================  ==============================================================

Schedules are plain Python (floats and ``math``): they run on the host once per step and never touch
the device. A ``decay_rate`` above 1 is allowed (a rate that grows, as in a learning-rate range
test); a step at which the rate overflows raises ``ValueError`` instead of returning ``inf``. ``get_config()`` returns the constructor's keyword arguments; ``serialize(s)`` /
``from_config(d)`` convert to and from ``{"class": name, "config": kwargs}``.
"""

from __future__ import annotations

import inspect
import math
import operator

__all__ = [
    "Constant", "CosineDecay", "ExponentialDecay", "InverseTimeDecay", "LinearWarmup", "Schedule",
    "StepDecay", "from_config", "get", "serialize",
]

SCHEDULE_CLASSES: dict[str, type] = {}


def _positive_float(value, argname):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{argname} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{argname} must be a finite number > 0, got {value!r}")
    return value


def _positive_int(value, argname):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argname} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{argname} must be >= 1, got {value}")
    return value


def _check_step(step):
    """``step`` as a Python int >= 0 (any integer type but bool)."""
    if isinstance(step, bool):
        raise TypeError(f"step must be an int, got {step!r}")
    try:
        step = operator.index(step)
    except TypeError:
        raise TypeError(f"step must be an int, got {type(step).__name__} {step!r}") from None
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return step


def _scaled_power(initial, rate, exponent):
    """``initial · rate^exponent``, finite wherever the product is (``rate^exponent`` alone may
    overflow while ``initial`` brings it back into range); ``inf`` where the product overflows."""
    try:
        return initial * rate**exponent
    except OverflowError:
        try:
            return math.exp(math.log(initial) + exponent * math.log(rate))
        except OverflowError:
            return math.inf


class Schedule:
    """Base class: ``__call__(step)`` checks ``step`` (an int >= 0) and returns ``_value(step)``
    as a float, or raises ``ValueError`` where that value is not a finite number >= 0 (a rate
    that grows, ``decay_rate > 1``, overflows after enough steps)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):  # shared private bases are not schedules
            SCHEDULE_CLASSES[cls.__name__] = cls

    def __call__(self, step: int) -> float:
        step = _check_step(step)
        try:
            value = float(self._value(step))
        except OverflowError:  # float ** float past 1.8e308 raises instead of giving inf
            value = math.inf
        if not 0.0 <= value < math.inf:
            raise ValueError(
                f"{self!r} at step {step} gives the learning rate {value!r}, not a finite number "
                ">= 0 (a growing rate, decay_rate > 1, overflows after enough steps)"
            )
        return value

    def _value(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """``η(step) = value``."""

    def __init__(self, value):
        self.value = _positive_float(value, "value")

    def _value(self, step):
        return self.value

    def get_config(self):
        return {"value": self.value}


class StepDecay(Schedule):
    """``η(step) = initial · decay_rate^⌊step / step_size⌋``: drop by ``decay_rate`` every
    ``step_size`` steps."""

    def __init__(self, initial, decay_rate, step_size):
        self.initial = _positive_float(initial, "initial")
        self.decay_rate = _positive_float(decay_rate, "decay_rate")
        self.step_size = _positive_int(step_size, "step_size")

    def _value(self, step):
        return _scaled_power(self.initial, self.decay_rate, step // self.step_size)

    def get_config(self):
        return {"initial": self.initial, "decay_rate": self.decay_rate,
                "step_size": self.step_size}


class _TimeDecay(Schedule):
    """Shared by the decays of ``initial`` over ``step / decay_steps`` (floored with
    ``staircase=True``)."""

    def __init__(self, initial, decay_rate, decay_steps, staircase=False):
        self.initial = _positive_float(initial, "initial")
        self.decay_rate = _positive_float(decay_rate, "decay_rate")
        self.decay_steps = _positive_int(decay_steps, "decay_steps")
        if not isinstance(staircase, bool):
            raise TypeError(f"staircase must be True or False, got {staircase!r}")
        self.staircase = staircase

    def _progress(self, step):
        return step // self.decay_steps if self.staircase else step / self.decay_steps

    def get_config(self):
        return {"initial": self.initial, "decay_rate": self.decay_rate,
                "decay_steps": self.decay_steps, "staircase": self.staircase}


class ExponentialDecay(_TimeDecay):
    """``η(step) = initial · decay_rate^(step / decay_steps)``; with ``staircase=True`` the
    exponent is floored (a step decay)."""

    def _value(self, step):
        return _scaled_power(self.initial, self.decay_rate, self._progress(step))


class InverseTimeDecay(_TimeDecay):
    """``η(step) = initial / (1 + decay_rate · step / decay_steps)`` (``step / decay_steps``
    floored with ``staircase=True``)."""

    def _value(self, step):
        return self.initial / (1.0 + self.decay_rate * self._progress(step))


class CosineDecay(Schedule):
    """Cosine annealing (Loshchilov & Hutter 2017, without restarts), as Keras's ``CosineDecay``:
    ``η(step) = initial · ((1 − alpha) · ½ (1 + cos(π · min(step, T) / T)) + alpha)``, ``T =
    decay_steps``; it ends at ``alpha · initial`` and stays there."""

    def __init__(self, initial, decay_steps, alpha=0.0):
        self.initial = _positive_float(initial, "initial")
        self.decay_steps = _positive_int(decay_steps, "decay_steps")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise TypeError(f"alpha must be a number in [0, 1], got {type(alpha).__name__} "
                            f"{alpha!r}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
        self.alpha = float(alpha)

    def _value(self, step):
        frac = min(step, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * frac))
        return self.initial * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {"initial": self.initial, "decay_steps": self.decay_steps, "alpha": self.alpha}


class LinearWarmup(Schedule):
    """Linear warm-up to ``target`` over ``warmup_steps`` steps, then ``target``.

    ``target`` is a float or a Schedule (given as an instance or a ``{"class", "config"}`` dict).
    With ``peak = target(0)`` (or the float): ``η(step) = peak · (step + 1) / warmup_steps`` for
    ``step < warmup_steps`` (so the first step is not wasted with a zero rate), then
    ``target(step − warmup_steps)``: the target schedule starts its own count after warm-up.
    """

    def __init__(self, target, warmup_steps):
        if isinstance(target, dict):
            target = from_config(target)
        if not isinstance(target, Schedule):
            target = _positive_float(target, "target")
        self.target = target
        self.warmup_steps = _positive_int(warmup_steps, "warmup_steps")

    def _after(self, step):
        return self.target(step) if isinstance(self.target, Schedule) else self.target

    def _value(self, step):
        if step < self.warmup_steps:
            return self._after(0) * (step + 1) / self.warmup_steps
        return self._after(step - self.warmup_steps)

    def get_config(self):
        target = serialize(self.target) if isinstance(self.target, Schedule) else self.target
        return {"target": target, "warmup_steps": self.warmup_steps}


def serialize(schedule: Schedule) -> dict:
    """``{"class": name, "config": kwargs}``: JSON-able, the inverse of ``from_config``."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a Schedule, got {type(schedule).__name__}")
    return {"class": type(schedule).__name__, "config": schedule.get_config()}


def class_and_config(d, classes, what):
    """``(class, keyword arguments)`` from ``{"class": name, "config": kwargs}``, every part
    checked (``classes`` maps the known names; ``what`` names the thing in messages, as
    "a schedule"); shared by the schedules' and the optimizers' ``from_config``."""
    if not isinstance(d, dict):
        raise TypeError(f"{what} config must be a dict, got {type(d).__name__}")
    if not isinstance(d.get("class"), str):
        # a malformed config is a bad value, like any other missing key
        raise ValueError(  # noqa: TRY004
            f"{what} config needs a 'class' name, got {d!r}")
    cls = classes.get(d["class"])
    if cls is None:
        raise ValueError(f"unknown {what.split()[-1]} class {d['class']!r}; known: "
                         f"{', '.join(sorted(classes))}")
    config = d.get("config", {})
    if not isinstance(config, dict):
        raise TypeError(f"{what} config's 'config' must be a dict of {cls.__name__}'s "
                        f"arguments, got {type(config).__name__}")
    known = inspect.signature(cls).parameters
    unknown = sorted(str(k) for k in config if k not in known)
    if unknown:
        raise ValueError(f"{cls.__name__} has no arguments {unknown}; it takes {list(known)}")
    return cls, dict(config)


def from_config(d) -> Schedule:
    """Rebuild a schedule from ``{"class": name, "config": kwargs}``."""
    cls, config = class_and_config(d, SCHEDULE_CLASSES, "a schedule")
    return cls(**config)


def get(spec) -> Schedule:
    """A schedule from an instance, a number (``Constant``) or a ``{"class", "config"}`` dict."""
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, dict):
        return from_config(spec)
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return Constant(spec)
    raise TypeError(
        f"schedule must be a Schedule, a number or a config dict, got {type(spec).__name__}"
    )
