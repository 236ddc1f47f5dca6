"""Appends one CSV row of logs per epoch.

Owns the file: header (`epoch`, then the sorted log keys), one row per
epoch written whole and fsynced, so a crash leaves every finished row
intact and never a half-written one.
"""

import csv
import io
import os
from collections.abc import Iterable
from typing import IO, Any, Optional, Union

import numpy as np

from torchfit.callbacks.callback import Callback, Logs

__all__ = ["CSVLogger"]


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    if isinstance(value, Iterable):
        return f'"[{", ".join(map(str, value))}]"'
    return value


class CSVLogger(Callback):
    """Streams epoch results to a CSV file.

    Columns are `epoch` (from 0, as in Keras) then the sorted log keys of
    the first epoch; if that epoch had no validation, `val_` columns are
    added for every key so later validated epochs fit. Missing values are
    written `NA`.

    Args:
        filename: Path of the CSV file.
        separator: Column separator. Defaults to `","`.
        append: Whether to append to an existing file (the header is written
            only if the file is empty). Defaults to `False`.

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

    def __init__(self, filename: Union[str, os.PathLike], separator: str = ",", append: bool = False):
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.keys: Optional[list[str]] = None
        self.append_header = True
        self.csv_file: Optional[IO] = None

    def on_train_begin(self, logs: Logs = None) -> None:
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, encoding="utf-8") as existing:
                    self.append_header = not existing.readline()
            mode = "a"
        else:
            self.append_header = True
            mode = "w"
        self._close()
        folder = os.path.dirname(self.filename)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self.csv_file = open(self.filename, mode, encoding="utf-8", newline="")
        self.keys = None

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        logs = logs or {}
        if self.csv_file is None:
            self.on_train_begin()
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys += [f"val_{key}" for key in self.keys]
        text = io.StringIO()
        writer = csv.writer(text, delimiter=self.sep, lineterminator="\n")
        if self.append_header:
            writer.writerow(["epoch"] + self.keys)
            self.append_header = False
        writer.writerow([epoch] + [_cell(logs.get(key, "NA")) for key in self.keys])
        # One write per row, then fsync: a crash can lose the row being
        # written but never leave the earlier ones torn.
        self.csv_file.write(text.getvalue())
        self.csv_file.flush()
        os.fsync(self.csv_file.fileno())

    def on_train_end(self, logs: Logs = None) -> None:
        self._close()

    def _close(self) -> None:
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = None
