"""Records each epoch's logs: the `History` object `fit` returns.

Owns `history.history` (name -> list of per-epoch floats) and
`history.epoch`. Converting logs to floats belongs to `callback_list.py`.
"""

from typing import Any

from torchfit.callbacks.callback import Callback, Logs

__all__ = ["History"]


class History(Callback):
    """Records the logs of every epoch; `fit` returns it.

    Added by `fit` automatically. As in Keras 3, `epoch` restarts at each
    `fit` call while `history` keeps appending when the same object is
    reused (a new `fit` normally gets a new `History`).

    Attributes:
        history: Dict of lists, e.g. `{"loss": [0.5, 0.3], "val_loss": [0.6,
            0.4]}`.
        epoch: Indices (from 0) of the epochs recorded in this `fit`.
        params: The run parameters, e.g. `{"verbose": 1, "epochs": 2,
            "steps": 10}`.

    Example:
    >>> history = History()
    >>> history.on_train_begin()
    >>> history.on_epoch_end(0, {"loss": 0.5})
    >>> history.history
    {'loss': [0.5]}
    """

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[Any]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs: Logs = None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        # Point the model at the latest state, as Keras does after each epoch.
        if self.model is not None:
            self.model.history = self
