"""The interface every data adapter offers to the epoch iterator and to sharding.

A DataAdapter turns one kind of user data into epochs of batches: tuples
`(x,)`, `(x, y)` or `(x, y, sample_weight)` whose leaves are torch tensors on
the target device. Choosing the adapter belongs to `torchfit.data.get_adapter`;
`steps_per_epoch` and running out of data belong to `EpochIterator`.

Splitting across processes: `torchfit.distribution` gives each process its share
of the data through this public surface alone, chosen by the adapter's
`split_by`:

- `"rows"` (arrays, map-style Datasets): the rows can be read in any order.
  Sharding draws one order for all processes and takes each one's rows of every
  global batch, with `num_samples`, `batch_size`, `shuffle` and `row_batches`.
- `"loader"` (a user's map-style DataLoader): sharding rebuilds the loader
  around a `DistributedSampler` from `loader` and converts each batch with
  `convert_batch`.
- `"batches"` (a Sequence): whole batches are dealt out by index, with
  `num_batches`, `shuffle` and `batches_at`.
- `None` (generators, iterables, your own adapters): each process iterates its
  own source, and the processes check that they run out of batches together.
"""

import warnings
from collections.abc import Iterator
from typing import Any, Optional

import torch


class DataAdapter:
    """Base class: one epoch of batches at a time.

    Subclasses implement `get_iterator` and the size properties. An instance
    may be passed as `x` to `fit`, `evaluate` or `predict`; it is used as is.
    """

    #: Whether `get_iterator` can start a new pass (False for a generator object).
    restartable: bool = True
    #: How `torchfit.distribution` splits this data across processes: "rows",
    #: "loader", "batches" or `None` (see the module's docstring).
    split_by: Optional[str] = None

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


def warn_shuffle_ignored(shuffle: Any, what: str, stacklevel: int = 2) -> None:
    """Warns, when `shuffle` asks for shuffling, that data which sets its own order ignores it.

    Args:
        shuffle: The `shuffle` argument received.
        what: The data, with its article: "a torch DataLoader", "a generator".
        stacklevel: As for `warnings.warn` called where this is. Defaults to 2.

    Example:
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_shuffle_ignored(True, "a generator")
    >>> print(caught[0].message)  # doctest: +ELLIPSIS
    `shuffle=True` was passed, but will be ignored since the data `x` was provided as a ...
    """
    if shuffle:
        warnings.warn(
            f"`shuffle={shuffle!r}` was passed, but will be ignored since the data `x` was"
            f" provided as {what}, which sets its own order: it is expected to yield"
            " already-shuffled data.",
            stacklevel=stacklevel + 1,
        )
