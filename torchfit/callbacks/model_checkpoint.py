"""Saves the model or its weights during training.

Owns when to save (every epoch, every N batches, only on improvement), the
file name (`{epoch}` from 1, `{batch}` from 1, `{key:format}` from the logs)
and checking it before training, and carrying the best value and the batch
count through a resumed run. Writing the file, atomically, belongs to
`model.save` and `model.save_weights`.
"""

import os
import string
import warnings
from collections.abc import Mapping
from typing import Optional, Union

import numpy as np

from torchfit.callbacks.callback import Logs, check_batch_frequency
from torchfit.callbacks.monitor_callback import MonitorCallback
from torchfit.utils.file_utils import check_file
from torchfit.utils.progbar import print_msg

__all__ = ["ModelCheckpoint"]


def _placeholders(filepath: str) -> set:
    names = set()
    for _, field, _, _ in string.Formatter().parse(filepath):
        if field:
            names.add(field.split(".")[0].split("[")[0])
    return names


_FORMATTER = string.Formatter()
_HINT = (
    " Placeholders look like '{epoch:02d}' or '{val_loss:.2f}'; write a literal"
    " brace as '{{' or '}}'."
)


def _fits(field: str, conversion: Optional[str], spec: str, value: object) -> bool:
    """Whether the placeholder `{field!conversion:spec}` formats `value`."""
    base = field.split(".")[0].split("[")[0]
    try:
        obj, _ = _FORMATTER.get_field(field, (), {base: value})
        format(_FORMATTER.convert_field(obj, conversion), spec)
        return True
    except (ValueError, TypeError, IndexError, KeyError, AttributeError):
        return False


def check_filepath(filepath: str) -> None:
    """Raises a `ValueError` naming `filepath` if it cannot be formatted.

    Catches unbalanced braces, placeholders without a name (`{}`) and
    formats that fit no value they can receive (`{epoch:02q}`) before
    training instead of at the first save. `epoch` and `batch` are ints; a
    log key may be a float or an int.

    Example:
    >>> check_filepath("ckpt-{epoch:02d}-{val_loss:.2f}.pt")
    >>> check_filepath("ckpt-{epoch.pt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `filepath` 'ckpt-{epoch.pt' is not a valid file name pattern: expected '}' ...
    """
    try:
        fields = [(f, c, s) for _, f, s, c in _FORMATTER.parse(filepath) if f is not None]
    except ValueError as err:
        raise ValueError(
            f"`filepath` {filepath!r} is not a valid file name pattern: {err}.{_HINT}"
        ) from err
    for field, conversion, spec in fields:
        if not field or field[0].isdigit():
            raise ValueError(
                f"`filepath` {filepath!r} has a placeholder without a name ('{{{field}}}').{_HINT}"
            )
        if "{" in spec:
            continue  # a nested "{key:{width}}": checked when formatted
        integer = field.split(".")[0].split("[")[0] in ("epoch", "batch")
        if not any(
            _fits(field, conversion, spec, value) for value in ((1,) if integer else (1, 0.5))
        ):
            placeholder = (
                field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            )
            expected = "an int" if integer else "a number"
            raise ValueError(
                f"`filepath` {filepath!r} has a placeholder '{{{placeholder}}}' whose format"
                f" does not fit its value ({expected}).{_HINT}"
            )


