"""Tells what kind of learning rate an optimizer was given, as Keras does.

Owns the accepted kinds (a number, a `LearningRateSchedule`, or a callable),
whether a rate changes with the step, how a callable is called (with the
step, or with nothing when it takes no argument), and the number checks
(a number, and a finite one). The
schedules themselves live in `schedules.py`; keeping the current rate in the
param groups belongs to `base.py`.
"""

import inspect
import math
from collections.abc import Callable
from numbers import Number
from typing import Any, Union

import torch

from torchfit.optimizers import schedules

__all__ = [
    "LearningRate",
    "as_float",
    "check_finite",
    "is_learning_rate",
    "is_schedule",
    "takes_step",
]

LearningRate = Union[float, schedules.LearningRateSchedule, Callable[..., float]]


def as_float(name: str, value: Any) -> float:
    """`value` as a float; raises `TypeError` naming `name` unless it is a number."""
    if isinstance(value, bool) or not isinstance(value, (Number, torch.Tensor)):
        raise TypeError(
            f"Argument `{name}` must be a number. Received: type {type(value).__name__}."
        )
    return float(value)


def check_finite(value: float, source: str) -> float:
    """Returns `value`, or raises a `ValueError` saying where a NaN/inf rate came from.

    `value` is a Python float (schedules are evaluated on the host, from the
    Python step count), so the check costs no device sync.

    Args:
        value: The learning rate about to be used.
        source: Where it came from, for the message, e.g.
            `"schedule ExponentialDecay at step 12"`.

    Example:
    >>> check_finite(0.01, "learning_rate")
    0.01
    >>> check_finite(float("nan"), "schedule decay at step 3")
    Traceback (most recent call last):
    ...
    ValueError: The learning rate from schedule decay at step 3 is nan. ...
    """
    if not math.isfinite(value):
        raise ValueError(
            f"The learning rate from {source} is {value}. A learning rate must be a"
            " finite number; check the schedule for a division by zero or an overflow."
        )
    return value


def is_learning_rate(value: Any) -> bool:
    """True for what Keras accepts as a learning rate (number, schedule, callable)."""
    if isinstance(value, bool) or isinstance(value, (torch.Tensor, torch.nn.Module)):
        return False
    return isinstance(value, Number) or callable(value)


def is_schedule(value: Any) -> bool:
    """True for a schedule or `step -> lr` callable (a learning rate that changes)."""
    return is_learning_rate(value) and not isinstance(value, Number)


def takes_step(schedule: Callable) -> bool:
    """Whether `schedule` is called with the step, as Keras decides.

    Schedules and callables with a positional parameter are; a callable
    without one is called with nothing.
    """
    if isinstance(schedule, schedules.LearningRateSchedule):
        return True
    try:
        parameters = inspect.signature(schedule).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in parameters
    )
