"""Tells what kind of learning rate an optimizer was given, as Keras does.

Owns the accepted kinds (a number, a `LearningRateSchedule`, or a callable),
whether a rate changes with the step, how a callable is called (with the
step, or with nothing when it takes no argument), and the number check. The
schedules themselves live in `schedules.py`; keeping the current rate in the
param groups belongs to `base.py`.
"""

import inspect
from collections.abc import Callable
from numbers import Number
from typing import Any, Union

import torch

from torchfit.optimizers import schedules

__all__ = ["LearningRate", "as_float", "is_learning_rate", "is_schedule", "takes_step"]

LearningRate = Union[float, schedules.LearningRateSchedule, Callable[..., float]]


def as_float(name: str, value: Any) -> float:
    """`value` as a float; raises `TypeError` naming `name` unless it is a number."""
    if isinstance(value, bool) or not isinstance(value, (Number, torch.Tensor)):
        raise TypeError(
            f"Argument `{name}` must be a number. Received: type {type(value).__name__}."
        )
    return float(value)


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
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        for p in parameters
    )
