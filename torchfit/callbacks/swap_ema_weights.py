"""Evaluates and predicts with the optimizer's moving-average weights.

Owns when to swap (around every evaluation and prediction, and optionally
at each epoch end), and which weights the model holds through a resumed
run. How the average is kept and swapped belongs to the
optimizer (`use_ema=True`), through its `swap_ema_weights()` and
`finalize_variable_values()` methods.
"""

from typing import Any

from torchfit.callbacks.callback import Callback, Logs

__all__ = ["SwapEMAWeights"]


class SwapEMAWeights(Callback):
    """Swaps the model's weights with the optimizer's EMA weights and back.

    Evaluation (also the validation inside `fit`) and prediction run with
    the moving-average weights; training continues on the raw weights. With
    `swap_on_epoch=True` the EMA weights are also in the model from each
    epoch's end to the next epoch's start, so checkpoints written at epoch
    end hold them (put this callback before `ModelCheckpoint`).

    Args:
        swap_on_epoch: Whether to swap at each epoch's end and back at the
            next epoch's start. Defaults to `False`.

    Example:
    >>> SwapEMAWeights(swap_on_epoch=True).swap_on_epoch
    True
    """

    def __init__(self, swap_on_epoch: bool = False):
        super().__init__()
        self.swap_on_epoch = swap_on_epoch
        self._ema_weights_in_model = False

    def state_dict(self) -> dict:
        """Whether the model holds the EMA weights (between two epochs).

        Example:
        >>> SwapEMAWeights().state_dict()
        {'ema_weights_in_model': False}
        """
        return {"ema_weights_in_model": self._ema_weights_in_model}

    def load_state_dict(self, state_dict: dict) -> None:
        """Puts back which weights the model held when the run was backed up."""
        self._ema_weights_in_model = state_dict["ema_weights_in_model"]

    def _optimizer(self) -> Any:
        optimizer = self.model.optimizer
        # A loss-scale wrapper keeps the real optimizer inside.
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)
        if not getattr(optimizer, "use_ema", False) or not hasattr(optimizer, "swap_ema_weights"):
            raise ValueError(
                "SwapEMAWeights needs an optimizer created with `use_ema=True`"
                " (e.g. `torchfit.optimizers.Adam(use_ema=True)`). Received an"
                f" optimizer of type {type(optimizer).__name__} with"
                f" use_ema={getattr(optimizer, 'use_ema', None)}."
            )
        return optimizer

    def _swap(self) -> None:
        self._optimizer().swap_ema_weights()
        self._ema_weights_in_model = not self._ema_weights_in_model

    def _swap_in(self) -> None:
        if not self._ema_weights_in_model:
            self._swap()

    def _swap_out(self) -> None:
        if self._ema_weights_in_model:
            self._swap()

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        if self.swap_on_epoch:
            self._swap_out()

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if not self.swap_on_epoch:
            return
        self._swap_in()
        if epoch == (self.params or {}).get("epochs", 0) - 1:
            # The model now holds the EMA weights; make the average equal
            # them, so the end-of-fit finalisation (average -> model) keeps
            # them instead of swapping the raw weights back in.
            optimizer = self._optimizer()
            if hasattr(optimizer, "finalize_variable_values"):
                self._sync_average_to_model(optimizer)

    def _sync_average_to_model(self, optimizer: Any) -> None:
        # The optimizer swaps, so swapping back and finalising puts the
        # average (now in the model) in place on both sides.
        optimizer.swap_ema_weights()
        optimizer.finalize_variable_values()
        self._ema_weights_in_model = True

    def on_test_begin(self, logs: Logs = None) -> None:
        self._swap_in()

    def on_test_end(self, logs: Logs = None) -> None:
        self._swap_out()

    def on_predict_begin(self, logs: Logs = None) -> None:
        self._swap_in()

    def on_predict_end(self, logs: Logs = None) -> None:
        self._swap_out()
