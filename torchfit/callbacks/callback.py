"""Defines `Callback`, the base class every training hook inherits.

Owns the hook names and signatures (Keras 3's, exactly) and the rule that
`on_train_batch_begin/end` fall back to the `on_batch_begin/end` aliases.
Calling the hooks in order belongs to `loops.py`; dispatching them to many
callbacks at once belongs to `callback_list.py`.
"""

from collections.abc import Mapping
from typing import Any, Optional

from torch.nn.parallel import DistributedDataParallel

from torchfit.utils.arguments import check_count

__all__ = ["Callback", "Logs"]

Logs = Optional[Mapping[str, Any]]

# Hooks called once per batch: `CallbackList` skips a callback for these
# unless it overrides them, so an untouched hook costs nothing per step.
BATCH_HOOKS = (
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
)

# The default train-batch hooks call these aliases, so overriding an alias
# counts as overriding the train-batch hook.
_ALIASES = {
    "on_train_batch_begin": "on_batch_begin",
    "on_train_batch_end": "on_batch_end",
}


def check_batch_frequency(name: str, value: Any, *, words: tuple = ("epoch",)) -> None:
    """Raises a clear error unless `value` is one of `words` or a positive
    number of batches (the `save_freq`/`update_freq` arguments)."""
    if isinstance(value, str) and value in words:
        return
    allowed = " or ".join(repr(word) for word in words)
    check_count(
        name,
        value,
        allow_none=False,
        expected=f"{allowed} or a positive integer (a number of batches)",
    )


class Callback:
    """Base class for objects that hook into `fit`, `evaluate` and `predict`.

    Subclass it and override the hooks you need. Every hook is a no-op here.

    Attributes:
        params: Dict of run parameters, e.g. `{"verbose": 1, "epochs": 10,
            "steps": 782}`.
        model: The `torchfit.Model` being trained.

    Example:
    >>> class Recorder(Callback):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.epochs = []
    ...     def on_epoch_end(self, epoch, logs=None):
    ...         self.epochs.append(epoch)
    >>> recorder = Recorder()
    >>> recorder.on_epoch_end(0, {"loss": 0.5})
    >>> recorder.epochs
    [0]
    """

    #: Whether only the process that prints and writes files (rank 0 under
    #: torch.distributed) runs this callback: progress bars, loggers, writers of
    #: files no other rank reads. `CallbackList` leaves it out on the other ranks.
    chief_only: bool = False

    def __init__(self):
        self.params: Optional[dict] = None
        self._model = None

    def set_params(self, params: Optional[dict]) -> None:
        """Stores the run parameters (`verbose`, `epochs`, `steps`)."""
        self.params = params

    def set_model(self, model: Any) -> None:
        """Stores the model the hooks act on."""
        self._model = model

    @property
    def model(self) -> Any:
        """The model these hooks act on (unwrapped from DDP if needed)."""
        model = self._model
        # Set on a DistributedDataParallel wrapper, the hooks act on the model it holds.
        if isinstance(model, DistributedDataParallel):
            return model.module
        return model

    def state_dict(self) -> dict:
        """The state a resumed run needs to carry on where this one was.

        `BackupAndRestore` stores it in each backup and gives it back to
        `load_state_dict` when the run resumes. Override both in a callback
        that keeps state across epochs; the values must be plain Python
        numbers, strings, lists, dicts or tensors. Empty (no state) here.

        Example:
        >>> Callback().state_dict()
        {}
        """
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        """Puts back a state returned by `state_dict`.

        Called by `BackupAndRestore` after this callback's `on_train_begin`
        and before its first `on_epoch_begin` of the resumed run.

        Args:
            state_dict: What `state_dict()` returned in the interrupted run.
        """

    def _overrides(self, hook: str) -> bool:
        """Whether calling `hook` on this callback can do anything.

        `CallbackList` asks this once per batch hook, at construction, and
        leaves out callbacks that answer `False`. Subclasses whose work in a
        batch hook depends on their settings (a progress bar at verbose 2,
        a checkpoint saved per epoch) override this to answer precisely.
        """
        names = (hook, _ALIASES[hook]) if hook in _ALIASES else (hook,)
        for name in names:
            method = getattr(self, name)
            if getattr(method, "__func__", method) is not getattr(Callback, name):
                return True
        return False

    def on_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """Alias for `on_train_batch_begin`, kept for older callbacks."""

    def on_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Alias for `on_train_batch_end`, kept for older callbacks."""

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        """Called at the start of every training epoch.

        Args:
            epoch: Index of the epoch, from 0.
            logs: Currently empty, `{}`.
        """

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        """Called at the end of every training epoch.

        Args:
            epoch: Index of the epoch, from 0.
            logs: The epoch's results as Python floats, validation keys
                prefixed `val_`, e.g. `{"loss": 0.2, "val_loss": 0.3}`.
                Callbacks may add keys (e.g. `learning_rate`) that later
                callbacks in the list then see.
        """

    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """Called before every training batch in `fit`.

        Args:
            batch: Index of the batch within the epoch, from 0.
            logs: Currently empty, `{}`.
        """
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Called after every training batch in `fit`.

        Args:
            batch: Index of the batch within the epoch, from 0.
            logs: Running epoch averages, e.g. `{"loss": 0.2817, "accuracy":
                0.9141}`. Reading a value copies it from the device, so read
                only what you use.
        """
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """Called before every batch in `evaluate` and in fit's validation.

        Args:
            batch: Index of the batch, from 0.
            logs: Currently empty, `{}`.
        """

    def on_test_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Called after every batch in `evaluate` and in fit's validation.

        Args:
            batch: Index of the batch, from 0.
            logs: Running averages, e.g. `{"loss": 0.31}`. Reading a value
                copies it from the device.
        """

    def on_predict_batch_begin(self, batch: int, logs: Logs = None) -> None:
        """Called before every batch in `predict`.

        Args:
            batch: Index of the batch, from 0.
            logs: Currently empty, `{}`.
        """

    def on_predict_batch_end(self, batch: int, logs: Logs = None) -> None:
        """Called after every batch in `predict`.

        Args:
            batch: Index of the batch, from 0.
            logs: `{"outputs": ...}`, the batch's predictions.
        """

    def on_train_begin(self, logs: Logs = None) -> None:
        """Called once when `fit` starts.

        Args:
            logs: Currently empty, `{}`.
        """

    def on_train_end(self, logs: Logs = None) -> None:
        """Called once when `fit` ends normally.

        Args:
            logs: The last epoch's logs, e.g. `{"loss": 0.2, "val_loss": 0.3}`.
        """

    def on_test_begin(self, logs: Logs = None) -> None:
        """Called when `evaluate` (or fit's validation) starts.

        Args:
            logs: Currently empty, `{}`.
        """

    def on_test_end(self, logs: Logs = None) -> None:
        """Called when `evaluate` (or fit's validation) ends.

        Args:
            logs: The evaluation results, e.g. `{"loss": 0.31}` (no `val_`
                prefix).
        """

    def on_predict_begin(self, logs: Logs = None) -> None:
        """Called when `predict` starts.

        Args:
            logs: Currently empty, `{}`.
        """

    def on_predict_end(self, logs: Logs = None) -> None:
        """Called when `predict` ends.

        Args:
            logs: Currently empty, `{}`.
        """
