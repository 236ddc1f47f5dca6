"""Sets the learning rate at the start of each epoch from a schedule.

Owns `LearningRateScheduler` (refusing a rate that is not a finite number,
and calling the schedule with the same rate again when a resumed run
repeats an epoch) and the two helpers every learning-rate callback uses to
read and write an optimizer's rate, whether it is a torchfit optimizer
(`learning_rate` property) or a plain torch one (`param_groups[i]["lr"]`).
Per-step schedules belong to `torchfit.optimizers.schedules`.
"""

import math
from collections.abc import Callable
from typing import Any, Optional

import numpy as np

from torchfit.callbacks.callback import Callback, Logs
from torchfit.utils.progbar import print_msg

__all__ = ["LearningRateScheduler"]


def get_learning_rate(optimizer: Any) -> float:
    """The optimizer's current learning rate as a Python float.

    Raises:
        ValueError: If the optimizer has neither `learning_rate` nor
            `param_groups`.
    """
    if hasattr(optimizer, "learning_rate"):
        value = optimizer.learning_rate
        if hasattr(value, "detach"):
            value = value.detach().cpu()
        return float(value)
    if hasattr(optimizer, "param_groups"):
        return float(optimizer.param_groups[0]["lr"])
    raise ValueError(
        "The optimizer must have a `learning_rate` attribute or torch"
        f" `param_groups`. Received an optimizer of type {type(optimizer).__name__}."
    )


def set_learning_rate(optimizer: Any, value: float) -> None:
    """Sets the learning rate (every param group's, for a torch optimizer)."""
    if hasattr(optimizer, "learning_rate"):
        optimizer.learning_rate = value
        return
    if hasattr(optimizer, "param_groups"):
        for group in optimizer.param_groups:
            group["lr"] = value
        return
    raise ValueError(
        "The optimizer must have a `learning_rate` attribute or torch"
        f" `param_groups`. Received an optimizer of type {type(optimizer).__name__}."
    )


class LearningRateScheduler(Callback):
    """Sets the learning rate from `schedule(epoch, lr)` before each epoch.

    Also writes the rate into the epoch logs as `learning_rate`.

    Args:
        schedule: Function `(epoch, lr) -> new_lr` with `epoch` from 0 and
            `lr` the current rate (a one-argument `schedule(epoch)` also
            works), returning a float.
        verbose: `1` prints each change. Defaults to `0`.

    Example:
    >>> def halve_after_two(epoch, lr):
    ...     return lr if epoch < 2 else lr * 0.5
    >>> callback = LearningRateScheduler(halve_after_two)
    """

    def __init__(self, schedule: Callable[..., float], verbose: int = 0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose
        # The epoch last scheduled and the rate the schedule was given then.
        self._scheduled_epoch: Optional[int] = None
        self._rate_given: Optional[float] = None

    def on_train_begin(self, logs: Logs = None) -> None:
        self._scheduled_epoch = self._rate_given = None

    def state_dict(self) -> dict:
        """The epoch last scheduled and the rate the schedule received then.

        Example:
        >>> LearningRateScheduler(lambda epoch, lr: lr).state_dict()
        {'epoch': None, 'learning_rate': None}
        """
        return {"epoch": self._scheduled_epoch, "learning_rate": self._rate_given}

    def load_state_dict(self, state_dict: dict) -> None:
        """Puts back the last scheduled epoch of the interrupted run."""
        self._scheduled_epoch = state_dict["epoch"]
        self._rate_given = state_dict["learning_rate"]

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        optimizer = self.model.optimizer
        current = get_learning_rate(optimizer)
        if epoch == self._scheduled_epoch:
            # A resumed run repeats this epoch after the rate was already set
            # for it: give the schedule the rate it was given the first time.
            current = self._rate_given
        self._scheduled_epoch, self._rate_given = epoch, current
        learning_rate = self._call_schedule(epoch, current)
        set_learning_rate(optimizer, learning_rate)
        if self.verbose > 0:
            print_msg(
                f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning"
                f" rate to {learning_rate}."
            )

    def _call_schedule(self, epoch: int, current: float) -> float:
        try:
            learning_rate = self.schedule(epoch, current)
        except TypeError:
            # Older schedules take only the epoch.
            learning_rate = self.schedule(epoch)
        if hasattr(learning_rate, "detach"):
            learning_rate = float(learning_rate.detach().cpu())
        if not isinstance(learning_rate, (float, int, np.floating, np.integer)) or isinstance(
            learning_rate, bool
        ):
            raise ValueError(
                "The output of the `schedule` function should be a float."
                f" Received: {learning_rate!r} of type {type(learning_rate).__name__}."
            )
        if not math.isfinite(learning_rate):
            raise ValueError(
                f"The `schedule` function returned a learning rate of {float(learning_rate)}"
                f" for epoch {epoch} (from 0), given lr={current}. A learning rate must be"
                " a finite number: check the schedule for a division by zero or an overflow."
            )
        return float(learning_rate)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if logs is not None:
            logs["learning_rate"] = get_learning_rate(self.model.optimizer)
