"""Every torchfit learning-rate schedule matches Keras 3 over 1,000 steps."""

import os

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

keras = pytest.importorskip("keras")

from torchfit.optimizers import schedules  # noqa: E402

STEPS = 1000

CASES = [
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 100, "decay_rate": 0.9}),
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 70, "decay_rate": 0.5, "staircase": True}),
    ("PiecewiseConstantDecay", {"boundaries": [100, 250, 600], "values": [1.0, 0.5, 0.1, 0.01]}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 700}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 300, "end_learning_rate": 0.01, "power": 0.5, "cycle": True}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 300, "power": 2.0}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 50, "decay_rate": 0.5}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 50, "decay_rate": 0.5, "staircase": True}),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 800}),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 600, "alpha": 0.1}),
    ("CosineDecay", {"initial_learning_rate": 0.0, "decay_steps": 500, "warmup_target": 0.2, "warmup_steps": 100, "alpha": 0.05}),
    ("CosineDecay", {"initial_learning_rate": 0.01, "decay_steps": 300, "warmup_target": 0.1, "warmup_steps": 250}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 100}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 90, "t_mul": 1.0, "m_mul": 0.8, "alpha": 0.1}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 64, "t_mul": 1.5, "m_mul": 0.9}),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CASES)]


def _keras_values(name, config):
    schedule = getattr(keras.optimizers.schedules, name)(**config)
    # Keras evaluates schedules at the optimizer's int iteration counter.
    steps = torch.arange(STEPS)
    return np.array([float(schedule(steps[i])) for i in range(STEPS)])


@pytest.mark.parametrize(("name", "config"), CASES, ids=IDS)
def test_matches_keras_for_1000_steps(name, config):
    expected = _keras_values(name, config)
    schedule = getattr(schedules, name)(**config)
    actual = np.array([schedule(step) for step in range(STEPS)])
    assert all(isinstance(schedule(step), float) for step in (0, 1, STEPS))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(("name", "config"), CASES, ids=IDS)
def test_config_is_keras_config(name, config):
    ours = getattr(schedules, name)(**config).get_config()
    theirs = getattr(keras.optimizers.schedules, name)(**config).get_config()
    assert ours == theirs


def test_keras_serialized_schedule_deserializes():
    keras_schedule = keras.optimizers.schedules.CosineDecay(0.1, 100, warmup_target=0.2, warmup_steps=10)
    schedule = schedules.deserialize(keras.optimizers.schedules.serialize(keras_schedule))
    assert isinstance(schedule, schedules.CosineDecay)
    assert schedule(50) == pytest.approx(float(keras_schedule(torch.tensor(50))), rel=1e-6)
