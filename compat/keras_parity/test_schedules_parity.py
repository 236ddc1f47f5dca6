"""Every torchfit learning-rate schedule matches Keras 3 over 1,000 steps."""

import math
import os
from fractions import Fraction

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

keras = pytest.importorskip("keras")

from torchfit.optimizers import schedules  # noqa: E402

STEPS = 1000

CASES = [
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 100, "decay_rate": 0.9}),
    (
        "ExponentialDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 70, "decay_rate": 0.5, "staircase": True},
    ),
    ("PiecewiseConstantDecay", {"boundaries": [100, 250, 600], "values": [1.0, 0.5, 0.1, 0.01]}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 700}),
    (
        "PolynomialDecay",
        {
            "initial_learning_rate": 0.1,
            "decay_steps": 300,
            "end_learning_rate": 0.01,
            "power": 0.5,
            "cycle": True,
        },
    ),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 300, "power": 2.0}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 50, "decay_rate": 0.5}),
    (
        "InverseTimeDecay",
        {"initial_learning_rate": 0.1, "decay_steps": 50, "decay_rate": 0.5, "staircase": True},
    ),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 800}),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 600, "alpha": 0.1}),
    (
        "CosineDecay",
        {
            "initial_learning_rate": 0.0,
            "decay_steps": 500,
            "warmup_target": 0.2,
            "warmup_steps": 100,
            "alpha": 0.05,
        },
    ),
    (
        "CosineDecay",
        {
            "initial_learning_rate": 0.01,
            "decay_steps": 300,
            "warmup_target": 0.1,
            "warmup_steps": 250,
        },
    ),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 100}),
    (
        "CosineDecayRestarts",
        {
            "initial_learning_rate": 0.1,
            "first_decay_steps": 90,
            "t_mul": 1.0,
            "m_mul": 0.8,
            "alpha": 0.1,
        },
    ),
    (
        "CosineDecayRestarts",
        {"initial_learning_rate": 0.1, "first_decay_steps": 64, "t_mul": 1.5, "m_mul": 0.9},
    ),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]


def _keras_values(name, config):
    schedule = getattr(keras.optimizers.schedules, name)(**config)
    # Keras evaluates schedules at the optimizer's int iteration counter.
    steps = torch.arange(STEPS)
    return np.array([float(schedule(steps[i])) for i in range(STEPS)])


def _exact_restart_steps(config) -> dict:
    """{step: restart index} for the steps where a geometric SGDR period starts exactly.

    Keras finds the period with a float32 `log(...) / log(t_mul)`; at an exact
    restart that quotient is an integer only up to the machine's rounding, so
    the oracle lands on the new period's peak on some machines and on the old
    period's end on others. These steps are checked against exact arithmetic.
    """
    t_mul = Fraction(config.get("t_mul", 2.0))
    if t_mul == 1:
        return {}  # floor(step / first_decay_steps): exact in any float format
    first = config["first_decay_steps"]
    steps, index, start = {}, 0, Fraction(0)
    while start * first < STEPS:
        if (start * first).denominator == 1:
            steps[int(start * first)] = index
        index += 1
        start += t_mul ** (index - 1)
    return steps


def _sgdr_reference(config, step, restart):
    """CosineDecayRestarts at `step` in float64, inside the period that starts at `restart`."""
    t_mul = Fraction(config.get("t_mul", 2.0))
    start = sum((t_mul**i for i in range(restart)), Fraction(0))
    fraction = (Fraction(step, config["first_decay_steps"]) - start) / t_mul**restart
    peak = config.get("m_mul", 1.0) ** restart
    alpha = config.get("alpha", 0.0)
    cosine = 0.5 * peak * (1.0 + math.cos(math.pi * float(fraction)))
    return config["initial_learning_rate"] * ((1.0 - alpha) * cosine + alpha)


@pytest.mark.parametrize(("name", "config"), CASES, ids=IDS)
def test_matches_keras_for_1000_steps(name, config):
    expected = _keras_values(name, config)
    schedule = getattr(schedules, name)(**config)
    actual = np.array([schedule(step) for step in range(STEPS)])
    assert all(isinstance(schedule(step), float) for step in (0, 1, STEPS))
    restarts = _exact_restart_steps(config) if name == "CosineDecayRestarts" else {}
    others = np.array([step for step in range(STEPS) if step not in restarts])
    np.testing.assert_allclose(actual[others], expected[others], rtol=1e-5, atol=1e-8)
    for step, restart in restarts.items():
        # torchfit gives the new period's peak, as the exact formula does.
        assert actual[step] == pytest.approx(_sgdr_reference(config, step, restart), rel=1e-12)
        # Keras gives that, or (float32 log rounding down) the previous period's end.
        candidates = [_sgdr_reference(config, step, restart)]
        if restart:
            candidates.append(_sgdr_reference(config, step, restart - 1))
        assert min(abs(expected[step] - c) for c in candidates) <= 1e-5 * max(candidates) + 1e-8


def test_exact_restart_steps_are_found():
    # The case that failed on a fresh machine: 64 * (1 + 1.5) = 160 is a restart.
    assert _exact_restart_steps({"first_decay_steps": 64, "t_mul": 1.5}) == {
        0: 0,
        64: 1,
        160: 2,
        304: 3,
        520: 4,
        844: 5,
    }
    assert _exact_restart_steps({"first_decay_steps": 100}) == {0: 0, 100: 1, 300: 2, 700: 3}
    assert _exact_restart_steps({"first_decay_steps": 90, "t_mul": 1.0}) == {}


def test_restart_step_gives_the_new_periods_peak():
    schedule = schedules.CosineDecayRestarts(0.1, first_decay_steps=64, t_mul=1.5, m_mul=0.9)
    assert schedule(160) == pytest.approx(0.1 * 0.9**2, rel=1e-12)
    assert schedule(159) < 0.001  # the end of the previous period


@pytest.mark.parametrize(("name", "config"), CASES, ids=IDS)
def test_config_is_keras_config(name, config):
    ours = getattr(schedules, name)(**config).get_config()
    theirs = getattr(keras.optimizers.schedules, name)(**config).get_config()
    assert ours == theirs


def test_keras_serialized_schedule_deserializes():
    keras_schedule = keras.optimizers.schedules.CosineDecay(
        0.1, 100, warmup_target=0.2, warmup_steps=10
    )
    schedule = schedules.deserialize(keras.optimizers.schedules.serialize(keras_schedule))
    assert isinstance(schedule, schedules.CosineDecay)
    assert schedule(50) == pytest.approx(float(keras_schedule(torch.tensor(50))), rel=1e-6)
