"""Turns device-side metric results into the Python floats callbacks read.

Owns the one place where log values cross from the device to the host. The
training step hands out a `BatchLogs` that holds no numbers, only a way to
compute them; the first reader (the progress bar at its redraw, a callback
that reads a key, `History` at epoch end) pays for one copy, and nobody else
does. Which hooks get called belongs to `callbacks/`; what the values are
belongs to `compiled.py` and the metrics.
"""

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

import numpy as np
import torch

__all__ = ["BatchLogs", "MetricLogs", "as_batch_logs", "pythonify_logs"]


def pythonify_logs(logs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Returns `logs` as a sorted dict of Python floats (or NumPy arrays).

    All 0-d tensors are stacked and copied to the host together, so a dict of
    ten metrics costs one device sync, not ten. A metric whose result is a
    dict contributes its inner keys, as in Keras.

    Args:
        logs: Mapping of names to tensors, NumPy values or numbers.

    Returns:
        A new dict with keys sorted, as Keras 3 shows them.
    """
    flat: dict[str, Any] = {}
    _flatten_into(flat, logs or {})
    scalars = [
        key for key, value in flat.items() if isinstance(value, torch.Tensor) and value.numel() == 1
    ]
    if scalars:
        # One host copy for every scalar: this is the sync the whole design
        # defers to here.
        stacked = torch.stack([flat[key].detach().reshape(()).to(torch.float64) for key in scalars])
        for key, value in zip(scalars, stacked.cpu().tolist()):
            flat[key] = value
    for key, value in flat.items():
        if isinstance(value, torch.Tensor):
            flat[key] = value.detach().cpu().numpy()
        elif isinstance(value, np.ndarray) and value.size == 1:
            flat[key] = float(value.reshape(()))
        elif isinstance(value, np.generic):
            flat[key] = value.item()
    return dict(sorted(flat.items()))


def _flatten_into(out: dict[str, Any], logs: Mapping[str, Any]) -> None:
    for key, value in logs.items():
        if isinstance(value, Mapping):
            _flatten_into(out, value)
        else:
            out[key] = value


class BatchLogs(MutableMapping):
    """The logs of one batch, computed and copied to the host on first read.

    Args:
        compute: Zero-argument callable returning a mapping of log names to
            tensors or numbers (usually the running metric results).

    A key set before the first read (a custom step adding to
    `super().train_step(data)`) is kept as given until then, and marks the
    logs `modified`: they are no longer exactly the metric results.

    Example:
    >>> logs = BatchLogs(lambda: {"loss": torch.tensor(0.25)})
    >>> logs["my_metric"] = torch.tensor(10.0)
    >>> dict(logs), logs.modified
    ({'loss': 0.25, 'my_metric': 10.0}, True)
    """

    __slots__ = ("_compute", "_values", "_extra", "modified")

    def __init__(self, compute: Callable[[], Mapping[str, Any]]):
        self._compute = compute
        self._values: dict[str, Any] | None = None
        # Keys a step adds before anybody read the logs: kept as given (maybe
        # device tensors), so adding `logs["my_metric"] = t` costs no sync.
        self._extra: dict[str, Any] | None = None
        self.modified = False

    @property
    def materialized(self) -> bool:
        """Whether some reader already paid for the host copy."""
        return self._values is not None

    def raw(self) -> Mapping[str, Any]:
        """The values as the step produced them (tensors), without a sync."""
        if self._values is not None:
            return self._values
        if self._extra:
            return {**self._compute(), **self._extra}
        return self._compute()

    def _get(self) -> dict[str, Any]:
        if self._values is None:
            self._values = pythonify_logs(self.raw())
            self._extra = None
        return self._values

    def __getitem__(self, key: str) -> Any:
        return self._get()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.modified = True
        if self._values is None:
            if self._extra is None:
                self._extra = {}
            self._extra[key] = value
        else:
            self._values[key] = value

    def __delitem__(self, key: str) -> None:
        self.modified = True
        del self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        if self._values is None:
            return "BatchLogs(<not read yet>)"
        return f"BatchLogs({self._values!r})"


class MetricLogs(BatchLogs):
    """Batch logs that are exactly the model's metric results (what the default steps return).

    Unless a step adds a key, the epoch's logs are then the metric results, read
    once at the end of the epoch (`loops.logs_at_epoch_end`).
    """

    __slots__ = ()


def as_batch_logs(logs: Any) -> Any:
    """`logs` read lazily: a plain mapping is wrapped in a `BatchLogs` (its tensors are
    copied on the first read); `BatchLogs`, `None` and non-mappings are returned as is.

    Example:
    >>> logs = as_batch_logs({"loss": torch.tensor(0.5)})
    >>> type(logs).__name__, dict(logs), as_batch_logs(None)
    ('BatchLogs', {'loss': 0.5}, None)
    """
    if isinstance(logs, Mapping) and not isinstance(logs, BatchLogs):
        return BatchLogs(lambda: logs)
    return logs
