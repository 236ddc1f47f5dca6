"""Calls every hook on a list of callbacks, as Keras's `CallbackList` does.

Owns adding the default `History` and `ProgbarLogger`, turning epoch logs
into Python floats once for all callbacks, and keeping per-batch dispatch
free: for each batch hook it lists, once, the callbacks that override it,
so a batch hook nobody overrides costs one attribute read and a return.
Batch logs are passed on lazily (a `torchfit.logs.BatchLogs`); whoever reads
them pays the device sync. The order in which hooks fire belongs to
`loops.py`.
"""

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Optional

from torchfit.callbacks.backup_and_restore import BackupAndRestore
from torchfit.callbacks.callback import BATCH_HOOKS, Callback, Logs
from torchfit.callbacks.history import History
from torchfit.callbacks.progbar_logger import ProgbarLogger
from torchfit.distribution import distribution_of
from torchfit.logs import as_batch_logs, pythonify_logs

__all__ = ["CallbackList"]


def _flatten(callbacks: Any) -> list:
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):  # a CallbackList too: nested whole, as Keras does
        return [callbacks]
    if isinstance(callbacks, Iterable):
        flat = []
        for item in callbacks:
            flat.extend(_flatten(item))
        return flat
    raise TypeError(
        "`callbacks` must be a list of `torchfit.callbacks.Callback` objects."
        f" Received an item of type {type(callbacks).__name__}."
    )


def _host_logs(logs: Logs) -> dict:
    # One conversion per epoch-level hook, shared by every callback, so a
    # key one callback adds (learning_rate) is seen by the ones after it.
    if not logs:
        return {}
    return pythonify_logs(logs)


def _batch_logs(logs: Logs) -> Mapping:
    # A plain dict may hold device tensors: its copy is left to a reader.
    return {} if logs is None else as_batch_logs(logs)


