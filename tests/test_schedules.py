"""Learning-rate schedules: values against their formulas, serialisation, use in an optimizer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import portable_nn as pnn
from portable_nn.parameter import Parameter
from tests.conftest import to_np

S = pnn.schedules


def test_constant():
    assert [S.Constant(0.3)(s) for s in (0, 1, 1000)] == [0.3, 0.3, 0.3]


def test_step_decay_halves_every_step_size():
    sched = S.StepDecay(0.8, 0.5, 10)
    assert [sched(s) for s in (0, 9, 10, 19, 20, 35)] == [0.8, 0.8, 0.4, 0.4, 0.2, 0.1]


def test_exponential_decay_smooth_and_staircase():
    smooth = S.ExponentialDecay(0.1, 0.5, 4)
    assert smooth(0) == 0.1
    assert smooth(4) == pytest.approx(0.05, rel=1e-15)
    assert smooth(2) == pytest.approx(0.1 / math.sqrt(2.0), rel=1e-15)
    assert smooth(6) == pytest.approx(0.1 * 0.5**1.5, rel=1e-15)
    stairs = S.ExponentialDecay(0.1, 0.5, 4, staircase=True)
    assert [stairs(s) for s in (0, 3, 4, 7, 8)] == [0.1, 0.1, 0.05, 0.05, 0.025]


def test_inverse_time_decay():
    sched = S.InverseTimeDecay(1.0, 0.5, 2)
    assert sched(0) == 1.0
    assert sched(2) == pytest.approx(1 / 1.5, rel=1e-15)
    assert sched(3) == pytest.approx(1 / 1.75, rel=1e-15)
    stairs = S.InverseTimeDecay(1.0, 0.5, 2, staircase=True)
    assert stairs(3) == pytest.approx(1 / 1.5, rel=1e-15)


def test_cosine_decay_endpoints_midpoint_and_floor():
    sched = S.CosineDecay(0.2, 100)
    assert sched(0) == pytest.approx(0.2, rel=1e-15)
    assert sched(50) == pytest.approx(0.1, rel=1e-14)
    assert sched(25) == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi / 4)), rel=1e-14)
    assert sched(100) == pytest.approx(0.0, abs=1e-17)
    floor = S.CosineDecay(0.2, 100, alpha=0.1)
    assert floor(100) == pytest.approx(0.02, rel=1e-14)
    assert floor(500) == floor(100)  # stays at alpha·initial after decay_steps
    assert floor(50) == pytest.approx(0.2 * (0.9 * 0.5 + 0.1), rel=1e-14)


def test_cosine_decay_holds_its_end_value_past_decay_steps():
    """Past T the cosine must not come back up: without min(step, T), step 1.5·T gives
    cos(1.5π) = 0, i.e. half the initial rate (2T or 5T would hide it: cos(2kπ ± π) = −1)."""
    sched = S.CosineDecay(0.2, 100)
    for step in (101, 150, 199, 250):
        assert sched(step) == pytest.approx(0.0, abs=1e-17), step
    floor = S.CosineDecay(0.2, 100, alpha=0.1)
    for step in (150, 175, 1000):
        assert floor(step) == pytest.approx(0.02, rel=1e-14), step


def test_linear_warmup_to_a_float_and_to_a_schedule():
    warm = S.LinearWarmup(0.4, 4)
    assert [warm(s) for s in range(6)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])
    then = S.LinearWarmup(S.StepDecay(0.4, 0.5, 3), 2)
    # warm-up reaches the target's first value, then the target counts from 0
    assert [then(s) for s in range(8)] == pytest.approx(
        [0.2, 0.4, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2]
    )


ALL = [
    S.Constant(0.1),
    S.StepDecay(0.1, 0.5, 3),
    S.ExponentialDecay(0.1, 0.9, 5, staircase=True),
    S.InverseTimeDecay(0.1, 2.0, 7),
    S.CosineDecay(0.1, 20, alpha=0.05),
    S.LinearWarmup(S.CosineDecay(0.1, 20), 5),
]


@pytest.mark.parametrize("sched", ALL, ids=lambda s: type(s).__name__)
def test_serialisation_round_trip(sched):
    text = json.dumps(S.serialize(sched))
    rebuilt = S.from_config(json.loads(text))
    assert type(rebuilt) is type(sched)
    assert [rebuilt(s) for s in range(40)] == [sched(s) for s in range(40)]
    assert S.get(json.loads(text)).get_config() == sched.get_config()


def test_get():
    assert S.get(0.5)(10) == 0.5
    sched = S.CosineDecay(0.1, 10)
    assert S.get(sched) is sched
    with pytest.raises(TypeError, match="schedule"):
        S.get("cosine")
    with pytest.raises(ValueError, match="unknown schedule class"):
        S.from_config({"class": "Polynomial", "config": {}})


BAD = [
    (lambda: S.Constant(0.0), ValueError, "value"),
    (lambda: S.StepDecay(-0.1, 0.5, 3), ValueError, "initial"),
    (lambda: S.StepDecay(0.1, 0.0, 3), ValueError, "decay_rate"),
    (lambda: S.StepDecay(0.1, 0.5, 0), ValueError, "step_size"),
    (lambda: S.StepDecay(0.1, 0.5, 2.5), TypeError, "step_size"),
    (lambda: S.ExponentialDecay(0.1, 0.5, 0), ValueError, "decay_steps"),
    (lambda: S.ExponentialDecay(0.1, 0.5, 3, staircase="no"), TypeError, "staircase"),
    (lambda: S.InverseTimeDecay(float("inf"), 0.5, 3), ValueError, "initial"),
    (lambda: S.CosineDecay(0.1, 10, alpha=1.5), ValueError, "alpha"),
    (lambda: S.CosineDecay(0.1, -10), ValueError, "decay_steps"),
    (lambda: S.LinearWarmup(0.1, 0), ValueError, "warmup_steps"),
    (lambda: S.LinearWarmup("high", 3), TypeError, "target"),
    (lambda: S.CosineDecay(0.1, 10, alpha="none"), TypeError, "alpha"),
    (lambda: S.CosineDecay(0.1, 10, alpha=math.nan), ValueError, "alpha"),
    (lambda: S.ExponentialDecay(0.1, math.inf, 3), ValueError, "decay_rate"),
    (lambda: S.InverseTimeDecay(0.1, "fast", 3), TypeError, "decay_rate"),
    (lambda: S.from_config({"class": "CosineDecay", "config": {"initial": 0.1,
                                                               "decay_step": 10}}),
     ValueError, "decay_step"),
    (lambda: S.from_config({"class": "CosineDecay", "config": [0.1, 10]}), TypeError, "config"),
    (lambda: S.from_config({"config": {}}), ValueError, "class"),
    (lambda: S.LinearWarmup({"class": "Nope"}, 3), ValueError, "unknown schedule class"),
]


@pytest.mark.parametrize("make,exc,argname", BAD, ids=[f"{i}-{a}" for i, (_, _, a) in
                                                       enumerate(BAD)])
def test_bad_arguments_raise(make, exc, argname):
    with pytest.raises(exc, match=argname):
        make()


def test_bad_steps_raise():
    sched = S.StepDecay(0.1, 0.5, 3)
    with pytest.raises(ValueError, match="step"):
        sched(-1)
    with pytest.raises(TypeError, match="step"):
        sched(1.5)
    with pytest.raises(TypeError, match="step"):
        sched(True)
    assert sched(np.int64(4)) == sched(4) == pytest.approx(0.05)  # any integer type


@pytest.mark.parametrize("sched,ok_step,ok_value,bad_step", [
    (S.ExponentialDecay(0.1, decay_rate=10, decay_steps=1), 2, 10.0, 1000),
    (S.ExponentialDecay(0.1, decay_rate=10, decay_steps=1, staircase=True), 3, 100.0, 400),
    (S.StepDecay(0.1, 10.0, 1), 1, 1.0, 400),
    (S.LinearWarmup(S.ExponentialDecay(1.0, 2.0, 1), 2), 3, 2.0, 2000),
], ids=["exponential", "staircase", "step", "warmup"])
def test_a_growing_rate_is_allowed_until_it_overflows(sched, ok_step, ok_value, bad_step):
    """decay_rate > 1 grows the rate (a range test); where it leaves the floats the call raises
    ValueError instead of Python's OverflowError (or an inf that would wreck the weights)."""
    assert sched(ok_step) == pytest.approx(ok_value, rel=1e-14)
    with pytest.raises(ValueError, match=r"at step \d+ gives the learning rate inf"):
        sched(bad_step)
    # a decaying rate underflows to 0.0 instead, which is a valid (if useless) rate
    assert S.ExponentialDecay(0.1, 1e-5, 1)(1000) == 0.0


