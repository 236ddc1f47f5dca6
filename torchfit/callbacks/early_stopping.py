"""Stops training when a monitored value stops improving.

Owns patience, baseline, the warm-up (`start_from_epoch`), keeping and
restoring the best weights, and carrying all of it through a resumed run.
Reading the monitored value and its direction belongs to
`monitor_callback.py`; the loop honours `model.stop_training`.
"""

from typing import Optional

import numpy as np
import torch

from torchfit.callbacks.callback import Logs
from torchfit.callbacks.monitor_callback import MonitorCallback
from torchfit.utils.progbar import print_msg

__all__ = ["EarlyStopping"]


class EarlyStopping(MonitorCallback):
    """Stops training when a monitored metric has stopped improving.

    As in Keras 3, training never stops after the first epoch, and with
    `restore_best_weights=True` the best weights are restored at the end
    of training whether or not it stopped early.

    Args:
        monitor: Log key to watch. Defaults to `"val_loss"`.
        min_delta: Smallest absolute change counted as an improvement.
            Defaults to `0`.
        patience: Epochs without improvement before stopping. Defaults to
            `0`.
        verbose: `1` prints when it stops and restores. Defaults to `0`.
        mode: `"auto"`, `"min"` or `"max"`. Defaults to `"auto"`.
        baseline: Value to beat; training stops if the monitored value does
            not beat it within `patience` epochs. Defaults to `None`.
        restore_best_weights: Whether to restore the weights of the best
            epoch when training ends. Defaults to `False`.
        start_from_epoch: Epochs to wait before watching. Defaults to `0`.

    Example:
    >>> callback = EarlyStopping(monitor="loss", patience=3)
    >>> callback.patience
    3
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: Optional[float] = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = restore_best_weights
        self.best_weights = None
        self.best_epoch = 0
        self.start_from_epoch = start_from_epoch

    def on_train_begin(self, logs: Logs = None) -> None:
        # Reset, so one instance can serve several fit calls.
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        current = self._monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # Nothing better seen yet: the current weights are the best.
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # Patience restarts only once the baseline is beaten too.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def state_dict(self) -> dict:
        """Wait, best value and epoch, stop epoch and best weights.

        Example:
        >>> stopper = EarlyStopping(monitor="loss", patience=2)
        >>> stopper.on_train_begin()
        >>> stopper.on_epoch_end(0, {"loss": 0.5})
        >>> sorted(stopper.state_dict().items())  # doctest: +NORMALIZE_WHITESPACE
        [('best', 0.5), ('best_epoch', 0), ('best_weights', None), ('stopped_epoch', 0),
         ('wait', 0)]
        """
        weights = self.best_weights
        return {
            **super().state_dict(),
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "best_epoch": self.best_epoch,
            # As tensors: a backup is read back with weights_only=True.
            "best_weights": None
            if weights is None
            else [torch.from_numpy(np.array(w)) for w in weights],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Puts back the state of the interrupted run."""
        super().load_state_dict(state_dict)
        self.wait = state_dict["wait"]
        self.stopped_epoch = state_dict["stopped_epoch"]
        self.best_epoch = state_dict["best_epoch"]
        weights = state_dict["best_weights"]
        self.best_weights = None if weights is None else [w.numpy() for w in weights]

    def on_train_end(self, logs: Logs = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print_msg(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print_msg(
                    "Restoring model weights from the end of the best epoch:"
                    f" {self.best_epoch + 1}."
                )
            self.model.set_weights(self.best_weights)
