"""Feeds torch `DataLoader`s as they are and batches map-style `Dataset`s.

Owns wrapping a bare Dataset in a DataLoader (batch_size, shuffling with the
same permutation the array adapter draws, pinned memory on CUDA) and moving
each loader batch to the device. A `TensorDataset` never gets here:
`get_adapter` sends its tensors down the faster array path.
"""

import math
from collections.abc import Iterator
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from torchfit.data.adapter import DataAdapter, warn_shuffle_ignored
from torchfit.data.array_adapter import check_shuffle, epoch_permutation
from torchfit.data.batch_converter import BatchConverter


class _EpochPermutationSampler(Sampler):
    """Yields the order `epoch_permutation` drew for the coming epoch."""

    def __init__(self, num_samples: int, batch_size: int, shuffle):
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.order = None

    def draw(self) -> None:
        """Draws the next epoch's order now, from the global torch RNG."""
        self.order = epoch_permutation(self.num_samples, self.batch_size, self.shuffle)

    def __iter__(self):
        order, self.order = self.order, None
        if order is None:
            order = epoch_permutation(self.num_samples, self.batch_size, self.shuffle)
        return iter(order.tolist())

    def __len__(self) -> int:
        return self.num_samples


class DataLoaderAdapter(DataAdapter):
    """Iterates a user's `DataLoader`, one pass per epoch, batches moved to `device`.

    The loader keeps its own batching, shuffling and dtypes.

    Args:
        loader: A `torch.utils.data.DataLoader`.
        class_weight: `{class_index: weight}`, applied per batch. Used for the
            DataLoader this module builds around a Dataset; `get_adapter`
            rejects it for a user's DataLoader, as Keras does.
        device: Where batches are delivered. Defaults to `None`.
        cast: Convert floats to float32. Defaults to `False` (keep dtypes).
    """

    def __init__(
        self, loader: DataLoader, *, class_weight=None, device=None, cast=False, source="DataLoader"
    ):
        self._loader = loader
        self._convert = BatchConverter(device, cast, class_weight, source)
        self._num_batches = None
        self._partial_batch_size = None
        try:
            self._num_batches = len(loader)
            dataset_size = len(loader.dataset)
        except TypeError:  # an IterableDataset without __len__
            dataset_size = None
        if loader.batch_size and dataset_size is not None and not loader.drop_last:
            self._partial_batch_size = dataset_size % loader.batch_size or None

    @property
    def split_by(self) -> Optional[str]:
        """ "loader" for a map-style dataset, rebuilt per process; `None` for an iterable one."""
        return None if isinstance(self._loader.dataset, IterableDataset) else "loader"

    def get_iterator(self) -> Iterator[tuple]:
        convert = self._convert
        return (convert(batch, index) for index, batch in enumerate(self._loader))

    @property
    def loader(self) -> DataLoader:
        """The DataLoader iterated, with its settings (sharding rebuilds it per process)."""
        return self._loader

    def convert_batch(self, batch, index: Optional[int] = None) -> tuple:
        """One batch of the loader put into final form: checked, converted, on the device."""
        return self._convert(batch, index)

    def check_targets(self, check) -> None:
        self._convert.check_targets(check)

    @property
    def num_batches(self) -> Optional[int]:
        return self._num_batches

    @property
    def batch_size(self) -> Optional[int]:
        return self._loader.batch_size

    @property
    def has_partial_batch(self) -> Optional[bool]:
        if self._num_batches is None:
            return None
        return self._partial_batch_size is not None

    @property
    def partial_batch_size(self) -> Optional[int]:
        return self._partial_batch_size


class DatasetAdapter(DataLoaderAdapter):
    """Batches a map-style `Dataset` (or an `IterableDataset` of samples).

    Items may be `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`; they are
    collated by torch's default collate, and floats become float32.

    Args:
        dataset: A `torch.utils.data.Dataset`.
        batch_size: Samples per batch. Defaults to 32.
        shuffle: `True`, `"batch"` or `False`; the order is drawn from the
            global torch RNG exactly as the array adapter draws it.
        class_weight: `{class_index: weight}`. Defaults to `None`.
        device: Where batches are delivered. Defaults to `None`.
    """

    def __init__(
        self, dataset: Dataset, *, batch_size=None, shuffle=False, class_weight=None, device=None
    ):
        batch_size = batch_size or 32
        shuffle = check_shuffle(shuffle)
        self._shuffle = False if isinstance(dataset, IterableDataset) else shuffle
        self._sampler = None
        if isinstance(dataset, IterableDataset):
            warn_shuffle_ignored(shuffle, "an IterableDataset", stacklevel=3)
        elif shuffle:
            self._sampler = _EpochPermutationSampler(len(dataset), batch_size, shuffle)
        pin_memory = device is not None and device.type == "cuda"
        loader = DataLoader(
            dataset, batch_size=batch_size, sampler=self._sampler, pin_memory=pin_memory
        )
        super().__init__(
            loader, class_weight=class_weight, device=device, cast=True, source="Dataset"
        )
        if self._num_batches is None:
            try:
                self._num_batches = math.ceil(len(dataset) / batch_size)
            except TypeError:
                pass

    @property
    def split_by(self) -> Optional[str]:
        """ "rows" for a map-style dataset (any rows, in any order); `None` for an iterable one."""
        return None if isinstance(self._loader.dataset, IterableDataset) else "rows"

    def get_iterator(self) -> Iterator[tuple]:
        if self._sampler is not None:
            self._sampler.draw()  # now, so the draw order matches the array path
        return super().get_iterator()

    @property
    def num_samples(self) -> int:
        """Number of samples in the (map-style) dataset."""
        return len(self._loader.dataset)

    @property
    def shuffle(self) -> Any:
        """How each epoch is shuffled: `True`, `"batch"` or `False`."""
        return self._shuffle

    def row_batches(self, order: Optional[torch.Tensor], bounds: list) -> Iterator[tuple]:
        """One pass of batches of chosen rows (see `ArrayDataAdapter.row_batches`),
        collated and converted as `get_iterator`'s."""
        rows = np.arange(self.num_samples) if order is None else order.numpy()
        loader = self._loader
        batches = DataLoader(
            loader.dataset,
            batch_sampler=[rows[low:high].tolist() for low, high in bounds],
            pin_memory=loader.pin_memory,
        )
        convert = self._convert
        return (convert(batch) for batch in batches)
