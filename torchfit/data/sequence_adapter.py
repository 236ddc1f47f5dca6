"""Feeds a `torchfit.utils.Sequence` (`PyDataset`), fetching batches in parallel.

Owns the batch order (shuffled per epoch from the global torch RNG), fetching
up to `max_queue_size` batches ahead in a thread or process pool while
keeping them in order, and calling the Sequence's epoch hooks. The Sequence
class itself lives in `torchfit.utils.sequence`.
"""

import collections
import itertools
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Optional

import torch

from torchfit.data.adapter import DataAdapter, warn_shuffle_ignored
from torchfit.data.array_adapter import check_shuffle
from torchfit.data.batch_converter import BatchConverter

# The Sequence a worker process serves; set once per process by _init_worker.
_worker_sequence = None


def _init_worker(sequence) -> None:
    global _worker_sequence
    _worker_sequence = sequence
    # Like DataLoader workers: one intra-op thread each, or they oversubscribe.
    torch.set_num_threads(1)


def _fetch_in_worker(index: int):
    return _worker_sequence[index]


def _process_context():
    # Forking after CUDA is initialised breaks the child, so spawn then.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return multiprocessing.get_context("spawn")
    return multiprocessing.get_context()


class SequenceAdapter(DataAdapter):
    """Adapts a `Sequence`: one pass over its indices per epoch.

    Args:
        sequence: A `torchfit.utils.Sequence` (or `PyDataset`).
        shuffle: Visit the batch indices in a new random order each epoch.
            Ignored, with a warning, for an endless Sequence. Defaults to `False`.
        class_weight: `{class_index: weight}` applied per batch. Defaults to `None`.
        device: Where batches are delivered. Defaults to `None`.
    """

    split_by = "batches"  # see DataAdapter.split_by: whole batches, by index

    def __init__(self, sequence, *, shuffle=False, class_weight=None, device=None):
        self._sequence = sequence
        self._shuffle = bool(check_shuffle(shuffle))
        if sequence.num_batches is None:
            warn_shuffle_ignored(shuffle, "an endless Sequence (`num_batches` is None)", 3)
            self._shuffle = False
        self._convert = BatchConverter(device, True, class_weight, "Sequence")
        workers = sequence.workers
        self._use_processes = bool(sequence.use_multiprocessing) and workers > 0
        self._workers = workers
        self._max_queue_size = sequence.max_queue_size

    def _indices(self) -> Iterable[int]:
        num_batches = self._sequence.num_batches
        if num_batches is None:
            return itertools.count()
        if self._shuffle:
            return torch.randperm(num_batches).tolist()
        return range(num_batches)

    def get_iterator(self) -> Iterator[tuple]:
        return self.batches_at(self._indices())  # drawn now: shuffling follows the seed order

    def batches_at(self, indices: Iterable[int]) -> Iterator[tuple]:
        """The Sequence's batches at `indices`, in that order, converted; fetched ahead
        in the worker pool when the Sequence asks for workers.

        Example:
        >>> import numpy as np
        >>> from torchfit.utils import Sequence
        >>> class Squares(Sequence):
        ...     num_batches = 4
        ...     def __getitem__(self, index):
        ...         return np.full((1, 1), index**2)
        >>> [x.item() for (x,) in SequenceAdapter(Squares()).batches_at([3, 1])]
        [9, 1]
        """
        if self._workers > 1 or self._use_processes:
            return self._fetch_parallel(indices)
        return self._fetch_serial(indices)

    @property
    def shuffle(self) -> bool:
        """Whether the batch indices are visited in a new random order each epoch."""
        return self._shuffle

    def _fetch_serial(self, indices) -> Iterator[tuple]:
        sequence, convert = self._sequence, self._convert
        for index in indices:
            yield convert(sequence[index], index)

    def _make_executor(self) -> tuple[Executor, Callable]:
        if self._use_processes:
            executor = ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=_process_context(),
                initializer=_init_worker,
                initargs=(self._sequence,),
            )
            return executor, _fetch_in_worker
        return ThreadPoolExecutor(max_workers=self._workers), self._sequence.__getitem__

    def _fetch_parallel(self, indices) -> Iterator[tuple]:
        """Keeps up to `max_queue_size` fetches in flight, yields them in order."""
        executor, fetch = self._make_executor()
        pending = collections.deque()
        indices = iter(indices)
        try:
            for index in itertools.islice(indices, self._max_queue_size):
                pending.append((index, executor.submit(fetch, index)))
            while pending:
                index, future = pending.popleft()
                batch = future.result()
                for following in itertools.islice(indices, 1):
                    pending.append((following, executor.submit(fetch, following)))
                yield self._convert(batch, index)
        finally:
            # Runs when the epoch ends or the iterator is dropped early.
            executor.shutdown(wait=True, cancel_futures=True)

    def check_targets(self, check) -> None:
        self._convert.check_targets(check)

    @property
    def num_batches(self) -> Optional[int]:
        return self._sequence.num_batches

    def on_epoch_begin(self) -> None:
        self._sequence.on_epoch_begin()

    def on_epoch_end(self) -> None:
        self._sequence.on_epoch_end()
