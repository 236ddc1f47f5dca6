"""Builds a callback out of plain functions, one per hook.

Owns `LambdaCallback`. Only the hooks given a function count as
overridden, so unused batch hooks stay free.
"""

from collections.abc import Callable
from typing import Any, Optional

from torchfit.callbacks.callback import Callback, Logs

__all__ = ["LambdaCallback"]

_HOOKS = (
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_begin",
    "on_train_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_batch_begin",
    "on_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_begin",
    "on_predict_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
)
_ALIASES = {"on_train_batch_begin": "on_batch_begin", "on_train_batch_end": "on_batch_end"}


class LambdaCallback(Callback):
    """A callback made of functions given for the hooks you need.

    Epoch hooks take `(epoch, logs)`, batch hooks `(batch, logs)`, and
    begin/end hooks `(logs)`.

    Args:
        on_epoch_begin: Called at the start of every epoch.
        on_epoch_end: Called at the end of every epoch.
        on_train_begin: Called when training starts.
        on_train_end: Called when training ends.
        on_train_batch_begin: Called before every training batch.
        on_train_batch_end: Called after every training batch.
        **kwargs: Any other hook by name (`on_test_end=...`,
            `on_batch_end=...`); other names are set as attributes, as in
            Keras.

    Example:
    >>> seen = []
    >>> callback = LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    >>> callback.on_epoch_end(0, {})
    >>> seen
    [0]
    """

    def __init__(
        self,
        on_epoch_begin: Optional[Callable] = None,
        on_epoch_end: Optional[Callable] = None,
        on_train_begin: Optional[Callable] = None,
        on_train_end: Optional[Callable] = None,
        on_train_batch_begin: Optional[Callable] = None,
        on_train_batch_end: Optional[Callable] = None,
        **kwargs: Any,
    ):
        super().__init__()
        given = dict(
            on_epoch_begin=on_epoch_begin,
            on_epoch_end=on_epoch_end,
            on_train_begin=on_train_begin,
            on_train_end=on_train_end,
            on_train_batch_begin=on_train_batch_begin,
            on_train_batch_end=on_train_batch_end,
        )
        for name, value in kwargs.items():
            if name in _HOOKS:
                given[name] = value
            else:
                setattr(self, name, value)
        self._functions = {name: fn for name, fn in given.items() if fn is not None}

    def _overrides(self, hook: str) -> bool:
        return hook in self._functions or _ALIASES.get(hook) in self._functions

    def _call(self, name: str, *args: Any) -> None:
        function = self._functions.get(name)
        if function is not None:
            function(*args)

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self._call("on_epoch_end", epoch, logs)

    def on_train_begin(self, logs: Logs = None) -> None:
        self._call("on_train_begin", logs)

    def on_train_end(self, logs: Logs = None) -> None:
        self._call("on_train_end", logs)

    def on_test_begin(self, logs: Logs = None) -> None:
        self._call("on_test_begin", logs)

    def on_test_end(self, logs: Logs = None) -> None:
        self._call("on_test_end", logs)

    def on_predict_begin(self, logs: Logs = None) -> None:
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs: Logs = None) -> None:
        self._call("on_predict_end", logs)

    def on_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self._call("on_batch_begin", batch, logs)

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._call("on_batch_end", batch, logs)

    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None:
        if "on_train_batch_begin" in self._functions:
            self._call("on_train_batch_begin", batch, logs)
        else:
            self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        if "on_train_batch_end" in self._functions:
            self._call("on_train_batch_end", batch, logs)
        else:
            self.on_batch_end(batch, logs)

    def on_test_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self._call("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._call("on_test_batch_end", batch, logs)

    def on_predict_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self._call("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None:
        self._call("on_predict_batch_end", batch, logs)
