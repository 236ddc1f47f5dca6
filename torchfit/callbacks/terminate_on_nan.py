"""Stops training at the first batch whose loss is NaN or infinite.

Owns the per-batch loss check. It reads `logs["loss"]` every batch, which
is one device sync per step: the price of catching the bad batch at once.
Under torchrun a rank's own loss can go bad alone: the callback then asks
the distribution to stop every rank together (`distribution/stopping.py`).
"""

import math

from torchfit.callbacks.callback import Callback, Logs
from torchfit.distribution import distribution_of

__all__ = ["TerminateOnNaN"]

_INVALID = "Invalid loss, terminating training"


class TerminateOnNaN(Callback):
    """Stops training when a batch's loss becomes NaN or infinite.

    Under torchrun each rank reads its own loss; a rank that finds it bad
    asks every rank to stop, and all of them stop (or raise) together a
    step later, each showing the same message.

    Args:
        raise_error: Whether to raise a `RuntimeError` instead of setting
            `model.stop_training` (which ends training after the current
            batch). Defaults to `False`.

    Example:
    >>> TerminateOnNaN(raise_error=True).raise_error
    True
    """

    def __init__(self, raise_error: bool = False):
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if math.isfinite(loss):
            return
        reason = self._error(batch, loss) if self.raise_error else _INVALID
        # Under torch.distributed every process stops (or raises) together, saying why.
        distribution_of(self.model).request_stop(batch, reason, error=self.raise_error)
        self.model.stop_training = True

    @staticmethod
    def _error(batch: int, loss: float) -> str:
        return (
            f"NaN or Inf loss encountered at batch {batch}. Loss value:"
            f" {loss}. Terminating training immediately. Check the"
            " learning rate, the inputs for NaNs, and the loss function."
        )
