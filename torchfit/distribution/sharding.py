"""Gives each rank its share of every global batch, for every kind of data.

Owns splitting the data: arrays and map-style Datasets follow one shuffle per
epoch shared by all ranks (drawn on every rank as a single process draws it,
then rank 0's copy broadcast) and each rank takes its contiguous share of each
global batch; a user's DataLoader is rebuilt around a `DistributedSampler`;
a Sequence's batch indices are dealt out per rank; generators stay the user's
business, but a rank running out of batches before the others is detected
and reported. Also records which rows each rank produced, so that `predict`
can put the gathered outputs back in input order. Each adapter says how its data
splits and offers what that needs (`DataAdapter.split_by`); batching a single
process's data belongs to `torchfit.data`.
"""

import collections
import itertools
import math
import warnings
from collections.abc import Iterator
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from torchfit import tree
from torchfit.data.adapter import DataAdapter
from torchfit.data.array_adapter import epoch_permutation
from torchfit.distribution import env

__all__ = ["shard_adapter", "local_batch_size", "local_bounds"]

# Sort keys of rows that only have a (batch, position) address: batch * _ROW_STRIDE + position.
_ROW_STRIDE = 1 << 32


def local_batch_size(global_batch_size: int, world: int, argument: str = "batch_size") -> int:
    """The per-rank batch of a global batch.

    Raises:
        ValueError: When the global batch does not divide by the world size.
    """
    if global_batch_size % world:
        raise ValueError(
            f"`{argument}` is the global batch across all {world} processes and must be a"
            f" multiple of the world size. Received: {argument}={global_batch_size}, which"
            f" leaves {global_batch_size % world} sample(s) over. Use e.g."
            f" {argument}={max(world, global_batch_size // world * world)}."
        )
    return global_batch_size // world


def local_bounds(start: int, stop: int, rank: int, world: int) -> tuple:
    """Rank `rank`'s contiguous share of rows [start, stop): sizes differ by at most one."""
    size, extra = divmod(stop - start, world)
    low = start + rank * size + min(rank, extra)
    return low, low + size + (1 if rank < extra else 0)


def shared_permutation(num_samples: int, batch_size: int, shuffle: Any) -> Optional[torch.Tensor]:
    """This epoch's order: drawn on every rank like a single process, rank 0's kept."""
    permutation = epoch_permutation(num_samples, batch_size, shuffle)
    if permutation is not None and env.world_size() > 1:
        env.broadcast_(permutation, src=0)
    return permutation


def shard_adapter(adapter: DataAdapter, run, purpose: str) -> DataAdapter:
    """Returns the adapter that feeds this rank its share of `adapter`'s data.

    The adapter says how its data splits (`DataAdapter.split_by`); only its
    public surface is used.

    Args:
        adapter: What `torchfit.data.get_adapter` built for the whole data.
        run: The model's `DistributedRun` (rank, world size, loss weights).
        purpose: "fit", "evaluate" or "predict"; predict records row order.
    """
    record = purpose == "predict"
    # Steps must match across ranks when every forward is a collective (training,
    # FSDP, a compiled DDP); evaluate and predict otherwise skip the padding rows.
    pad = purpose == "fit" or run.sharded or bool(getattr(run.model, "jit_compile", False))
    if adapter.split_by == "rows":
        return ShardedRows(adapter, run, record)
    if adapter.split_by == "batches":
        return ShardedSequenceAdapter(adapter, run, record, pad)
    if adapter.split_by == "loader":
        if adapter.loader.batch_size is not None:
            return ShardedDataLoaderAdapter(adapter, run, record, pad)
        warnings.warn(
            "A DataLoader with a custom `batch_sampler` cannot be split across processes"
            " by torchfit: every rank iterates it as given. Give each rank its own share"
            " (e.g. with a DistributedSampler) to avoid training on the same batches twice.",
            stacklevel=4,
        )
    return UnevenBatchGuard(adapter, run, record)


