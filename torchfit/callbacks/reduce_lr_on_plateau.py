"""Lowers the learning rate when a monitored value stops improving.

Owns factor, patience, cooldown, the floor `min_lr`, and carrying the wait
and cooldown counts through a resumed run. Reading and
writing the rate belongs to the helpers in `learning_rate_scheduler.py`;
the monitored value and its direction to `monitor_callback.py`.
"""

from typing import Any

import numpy as np

from torchfit.callbacks.callback import Logs
from torchfit.callbacks.learning_rate_scheduler import get_learning_rate, set_learning_rate
from torchfit.callbacks.monitor_callback import MonitorCallback
from torchfit.utils.progbar import print_msg

__all__ = ["ReduceLROnPlateau"]


class ReduceLROnPlateau(MonitorCallback):
    """Multiplies the learning rate by `factor` when a metric plateaus.

    Unlike torch's `ReduceLROnPlateau` (relative threshold by default),
    `min_delta` is absolute, as in Keras. Writes `learning_rate` (the rate
    used during the epoch) into the epoch logs.

    Args:
        monitor: Log key to watch. Defaults to `"val_loss"`.
        factor: Multiplier for the rate, below 1. Defaults to `0.1`.
        patience: Epochs without improvement before lowering. Defaults to
            `10`.
        verbose: `1` prints each reduction. Defaults to `0`.
        mode: `"auto"`, `"min"` or `"max"`. Defaults to `"auto"`.
        min_delta: Smallest absolute change counted as an improvement.
            Defaults to `1e-4`.
        cooldown: Epochs to wait after a reduction before counting again.
            Defaults to `0`.
        min_lr: Lower bound on the rate. Defaults to `0.0`.

    Raises:
        ValueError: If `factor >= 1`.

    Example:
    >>> callback = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2)
    >>> callback.factor
    0.5
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(monitor, mode, min_delta=min_delta)
        if factor >= 1.0:
            raise ValueError(
                "ReduceLROnPlateau does not support a factor >= 1.0: the rate"
                f" would never go down. Received: factor={factor}."
            )
        self.factor = factor
        self.min_lr = min_lr
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0

    def _reset(self) -> None:
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def in_cooldown(self) -> bool:
        """Whether the callback is waiting after a reduction."""
        return self.cooldown_counter > 0

    def on_train_begin(self, logs: Logs = None) -> None:
        self._reset()

    def state_dict(self) -> dict:
        """Best value, wait and cooldown counts.

        Example:
        >>> ReduceLROnPlateau(cooldown=2).state_dict()
        {'best': None, 'wait': 0, 'cooldown_counter': 0}
        """
        return {
            **super().state_dict(),
            "wait": self.wait,
            "cooldown_counter": self.cooldown_counter,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Puts back the state of the interrupted run."""
        super().load_state_dict(state_dict)
        self.wait = state_dict["wait"]
        self.cooldown_counter = state_dict["cooldown_counter"]

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs if logs is not None else {}
        logs["learning_rate"] = get_learning_rate(self.model.optimizer)
        current = self._monitor_value(logs)
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce(epoch):
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def _reduce(self, epoch: int) -> bool:
        optimizer = self.model.optimizer
        old_lr = get_learning_rate(optimizer)
        # Compared in float32, as Keras does, so a rate already at min_lr
        # (up to float32 rounding) is left alone.
        if not old_lr > np.float32(self.min_lr):
            return False
        new_lr = max(old_lr * self.factor, self.min_lr)
        set_learning_rate(optimizer, new_lr)
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
        return True