def test_an_overflowing_schedule_stops_the_step_before_anything_changes(backend):
    sgd = pnn.optimizers.SGD(S.ExponentialDecay(1e-3, decay_rate=1e10, decay_steps=1),
                             momentum=0.5)
    p = Parameter(backend.asarray(np.ones(2), dtype="float64"), name="w")
    p.grad = backend.asarray(np.ones(2), dtype="float64")
    with pytest.raises(ValueError, match="overflows"):
        for _ in range(40):
            sgd.step([p])
    # 1e-3 · 1e10^31 = 1e307 is still a float (though 1e10^31 alone is not); 1e-3 · 1e10^32 is
    # not: the 33rd step, at iterations 32, is refused
    assert sgd.iterations == 32
    kept = to_np(p.value).copy()
    assert np.all(np.isfinite(kept))
    with pytest.raises(ValueError, match="overflows"):
        sgd.step([p])
    assert sgd.iterations == 32
    np.testing.assert_array_equal(to_np(p.value), kept)


def test_a_users_schedule_that_returns_nan_is_refused():
    class Broken(S.Schedule):
        def _value(self, step):
            return math.nan

    class Bypass(S.Schedule):  # overrides __call__ itself, so the base check does not run
        def __call__(self, step):
            return -1.0

    with pytest.raises(ValueError, match="nan"):
        Broken()(0)
    sgd = pnn.optimizers.SGD(Bypass())
    with pytest.raises(ValueError, match="schedule"):
        sgd.current_lr()


def test_schedule_as_optimizer_learning_rate(backend):
    """With a constant gradient 1, SGD moves the weight by exactly the sum of the rates, and the
    schedule is evaluated at step 0, 1, 2, ... (batches)."""
    sched = S.StepDecay(0.5, 0.1, 2)
    sgd = pnn.optimizers.SGD(sched)
    p = Parameter(backend.asarray(np.zeros(2), dtype="float64"))
    rates = []
    for _ in range(5):
        rates.append(sgd.current_lr())
        p.grad = backend.asarray(np.ones(2), dtype="float64")
        sgd.step([p])
    assert rates == [0.5, 0.5, 0.05, 0.05, pytest.approx(0.005, rel=1e-14)]
    np.testing.assert_allclose(to_np(p.value), -sum(rates) * np.ones(2), rtol=1e-14)
    # swapping the rate mid-training (as a callback would) takes effect at the next step
    sgd.learning_rate = 1.0
    assert sgd.current_lr() == 1.0 and isinstance(sgd.current_lr(), float)