class CallbackList(Callback):
    """A list of callbacks called as one.

    Args:
        callbacks: `Callback` objects (nested lists are flattened). Defaults
            to `None`.
        add_history: Whether to add a `History` if none is in the list.
            Defaults to `False`.
        add_progbar: Whether to add a `ProgbarLogger` if none is in the list;
            none is added when `params["verbose"]` is 0. Defaults to `False`.
        model: The model given to every callback. Defaults to `None`.
        **params: Run parameters given to every callback (`verbose`,
            `epochs`, `steps`).

    Example:
    >>> callbacks = CallbackList([Callback()], add_history=True, verbose=0,
    ...                          epochs=1, steps=1)
    >>> [type(c).__name__ for c in callbacks]
    ['Callback', 'History']
    >>> callbacks.needs_batch_logs
    False
    """

    def __init__(
        self,
        callbacks: Any = None,
        add_history: bool = False,
        add_progbar: bool = False,
        model: Any = None,
        **params: Any,
    ):
        super().__init__()
        self.callbacks: list[Callback] = _flatten(callbacks)
        if not distribution_of(model).is_chief:
            # Printers and writers run on rank 0 only (they say so: `chief_only`).
            self.callbacks = [c for c in self.callbacks if not c.chief_only]
            add_progbar = False
        self._history: Optional[History] = None
        self._progbar: Optional[ProgbarLogger] = None
        self._add_default_callbacks(add_history, add_progbar, params)
        self._share_callbacks()
        self._hooks: dict[str, list] = {}
        self.set_model(model)
        self.set_params(params)

    def _add_default_callbacks(self, add_history: bool, add_progbar: bool, params: dict) -> None:
        for callback in self.callbacks:
            if isinstance(callback, ProgbarLogger):
                self._progbar = callback
            elif isinstance(callback, History):
                self._history = callback
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar and params.get("verbose", 1) != 0:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)

    def _share_callbacks(self) -> None:
        # BackupAndRestore carries the other callbacks' states in its backups.
        for callback in self.callbacks:
            if isinstance(callback, BackupAndRestore):
                callback.set_callbacks(self.callbacks)

    def _refresh_batch_hooks(self) -> None:
        self._hooks = {
            hook: [getattr(cb, hook) for cb in self.callbacks if cb._overrides(hook)]
            for hook in BATCH_HOOKS
        }
        self._train_batch_begin = self._hooks["on_train_batch_begin"]
        self._train_batch_end = self._hooks["on_train_batch_end"]
        self._test_batch_begin = self._hooks["on_test_batch_begin"]
        self._test_batch_end = self._hooks["on_test_batch_end"]
        self._predict_batch_begin = self._hooks["on_predict_batch_begin"]
        self._predict_batch_end = self._hooks["on_predict_batch_end"]

    @property
    def needs_batch_logs(self) -> bool:
        """Whether some callback may read the logs of a train or test batch.

        When `False`, the loop may pass `None` to the batch-end hooks and
        skip building logs altogether.
        """
        return bool(self._train_batch_end or self._test_batch_end)

    def append(self, callback: Callback) -> None:
        """Adds `callback` at the end, giving it the list's model and params."""
        for new in _flatten(callback):
            self.callbacks.append(new)
            if self._model is not None:
                new.set_model(self._model)
            if self.params:
                new.set_params(self.params)
        self._share_callbacks()
        self._refresh_batch_hooks()

    def __iter__(self) -> Iterator[Callback]:
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    def set_params(self, params: Optional[dict]) -> None:
        """Gives `params` to every callback (when not empty)."""
        self.params = params
        if params:
            for callback in self.callbacks:
                callback.set_params(params)
        # Some callbacks decide from params (verbose) whether they need
        # batch hooks at all.
        self._refresh_batch_hooks()

    def set_model(self, model: Any) -> None:
        """Gives `model` to every callback and sets `model.history`."""
        if model is None:
            return
        super().set_model(model)
        if self._history is not None:
            model.history = self._history
        for callback in self.callbacks:
            callback.set_model(model)
        self._refresh_batch_hooks()

    # Batch hooks: the hot path. Skipped entirely when nobody overrides.

    def on_batch_begin(self, batch: int, logs: Logs = None) -> None:
        self.on_train_batch_begin(batch, logs)

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        self.on_train_batch_end(batch, logs)

    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None:
        if self._train_batch_begin:
            logs = _batch_logs(logs)
            for hook in self._train_batch_begin:
                hook(batch, logs)

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        if self._train_batch_end:
            logs = _batch_logs(logs)
            for hook in self._train_batch_end:
                hook(batch, logs)

    def on_test_batch_begin(self, batch: int, logs: Logs = None) -> None:
        if self._test_batch_begin:
            logs = _batch_logs(logs)
            for hook in self._test_batch_begin:
                hook(batch, logs)

    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None:
        if self._test_batch_end:
            logs = _batch_logs(logs)
            for hook in self._test_batch_end:
                hook(batch, logs)

    def on_predict_batch_begin(self, batch: int, logs: Logs = None) -> None:
        for hook in self._predict_batch_begin:
            hook(batch, {} if logs is None else logs)

    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None:
        # Predict logs hold the outputs themselves ({"outputs": ...}): they
        # are passed as produced, never flattened or converted.
        for hook in self._predict_batch_end:
            hook(batch, {} if logs is None else logs)

    # Epoch and run hooks: logs become Python floats once, for everybody.

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        logs = _host_logs(logs)
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = _host_logs(logs)
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)

    def on_train_begin(self, logs: Logs = None) -> None:
        logs = _host_logs(logs)
        for callback in self.callbacks:
            callback.on_train_begin(logs)

    def on_train_end(self, logs: Logs = None) -> None:
        logs = _host_logs(logs)
        for callback in self.callbacks:
            callback.on_train_end(logs)

    def on_test_begin(self, logs: Logs = None) -> None:
        logs = _host_logs(logs)
        for callback in self.callbacks:
            callback.on_test_begin(logs)

    def on_test_end(self, logs: Logs = None) -> None:
        logs = _host_logs(logs)
        for callback in self.callbacks:
            callback.on_test_end(logs)

    def on_predict_begin(self, logs: Logs = None) -> None:
        logs = _host_logs(logs)
        for callback in self.callbacks:
            callback.on_predict_begin(logs)

    def on_predict_end(self, logs: Logs = None) -> None:
        logs = _host_logs(logs)
        for callback in self.callbacks:
            callback.on_predict_end(logs)
