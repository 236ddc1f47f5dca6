"""Tests for torchfit.optimizers._learning_rate: what counts as a learning rate."""

import pytest
import torch

from torchfit.optimizers import _learning_rate as lr
from torchfit.optimizers import schedules


class _NoSignature:
    __signature__ = "not a signature"  # inspect.signature raises TypeError

    def __call__(self, *args):
        return 0.1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, True),
        (1, True),
        (lambda: 0.1, True),
        (schedules.ExponentialDecay(0.1, 2, 0.5), True),
        (True, False),
        (torch.tensor(0.1), False),
        (torch.nn.Linear(1, 1), False),
        ("0.1", False),
        ([0.1], False),
    ],
)
def test_is_learning_rate(value, expected):
    assert lr.is_learning_rate(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, False),
        (3, False),
        (lambda step: 0.1, True),
        (schedules.ExponentialDecay(0.1, 2, 0.5), True),
        (torch.nn.Linear(1, 1), False),
    ],
)
def test_is_schedule(value, expected):
    assert lr.is_schedule(value) is expected


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (schedules.ExponentialDecay(0.1, 2, 0.5), True),
        (lambda: 0.1, False),
        (lambda step: 0.1, True),
        (lambda *args: 0.1, True),
        (lambda *, step=0: 0.1, False),
        (_NoSignature(), True),
    ],
)
def test_takes_step(schedule, expected):
    assert lr.takes_step(schedule) is expected


def test_as_float():
    assert lr.as_float("learning_rate", 1) == 1.0 and isinstance(lr.as_float("x", 1), float)
    assert lr.as_float("learning_rate", torch.tensor(0.5)) == 0.5
    for bad in ("0.1", True, None):
        with pytest.raises(TypeError, match="`learning_rate` must be a number"):
            lr.as_float("learning_rate", bad)