class ModelCheckpoint(MonitorCallback):
    """Saves the model, or its weights, at some frequency.

    The path is used exactly as given, whatever its suffix (`ckpt.keras`,
    `w.weights.h5`, `m.pt`); missing folders are created.

    Args:
        filepath: Where to save. May hold `{epoch}` (from 1), `{batch}` (from
            1, with an integer `save_freq`) and log keys with a format, e.g.
            `"ckpt-{epoch:02d}-{val_loss:.2f}.pt"`.
        monitor: Log key watched by `save_best_only`. Defaults to
            `"val_loss"`.
        verbose: `1` prints a line per save. Defaults to `0`.
        save_best_only: Whether to save only when `monitor` improves.
            Defaults to `False`.
        save_weights_only: Whether to call `model.save_weights` instead of
            `model.save`. Defaults to `False`.
        mode: `"auto"`, `"min"` or `"max"`. Defaults to `"auto"`.
        save_freq: `"epoch"`, or an integer: save every that many batches.
            Defaults to `"epoch"`.
        initial_value_threshold: Value the monitored quantity must beat for
            the first save with `save_best_only`. Defaults to `None`.

    Raises:
        ValueError: If `save_freq` is neither `"epoch"` nor a positive int;
            when training starts, if `filepath` is not a valid pattern or
            its folder cannot be created, or if `save_best_only` watches a
            validation key at batch ends; at an epoch end, if `monitor`
            with `save_best_only` is not in the logs (the closest keys are
            named).

    Example:
    >>> callback = ModelCheckpoint("ckpt-{epoch:02d}.pt", monitor="loss")
    >>> callback._get_file_path(epoch=2, batch=None, logs={})
    'ckpt-03.pt'
    """

    def __init__(
        self,
        filepath: Union[str, os.PathLike],
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        save_freq: Union[str, int] = "epoch",
        initial_value_threshold: Optional[float] = None,
    ):
        super().__init__(monitor, mode, initial_value_threshold)
        check_batch_frequency("save_freq", save_freq)
        self.verbose = verbose
        self.filepath = os.fspath(filepath)
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen: Optional[int] = None
        self._current_epoch = 0

    def _overrides(self, hook: str) -> bool:
        # Saving per epoch needs nothing per batch.
        if hook == "on_train_batch_end":
            return self.save_freq != "epoch"
        return super()._overrides(hook)

    def on_train_begin(self, logs: Logs = None) -> None:
        # Fail before the first step, not at the first save.
        check_filepath(self.filepath)
        if "{" not in os.path.dirname(self.filepath):
            check_file("filepath", self.filepath)
        if self.save_best_only and self.save_freq != "epoch" and self.monitor.startswith("val_"):
            raise ValueError(
                f"ModelCheckpoint(save_best_only=True, save_freq={self.save_freq}) compares"
                f" monitor={self.monitor!r} at batch ends, where validation metrics are never"
                " logged. Monitor a training metric (e.g. monitor='loss') or save at epoch"
                " ends (save_freq='epoch')."
            )

    def state_dict(self) -> dict:
        """Best value and the batches counted since the last save.

        Example:
        >>> ModelCheckpoint("best.pt", save_best_only=True).state_dict()
        {'best': None, 'batches_seen_since_last_saving': 0, 'last_batch_seen': None}
        """
        return {
            **super().state_dict(),
            "batches_seen_since_last_saving": self._batches_seen_since_last_saving,
            "last_batch_seen": self._last_batch_seen,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Puts back the state of the interrupted run."""
        super().load_state_dict(state_dict)
        self._batches_seen_since_last_saving = state_dict["batches_seen_since_last_saving"]
        self._last_batch_seen = state_dict["last_batch_seen"]

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        self._current_epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        if self._should_save_on_batch(batch):
            self._save_model(epoch=self._current_epoch, batch=batch, logs=logs)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if self.save_freq == "epoch":
            self._save_model(epoch=epoch, batch=None, logs=logs)

    def _should_save_on_batch(self, batch: int) -> bool:
        if self.save_freq == "epoch":
            return False
        if self._last_batch_seen is None or batch <= self._last_batch_seen:
            added = batch + 1  # A new epoch started; batches count from 0.
        else:
            added = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += added
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def _should_save_model(self, epoch: int, logs: Mapping, filepath: str) -> bool:
        if not self.save_best_only:
            if self.verbose > 0:
                print_msg(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        # A key never logged raises here, with the closest keys.
        current = self._monitor_value(logs)
        if current is None:
            # A validation key on an epoch without validation (validation_freq):
            # the best file keeps the best validated epoch (Keras saves anyway).
            return False
        if isinstance(current, np.ndarray) and current.ndim > 0:
            warnings.warn(
                "Can save best model only when `monitor` is a scalar value."
                f" Received an array of shape {current.shape}. Falling back"
                " to `save_best_only=False`.",
                stacklevel=3,
            )
            return True
        best_text = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print_msg(
                    f"\nEpoch {epoch + 1}: {self.monitor} improved from"
                    f" {best_text} to {current:.5f}, saving model to {filepath}"
                )
            self.best = current
            return True
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_text}")
        return False

    def _save_model(self, epoch: int, batch: Optional[int], logs: Logs) -> None:
        logs = logs if logs is not None else {}
        filepath = self._get_file_path(epoch, batch, logs)
        if os.path.isdir(filepath):
            raise IsADirectoryError(
                "ModelCheckpoint needs a file path, not a directory."
                f" Received: filepath={filepath!r}."
            )
        if not self._should_save_model(epoch, logs, filepath):
            return
        folder = os.path.dirname(filepath)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(filepath)
        else:
            self.model.save(filepath)
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")

    def _get_file_path(self, epoch: int, batch: Optional[int], logs: Mapping) -> str:
        # Read only the log keys the path names: each read of lazy batch
        # logs is a device sync.
        values = {}
        for name in _placeholders(self.filepath) - {"epoch", "batch"}:
            if name in logs:
                values[name] = logs[name]
        values["epoch"] = epoch + 1
        if batch is not None:
            values["batch"] = batch + 1
        try:
            return self.filepath.format(**values)
        except KeyError as err:
            raise KeyError(
                f'Failed to format this callback filepath: "{self.filepath}".'
                f" Reason: {err} is not in the logs. Available keys:"
                f" {', '.join(sorted(logs)) or '(none)'}."
            ) from err
