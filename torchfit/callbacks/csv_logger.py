"""Appends one CSV row of logs per epoch.

Owns the file: header (`epoch`, then the sorted log keys), one row per
epoch written whole and fsynced, so a crash leaves every finished row
intact and never a half-written one; refusing to append rows with other
columns than the file's; and continuing the file (not truncating it) when
`BackupAndRestore` resumes a run. Storing the state in the backup belongs
to `backup_and_restore.py`.
"""

import csv
import io
import os
import warnings
from collections.abc import Iterable, Mapping
from typing import IO, Any, Optional, Union

import numpy as np

from torchfit.callbacks.callback import Callback, Logs
from torchfit.utils.file_utils import atomic_write, check_file

__all__ = ["CSVLogger"]


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    if isinstance(value, Iterable):
        return f'"[{", ".join(map(str, value))}]"'
    return value


def _columns(logs: Mapping) -> list[str]:
    """The log keys of the first epoch, with `val_` twins when it had no validation."""
    keys = sorted(logs)
    if keys and not any(key.startswith("val_") for key in keys):
        keys += [f"val_{key}" for key in keys]
    return keys


class CSVLogger(Callback):
    """Streams epoch results to a CSV file.

    Columns are `epoch` (from 0, as in Keras) then the sorted log keys of
    the first epoch; if that epoch had no validation, `val_` columns are
    added for every key so later validated epochs fit. Missing values are
    written `NA`. The file is opened at the first epoch end: a run that
    fails before that leaves an existing file as it was, and the first
    row of a new file is written atomically with its header. Under
    `BackupAndRestore`, a resumed run keeps the rows written before the
    interruption and drops those of epochs it trains again.

    Args:
        filename: Path of the CSV file.
        separator: Column separator. Defaults to `","`.
        append: Whether to append to an existing file (the header is written
            only if the file is empty). Defaults to `False`.

    Raises:
        ValueError: When training starts, if `filename` is a folder or its
            folder cannot be created; at the first epoch end with
            `append=True`, if the file's columns are not this run's.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "log.csv")
    >>> logger = CSVLogger(path)
    >>> logger.on_train_begin()
    >>> logger.on_epoch_end(0, {"loss": 0.5})
    >>> logger.on_train_end()
    >>> print(open(path).read().strip())
    epoch,loss,val_loss
    0,0.5,NA
    """

    chief_only = True  # writes the file: rank 0 alone under torch.distributed

    def __init__(
        self, filename: Union[str, os.PathLike], separator: str = ",", append: bool = False
    ):
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.keys: Optional[list[str]] = None
        self.csv_file: Optional[IO] = None
        self._resume_size: Optional[int] = None

    def on_train_begin(self, logs: Logs = None) -> None:
        # Only checked here: the file is opened at the first epoch end, so
        # that a resumed run can continue it instead of truncating it.
        check_file("filename", self.filename)
        self._close()
        self.keys = None
        self._resume_size = None

    def state_dict(self) -> dict:
        """The columns and how many bytes of the file this run has written.

        `size` is `None` until the first row is written.

        Example:
        >>> CSVLogger("log.csv").state_dict()
        {'keys': None, 'size': None}
        """
        size = None
        if self.csv_file is not None:
            self.csv_file.flush()
            size = os.path.getsize(self.filename)
        return {"keys": self.keys, "size": size}

    def load_state_dict(self, state_dict: dict) -> None:
        """Continues the file of the interrupted run at its backed-up size."""
        self._close()
        self.keys = state_dict["keys"]
        self._resume_size = state_dict["size"]

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs or {}
        if self.keys is None:
            self.keys = _columns(logs)
        new_file = self.csv_file is None and not self._open()  # _open may reorder keys
        row = self._line([epoch] + [_cell(logs.get(key, "NA")) for key in self.keys])
        if new_file:
            self._write_first(self._line(["epoch"] + self.keys) + row)
            return
        self.csv_file.write(row)
        self._sync()

    def _line(self, values: list) -> str:
        text = io.StringIO()
        csv.writer(text, delimiter=self.sep, lineterminator="\n").writerow(values)
        return text.getvalue()

    def _open(self) -> bool:
        """Opens the file for appending rows; `False` when it must be started afresh."""
        if self._resume_size is not None and self._continue_resumed_file():
            return True
        if self.append and os.path.exists(self.filename) and os.path.getsize(self.filename):
            self._check_columns()
            self.csv_file = open(self.filename, "a", encoding="utf-8", newline="")
            return True
        return False

    def _continue_resumed_file(self) -> bool:
        size, self._resume_size = self._resume_size, None
        if not os.path.exists(self.filename) or os.path.getsize(self.filename) < size:
            warnings.warn(
                f"CSVLogger cannot continue {self.filename!r}: it is missing or shorter than"
                " when the run was backed up. Starting it afresh.",
                stacklevel=4,
            )
            return False
        # Drop the rows of the epochs the resumed run trains again.
        os.truncate(self.filename, size)
        self.csv_file = open(self.filename, "a", encoding="utf-8", newline="")
        return True

    def _check_columns(self) -> None:
        with open(self.filename, encoding="utf-8", newline="") as existing:
            header = next(csv.reader(existing, delimiter=self.sep), [])
        if set(header) != {"epoch", *self.keys}:
            raise ValueError(
                f"CSVLogger(append=True) cannot add rows to {self.filename!r}: its columns"
                f" are {header}, this run logs {['epoch'] + self.keys}. Pass append=False"
                " to overwrite it, or another `filename`."
            )
        # Same columns, maybe in another order: write in the file's order.
        self.keys = [column for column in header if column != "epoch"]

    def _write_first(self, text: str) -> None:
        # Header and first row replace any previous file in one rename: a crash
        # never leaves the user's old file truncated with nothing new in it.
        folder = os.path.dirname(self.filename)
        if folder:
            os.makedirs(folder, exist_ok=True)
        with atomic_write(self.filename, "w") as file:
            file.write(text)
        self.csv_file = open(self.filename, "a", encoding="utf-8", newline="")

    def _sync(self) -> None:
        # One write per row, then fsync: a crash can lose the row being
        # written but never leave the earlier ones torn.
        self.csv_file.flush()
        os.fsync(self.csv_file.fileno())

    def on_train_end(self, logs: Logs = None) -> None:
        self._close()

    def _close(self) -> None:
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = None
