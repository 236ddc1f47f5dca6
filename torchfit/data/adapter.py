"""The interface every data adapter offers to the epoch iterator.

A DataAdapter turns one kind of user data into epochs of batches: tuples
`(x,)`, `(x, y)` or `(x, y, sample_weight)` whose leaves are torch tensors on
the target device. Choosing the adapter belongs to `torchfit.data.get_adapter`;
`steps_per_epoch` and running out of data belong to `EpochIterator`.
"""

from collections.abc import Iterator
from typing import Optional

import torch


class DataAdapter:
    """Base class: one epoch of batches at a time.

    Subclasses implement `get_iterator` and the size properties. An instance
    may be passed as `x` to `fit`, `evaluate` or `predict`; it is used as is.
    """

    #: Whether `get_iterator` can start a new pass (False for a generator object).
    restartable: bool = True

    def get_iterator(self) -> Iterator[tuple]:
        """Returns a fresh iterator over one epoch of batches.

        Returns:
            An iterator of tuples `(x,)`, `(x, y)` or `(x, y, sample_weight)`,
            every leaf a tensor on the adapter's device.
        """
        raise NotImplementedError

    @property
    def num_batches(self) -> Optional[int]:
        """Number of batches in an epoch, or `None` when unknown."""
        raise NotImplementedError

    @property
    def batch_size(self) -> Optional[int]:
        """Number of samples in a full batch, or `None` when unknown."""
        return None

    @property
    def has_partial_batch(self) -> Optional[bool]:
        """Whether the last batch is smaller than `batch_size` (`None`: unknown)."""
        return None

    @property
    def partial_batch_size(self) -> Optional[int]:
        """Size of the last, smaller batch; `None` when there is none or unknown."""
        return None

    def check_targets(self, check) -> None:
        """Runs `check(y, where)` on host copies of the targets before they reach a loss.

        Called by the loops once the compiled loss is built, when `check`
        knows the number of classes from the first prediction. Arrays are
        checked whole, once; batches on the host before they move to the
        device (the batch already delivered included), so the check never
        waits for the device. The base class checks nothing.

        Args:
            check: `check(y, where)`, raising a `ValueError` for bad targets.
        """

    def on_epoch_begin(self) -> None:
        """Called by the epoch iterator before each epoch."""

    def on_epoch_end(self) -> None:
        """Called by the epoch iterator after each epoch."""


def resolve_device(device) -> Optional[torch.device]:
    """Turns `None`, a string or a `torch.device` into a `torch.device` or `None`.

    Raises:
        ValueError: if `device` names no torch device.
    """
    if device is None or isinstance(device, torch.device):
        return device
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            "`device` must be a torch device such as 'cpu' or 'cuda:0'."
            f" Received: device={device!r}."
        ) from err


def check_positive_int(name: str, value, allow_none: bool = True):
    """Validates an argument that must be a positive integer (or `None`).

    Raises:
        ValueError: naming the argument and the value received.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        if hasattr(value, "__index__") and not isinstance(value, bool):
            value_int = value.__index__()
            if value_int > 0:
                return value_int
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}.")
    return value
