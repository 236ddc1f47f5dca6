"""`Sequence` (alias `PyDataset`): a dataset of whole batches written in Python.

Owns the user-facing base class and its parallelism settings. Fetching
batches in threads or processes, in order, belongs to
`torchfit.data.sequence_adapter`.
"""

import warnings
from collections.abc import Iterator
from typing import Any, Optional

from torchfit.utils.arguments import check_count


class Sequence:
    """Base class for a dataset that returns whole batches by index.

    Subclasses implement `__getitem__(index)` (the batch at `index`) and
    `__len__()` (the number of batches), or a `num_batches` property that may
    return `None` for an endless dataset. `on_epoch_begin`/`on_epoch_end` run
    around each epoch, e.g. to reshuffle file lists.

    Because each index is one batch, every sample is seen once per epoch even
    with several workers, which a generator cannot promise.

    Args:
        workers: Number of threads (or processes) fetching batches in
            parallel during `fit`. Defaults to 1 (fetch in the main thread).
        use_multiprocessing: Use processes instead of threads. The dataset is
            then copied into each worker process, so it must be picklable when
            processes are spawned. Defaults to `False`.
        max_queue_size: Most batches fetched ahead of the one being used.
            Defaults to 10.

    Example:
        >>> import numpy as np
        >>> class Squares(Sequence):
        ...     def __init__(self, n, batch_size, **kwargs):
        ...         super().__init__(**kwargs)
        ...         self.x = np.arange(n, dtype="float32")
        ...         self.batch_size = batch_size
        ...     def __len__(self):
        ...         return -(-len(self.x) // self.batch_size)
        ...     def __getitem__(self, index):
        ...         x = self.x[index * self.batch_size:(index + 1) * self.batch_size]
        ...         return x, x ** 2
        >>> data = Squares(10, batch_size=4, workers=2)
        >>> data.num_batches
        3
        >>> data[2][1].tolist()
        [64.0, 81.0]
    """

    def __init__(
        self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10
    ):
        workers = check_count(
            "workers", workers, minimum=0, allow_none=False, expected="a non-negative integer"
        )
        max_queue_size = check_count("max_queue_size", max_queue_size, allow_none=False)
        self._workers = workers
        self._use_multiprocessing = bool(use_multiprocessing)
        self._max_queue_size = max_queue_size

    def _warn_if_super_not_called(self) -> None:
        if "_workers" in self.__dict__:
            return
        self._workers = 1
        self._use_multiprocessing = False
        self._max_queue_size = 10
        warnings.warn(
            f"Your `{type(self).__name__}` class should call"
            " `super().__init__(**kwargs)` in its constructor. `**kwargs` can"
            " include `workers`, `use_multiprocessing`, `max_queue_size`.",
            stacklevel=3,
        )

    @property
    def workers(self) -> int:
        """Number of parallel fetchers used by `fit`."""
        self._warn_if_super_not_called()
        return self._workers

    @workers.setter
    def workers(self, value: int) -> None:
        self._workers = value

    @property
    def use_multiprocessing(self) -> bool:
        """Whether the fetchers are processes rather than threads."""
        self._warn_if_super_not_called()
        return self._use_multiprocessing

    @use_multiprocessing.setter
    def use_multiprocessing(self, value: bool) -> None:
        self._use_multiprocessing = value

    @property
    def max_queue_size(self) -> int:
        """Most batches fetched ahead of the one in use."""
        self._warn_if_super_not_called()
        return self._max_queue_size

    @max_queue_size.setter
    def max_queue_size(self, value: int) -> None:
        self._max_queue_size = value

    def __getitem__(self, index: int) -> Any:
        """Returns the batch at position `index`: `x`, `(x, y)` or `(x, y, sample_weight)`."""
        raise NotImplementedError(
            f"`{type(self).__name__}` must implement `__getitem__(self, index)`"
            " returning the batch at `index`."
        )

    @property
    def num_batches(self) -> Optional[int]:
        """Number of batches per epoch; `None` for an endless dataset.

        Defaults to `len(self)`.
        """
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(
            f"`{type(self).__name__}` must implement `__len__` or a `num_batches`"
            " property (return `None` for an endless dataset)."
        )

    def on_epoch_begin(self) -> None:
        """Called before each epoch."""

    def on_epoch_end(self) -> None:
        """Called after each epoch, e.g. to reshuffle the samples."""

    def __iter__(self) -> Iterator[Any]:
        """Iterates over the batches in order (endlessly if `num_batches` is `None`)."""
        num_batches = self.num_batches
        index = 0
        while num_batches is None or index < num_batches:
            yield self[index]
            index += 1


PyDataset = Sequence
