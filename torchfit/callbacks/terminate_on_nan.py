"""Stops training at the first batch whose loss is NaN or infinite.

Owns the per-batch loss check. It reads `logs["loss"]` every batch, which
is one device sync per step: the price of catching the bad batch at once.
"""

import math

from torchfit.callbacks.callback import Callback, Logs
from torchfit.utils.progbar import print_msg

__all__ = ["TerminateOnNaN"]


class TerminateOnNaN(Callback):
    """Stops training when a batch's loss becomes NaN or infinite.

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
        if self.raise_error:
            raise RuntimeError(
                f"NaN or Inf loss encountered at batch {batch}. Loss value:"
                f" {loss}. Terminating training immediately. Check the"
                " learning rate, the inputs for NaNs, and the loss function."
            )
        print_msg(f"Batch {batch}: Invalid loss, terminating training")
        self.model.stop_training = True