class _Recorder:
    """Collects the sort keys of the rows this rank produced (predict only)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.keys: list = []

    def start(self) -> None:
        self.keys = []

    def rows(self, keys) -> None:
        if self.enabled:
            self.keys.append(np.asarray(keys, dtype=np.int64))

    def addressed(self, batch_key: int, batch) -> None:
        if self.enabled:
            rows = _rows_of(batch)
            self.keys.append(batch_key * _ROW_STRIDE + np.arange(rows, dtype=np.int64))

    def all_keys(self) -> np.ndarray:
        return np.concatenate(self.keys) if self.keys else np.zeros(0, dtype=np.int64)


def _rows_of(batch) -> int:
    return tree.batch_size_of(batch[0] if isinstance(batch, tuple) else batch)


class _Sharded(DataAdapter):
    """Common parts: the wrapped adapter, the run, the row recorder."""

    def __init__(self, inner: DataAdapter, run, record: bool):
        self.inner = inner
        self.run = run
        self.recorder = _Recorder(record)
        self.restartable = inner.restartable

    @property
    def num_batches(self) -> Optional[int]:
        return self.inner.num_batches

    def check_targets(self, check) -> None:
        self.inner.check_targets(check)

    def on_epoch_begin(self) -> None:
        self.inner.on_epoch_begin()

    def on_epoch_end(self) -> None:
        self.inner.on_epoch_end()


class ShardedRows(_Sharded):
    """Arrays and map-style Datasets: each rank takes its share of every global batch
    of one shuffle all ranks share, through the adapter's `row_batches`."""

    def __init__(self, inner: DataAdapter, run, record: bool):
        super().__init__(inner, run, record)
        local_batch_size(inner.batch_size, run.world_size)
        self._bounds = _batch_bounds(inner.num_samples, inner.batch_size, run.rank, run.world_size)

    @property
    def batch_size(self) -> int:
        return self.inner.batch_size // self.run.world_size

    def get_iterator(self) -> Iterator[tuple]:
        inner = self.inner
        permutation = shared_permutation(inner.num_samples, inner.batch_size, inner.shuffle)
        batches = inner.row_batches(permutation, [(low, high) for low, high, _ in self._bounds])
        return self._iterate(batches, permutation)

    def _iterate(self, batches, permutation) -> Iterator[tuple]:
        run, recorder = self.run, self.recorder
        recorder.start()
        for (low, high, weight), batch in zip(self._bounds, batches):
            run.loss_weight = weight
            recorder.rows(
                np.arange(low, high) if permutation is None else permutation[low:high].numpy()
            )
            yield batch
        run.loss_weight = 1.0


def _batch_bounds(num_samples: int, batch_size: int, rank: int, world: int) -> list:
    """(low, high, loss weight) of this rank's share of each global batch."""
    bounds = []
    for start in range(0, num_samples, batch_size):
        stop = min(start + batch_size, num_samples)
        low, high = local_bounds(start, stop, rank, world)
        # DDP averages the ranks' gradients: weigh each rank's mean loss by its
        # share so that a ragged last batch counts like one batch of `stop - start`.
        bounds.append((low, high, (high - low) * world / (stop - start)))
    return bounds


class ShardedDataLoaderAdapter(_Sharded):
    """A user's DataLoader, rebuilt with a `DistributedSampler` and the per-rank batch.

    Its `batch_size` is read as the global batch. Every other setting (workers,
    collate_fn, pin_memory, drop_last, ...) is kept; shuffling follows whether
    the loader shuffled, with one seed shared by all ranks. For training the
    sampler pads the last round by repeating rows so all ranks take the same
    number of steps; evaluate and predict deal out the rows without padding.
    """

    def __init__(self, inner: DataAdapter, run, record: bool, pad: bool = True):
        super().__init__(inner, run, record)
        loader = inner.loader
        local = local_batch_size(
            loader.batch_size, run.world_size, argument="the DataLoader's batch_size"
        )
        seed = torch.randint(0, 2**31 - 1, (1,), dtype=torch.int64)
        if run.world_size > 1:
            env.broadcast_(seed)
        if pad:
            self._sampler = DistributedSampler(
                loader.dataset,
                num_replicas=run.world_size,
                rank=run.rank,
                shuffle=isinstance(loader.sampler, RandomSampler),
                seed=int(seed),
                drop_last=loader.drop_last,
            )
        else:
            self._sampler = _EveryWorldth(len(loader.dataset), run.rank, run.world_size)
        workers = loader.num_workers
        self._loader = DataLoader(
            loader.dataset,
            batch_size=local,
            sampler=self._sampler,
            num_workers=workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
            drop_last=loader.drop_last,
            timeout=loader.timeout,
            worker_init_fn=loader.worker_init_fn,
            multiprocessing_context=loader.multiprocessing_context if workers else None,
            generator=loader.generator,
            prefetch_factor=loader.prefetch_factor if workers else None,
            persistent_workers=loader.persistent_workers if workers else False,
        )
        self._local_batch = local
        self._epoch = 0

    @property
    def num_batches(self) -> int:
        return len(self._loader)

    @property
    def batch_size(self) -> int:
        return self._local_batch

    def get_iterator(self) -> Iterator[tuple]:
        self._sampler.set_epoch(self._epoch)
        self._epoch += 1
        return self._iterate(list(self._sampler) if self.recorder.enabled else None)

    def _iterate(self, rows) -> Iterator[tuple]:
        recorder, convert = self.recorder, self.inner.convert_batch
        recorder.start()
        position = 0
        for batch in self._loader:
            batch = convert(batch)
            if rows is not None:
                count = _rows_of(batch)
                recorder.rows(rows[position : position + count])
                position += count
            yield batch


class _EveryWorldth(list):
    """Rows rank, rank + world, ... (no padding); `set_epoch` is a no-op."""

    def __init__(self, num_rows: int, rank: int, world: int):
        super().__init__(range(rank, num_rows, world))

    def set_epoch(self, epoch: int) -> None:
        del epoch


class ShardedSequenceAdapter(_Sharded):
    """A Sequence's batch indices dealt out per rank: rank r takes every world-th one.

    Each rank fetches whole Sequence batches, so one step of all ranks together
    covers `world_size` of them. For training the last round is padded by
    repeating the first indices so every rank takes the same number of steps;
    evaluate and predict skip the padding.
    """

    def __init__(self, inner: DataAdapter, run, record: bool, pad: bool = True):
        super().__init__(inner, run, record)
        self._num_indices = inner.num_batches
        self._pad = pad

    @property
    def num_batches(self) -> Optional[int]:
        if self._num_indices is None:
            return None
        if self._pad:
            return math.ceil(self._num_indices / self.run.world_size)
        return len(range(self.run.rank, self._num_indices, self.run.world_size))

    def get_iterator(self) -> Iterator[tuple]:
        world, rank = self.run.world_size, self.run.rank
        if self._num_indices is None:
            indices = itertools.count(rank, world)
        else:
            permutation = shared_permutation(self._num_indices, 1, self.inner.shuffle)
            order = list(range(self._num_indices)) if permutation is None else permutation.tolist()
            if self._pad:
                order = order + order[: self.num_batches * world - len(order)]
            indices = order[rank::world]
        tracked = _Tracked(indices)
        return self._iterate(self.inner.batches_at(tracked), tracked)

    def _iterate(self, batches, tracked: "_Tracked") -> Iterator[tuple]:
        self.recorder.start()
        for batch in batches:
            self.recorder.addressed(tracked.fetched.popleft(), batch)
            yield batch


class _Tracked:
    """Iterates indices, noting in `fetched` each one handed to a fetcher, in order."""

    def __init__(self, indices):
        self.indices = iter(indices)
        self.fetched: collections.deque = collections.deque()

    def __iter__(self):
        return self

    def __next__(self):
        index = next(self.indices)
        self.fetched.append(index)
        return index


class UnevenBatchGuard(_Sharded):
    """Generators and iterables: batches as the user's source yields them on each rank.

    Before each step all ranks agree that each of them has a batch (one small
    all_reduce); when some rank runs out while others do not, every rank raises
    the same error instead of waiting forever in the next collective.
    """

    def get_iterator(self) -> Iterator[tuple]:
        return self._guarded(iter(self.inner.get_iterator()))

    def _guarded(self, iterator) -> Iterator[tuple]:
        world, rank, recorder = self.run.world_size, self.run.rank, self.recorder
        recorder.start()
        for step in itertools.count():
            try:
                batch = next(iterator)
            except StopIteration:
                batch = None
            having = env.all_reduce_int(0 if batch is None else 1)
            if having == 0:
                return
            if having != world:
                raise ValueError(
                    f"The processes ran out of data at different steps: at step {step},"
                    f" {having} of {world} ranks had a batch (rank {rank}"
                    f" {'had one' if batch is not None else 'had none'}). Under torchrun every"
                    " rank must yield the same number of batches: shard the generator evenly,"
                    " pass `steps_per_epoch`, or give fit() arrays, a Dataset or a Sequence,"
                    " which torchfit splits itself."
                )
            recorder.addressed(step * world + rank, batch)
            yield batch
