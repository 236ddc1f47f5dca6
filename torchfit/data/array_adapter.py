"""Batches arrays: NumPy (memory-mapped too), torch tensors, pandas, and lists/dicts of them.

Owns choosing between the two ways to batch them (data small next to its
memory is converted to tensors and placed on the device once, and shuffled by
one gather per epoch so each batch is a slice; memory-mapped or large data is
gathered batch by batch from where it lies), checking all of `y` once for the
compiled loss, and turning `class_weight` into sample weights. Type dispatch
belongs to `torchfit.data.get_adapter`; steps_per_epoch to the epoch iterator.
"""

import math
import mmap
from collections.abc import Iterator, Mapping
from typing import Any, Optional

import numpy as np
import torch

from torchfit.data import data_adapter_utils
from torchfit.data.adapter import DataAdapter
from torchfit.data.batch_converter import check_sample_weight
from torchfit.tree import flatten, is_nested, map_structure

# Data is copied to the GPU once when it takes at most this share of the free
# memory; bigger data stays in host memory and each batch is gathered there.
DEVICE_MEMORY_FRACTION = 0.3
# Data is converted and shuffled by whole copies when those copies take at
# most this share of the available host memory; else batches are gathered.
HOST_MEMORY_FRACTION = 0.3
_PARTS = ("x", "y", "sample_weight")


def check_shuffle(shuffle: Any) -> Any:
    """Validates `shuffle`: True, False or "batch"."""
    if shuffle is None:
        return False
    if shuffle in (True, False) or shuffle == "batch":
        return shuffle
    raise ValueError(f'`shuffle` must be True, False or "batch". Received: shuffle={shuffle!r}.')


def epoch_permutation(num_samples: int, batch_size: int, shuffle: Any) -> Optional[torch.Tensor]:
    """Draws the sample order for one epoch from the global torch RNG (on CPU).

    Args:
        num_samples: Number of samples.
        batch_size: Size of the chunks `shuffle="batch"` shuffles within.
        shuffle: `True` (one `torch.randperm`), `"batch"` or `False`.

    Returns:
        An int64 permutation, or `None` when not shuffling.
    """
    if not shuffle:
        return None
    if shuffle != "batch":
        return torch.randperm(num_samples)
    full = num_samples // batch_size
    parts = []
    if full:
        order = torch.rand(full, batch_size).argsort(dim=1)
        parts.append((order + torch.arange(full).unsqueeze(1) * batch_size).reshape(-1))
    remainder = num_samples - full * batch_size
    if remainder:
        parts.append(torch.randperm(remainder) + full * batch_size)
    return torch.cat(parts)


def _describe_sizes(parts: dict) -> str:
    described = []
    for name, sizes in parts.items():
        values = "/".join(str(size) for size in sizes)
        described.append(f"{name} has {values} samples")
    return ", ".join(described)


def check_cardinality(x: Any, y: Any, sample_weight: Any) -> int:
    """Returns the shared number of samples, or raises naming the mismatch."""
    parts = {}
    for name, part in zip(_PARTS, (x, y, sample_weight)):
        leaves = flatten(part)
        if leaves:
            parts[name] = sorted(
                {data_adapter_utils.num_samples(leaf) for leaf in leaves}, reverse=True
            )
    sizes = {size for part_sizes in parts.values() for size in part_sizes}
    if len(sizes) > 1:
        raise ValueError(
            f"Data cardinality is ambiguous: {_describe_sizes(parts)}."
            " Make sure all arrays contain the same number of samples."
        )
    total = sizes.pop()
    if total == 0:
        raise ValueError("Received empty data: `x` has 0 samples.")
    return total


def match_sample_weight(y: Any, sample_weight: Any) -> Any:
    """Gives a multi-output `y` one sample_weight per output, as Keras does."""
    if sample_weight is None or not is_nested(y):
        return sample_weight
    if is_nested(sample_weight):
        same = (
            set(sample_weight) == set(y)
            if isinstance(y, Mapping) and isinstance(sample_weight, Mapping)
            else not isinstance(y, Mapping)
            and not isinstance(sample_weight, Mapping)
            and len(y) == len(sample_weight)
        )
        if not same:
            raise ValueError(
                "`sample_weight` needs one array per output in `y`, in the same"
                f" structure. Received: y is a {type(y).__name__} of {len(y)},"
                f" sample_weight a {type(sample_weight).__name__} of {len(sample_weight)}."
            )
        return sample_weight
    shape = tuple(getattr(sample_weight, "shape", ()))
    if len(shape) != 1 and not (len(shape) == 2 and shape[1] == 1):
        raise ValueError(
            "With several outputs, a single `sample_weight` array must have one"
            f" weight per sample, shape (num_samples,). Received shape {shape}."
            " Pass one array per output for other shapes."
        )
    if isinstance(y, Mapping):
        return {key: sample_weight for key in y}
    return type(y)(sample_weight for _ in y)


def _fits_on_device(leaves: list, device: Optional[torch.device]) -> bool:
    """Whether the data, converted, takes at most `DEVICE_MEMORY_FRACTION` of a
    CUDA device's free memory (always True elsewhere)."""
    if device is None or device.type != "cuda":
        return True
    nbytes = sum(
        _final_nbytes(leaf)
        for leaf in leaves
        if not (isinstance(leaf, torch.Tensor) and leaf.device == device)
    )
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_MEMORY_FRACTION * free


def _available_host_memory() -> Optional[int]:
    """Bytes of host memory available without swapping (Linux), else `None`."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def is_memory_mapped(leaf: Any) -> bool:
    """Whether `leaf` is a NumPy array over a memory-mapped file (or a view of one)."""
    while isinstance(leaf, np.ndarray):
        if isinstance(leaf, np.memmap) or isinstance(leaf.base, mmap.mmap):
            return True
        leaf = leaf.base
    return False


def _final_nbytes(leaf: Any) -> int:
    """Bytes of `leaf` once converted: floats become float32."""
    if isinstance(leaf, torch.Tensor):
        floating, itemsize = leaf.is_floating_point(), leaf.element_size()
    else:
        floating, itemsize = leaf.dtype.kind == "f", leaf.dtype.itemsize
    return math.prod(leaf.shape) * (4 if floating else itemsize)


def _converts_by_copy(leaf: Any) -> bool:
    """Whether `to_tensor` copies `leaf` (a cast to float32, read-only or reversed memory)."""
    if isinstance(leaf, torch.Tensor):
        return leaf.is_floating_point() and leaf.dtype != torch.float32
    return (
        (leaf.dtype.kind == "f" and leaf.dtype != np.float32)
        or not leaf.flags.writeable
        or any(s < 0 for s in leaf.strides)
    )


def should_gather_in_place(leaves: list, device: Optional[torch.device], shuffle: Any) -> bool:
    """Whether batches are gathered by index from the arrays where they lie.

    True for a memory-mapped array, and for data whose copies (the float32
    conversion, a shuffled copy per epoch) would take more than
    `HOST_MEMORY_FRACTION` of the available host memory, or that would take
    more than `DEVICE_MEMORY_FRACTION` of the free memory of a CUDA device.
    Otherwise the data is converted and placed once (the fast path).
    """
    if any(isinstance(leaf, torch.Tensor) and leaf.device.type != "cpu" for leaf in leaves):
        return False
    if any(is_memory_mapped(leaf) for leaf in leaves):
        return True
    on_cuda = device is not None and device.type == "cuda"
    if not _fits_on_device(leaves, device):
        return True
    copies = sum(_final_nbytes(leaf) for leaf in leaves if _converts_by_copy(leaf))
    if shuffle and not on_cuda:
        copies += sum(_final_nbytes(leaf) for leaf in leaves)
    available = _available_host_memory()
    return available is not None and copies > HOST_MEMORY_FRACTION * available


def _convert_parts(parts: tuple, convert) -> tuple:
    """Converts each of `(x, y, sample_weight)`, naming the part a failure is in."""
    converted = []
    for name, part in zip(_PARTS, parts):
        try:
            converted.append(map_structure(convert, part))
        except TypeError as err:
            raise TypeError(f"`{name}`: {err}") from err
    return tuple(converted)


def _as_array(leaf: Any) -> Any:
    return (
        leaf if isinstance(leaf, (torch.Tensor, np.ndarray)) else data_adapter_utils.as_numpy(leaf)
    )


def _gather(tensor: torch.Tensor, rows, pin: bool) -> torch.Tensor:
    """The rows of `tensor` (a slice or an index tensor) as a new tensor.

    Always a copy: the source may be read-only memory. With `pin`, the copy
    is made into pinned memory, ready for an asynchronous copy to the GPU.
    """
    if isinstance(rows, slice):
        part = tensor[rows]
        return part.pin_memory() if pin else part.clone()
    if not pin:
        return tensor.index_select(0, rows)
    out = torch.empty((len(rows),) + tuple(tensor.shape[1:]), dtype=tensor.dtype, pin_memory=True)
    return torch.index_select(tensor, 0, rows, out=out)


class RowBatches(DataAdapter):
    """The sizes of data cut into batches of `_batch_size` of its `_num_samples` rows,
    in the order `_shuffle` says: shared by `ArrayDataAdapter` and the dict-row
    adapter (`torchfit.data.dict_rows`)."""

    @property
    def num_batches(self) -> int:
        return math.ceil(self._num_samples / self._batch_size)

    @property
    def num_samples(self) -> int:
        """Number of samples (rows) in the data."""
        return self._num_samples

    @property
    def shuffle(self) -> Any:
        """How each epoch is shuffled: `True`, `"batch"` or `False`."""
        return self._shuffle

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def has_partial_batch(self) -> bool:
        return self._num_samples % self._batch_size > 0

    @property
    def partial_batch_size(self) -> Optional[int]:
        return self._num_samples % self._batch_size or None


class ArrayDataAdapter(RowBatches):
    """Batches arrays: NumPy (memory-mapped too), torch tensors, pandas.

    Data that is small next to the memory it lives in is converted to float32
    tensors and placed on the device once; each epoch's shuffle is one gather,
    so each batch is a slice. Memory-mapped data, and data whose copies would
    crowd the host or device memory, stays where it is: each batch is gathered
    by index from the original arrays (on CUDA into pinned memory, copied to
    the device one batch ahead on a side stream), so memory holds a few
    batches, not copies of the data.

    Args:
        x: An array, or a list/tuple/dict of arrays (several inputs).
        y: Targets with the same nesting rules. Defaults to `None`.
        sample_weight: `(N,)` or `(N, T)` weights, or one array per output.
            Defaults to `None`.
        batch_size: Samples per batch. Defaults to `ceil(N / steps)` when
            `steps` is given, else 32.
        steps: Batches per epoch, used only to derive `batch_size`.
        shuffle: `True` for a new order each epoch, `"batch"` to shuffle
            within batch-sized chunks, `False`. Defaults to `False`.
        class_weight: `{class_index: weight}` for a single-output `y`.
        device: Where batches are delivered. Defaults to `None` (leave the
            data where it is).

    Example:
        >>> adapter = ArrayDataAdapter(np.zeros((5, 2)), np.arange(5), batch_size=2)
        >>> [tuple(x.shape) for x, y in adapter.get_iterator()]
        [(2, 2), (2, 2), (1, 2)]
    """

    split_by = "rows"  # see DataAdapter.split_by: any rows, in any order

    def __init__(
        self,
        x,
        y=None,
        sample_weight=None,
        *,
        batch_size=None,
        steps=None,
        shuffle=False,
        class_weight=None,
        device=None,
    ):
        self._shuffle = check_shuffle(shuffle)
        _check_class_weight_arguments(y, sample_weight, class_weight)
        sample_weight = match_sample_weight(y, sample_weight)
        self._num_samples = check_cardinality(x, y, sample_weight)
        check_sample_weight(y, sample_weight, "the data given")
        if not batch_size:
            batch_size = math.ceil(self._num_samples / steps) if steps else 32
        self._batch_size = int(batch_size)
        self._device = device

        parts = (x, y, sample_weight) if sample_weight is not None else (x, y)
        inputs = self._tensors(_convert_parts(parts, _as_array))
        if class_weight is not None:
            weights = data_adapter_utils.class_weight_for_targets(inputs[1], class_weight)
            inputs = (inputs[0], inputs[1], weights)
        if inputs[1] is None and len(inputs) == 2:
            inputs = inputs[:1]
        self._inputs = inputs
        self._flat = all(isinstance(part, torch.Tensor) for part in inputs)
        self._targets_checked = False

    def _tensors(self, parts: tuple) -> tuple:
        """Converts the arrays: in place (shared, uncast) or once (float32, on the device)."""
        self._in_place = should_gather_in_place(flatten(parts), self._device, self._shuffle)
        self._on_device = not self._in_place
        if self._in_place:
            inputs = _convert_parts(parts, data_adapter_utils.shared_host_tensor)
        else:
            inputs = _convert_parts(parts, data_adapter_utils.to_tensor)
        self._host_targets = inputs[1]  # kept until `check_targets` has read them
        if self._on_device:
            inputs = data_adapter_utils.move_to_device(inputs, self._device)
        return inputs

    def check_targets(self, check) -> None:
        """Checks all of `y` on the host, once (see `DataAdapter.check_targets`)."""
        if self._targets_checked:
            return
        self._targets_checked = True
        targets, self._host_targets = self._host_targets, None
        if targets is not None:
            # Targets given as device tensors are read once per fit, not per step.
            check(map_structure(lambda t: t.cpu(), targets), "in `y`")

    # -- iteration ---------------------------------------------------------

    def get_iterator(self) -> Iterator[tuple]:
        """Returns an iterator over one epoch; the permutation is drawn now."""
        permutation = epoch_permutation(self._num_samples, self._batch_size, self._shuffle)
        if self._in_place:
            return self._gathered(self._rows(permutation))
        inputs = self._inputs
        if permutation is not None:
            index = permutation.to(flatten(inputs)[0].device)
            inputs = map_structure(lambda t: t.index_select(0, index), inputs)
        return self._slices(inputs)

    def _slices(self, inputs) -> Iterator[tuple]:
        batch_size = self._batch_size
        if self._flat:
            for start in range(0, self._num_samples, batch_size):
                stop = start + batch_size
                yield tuple(t[start:stop] for t in inputs)
        else:
            for start in range(0, self._num_samples, batch_size):
                stop = start + batch_size
                yield map_structure(lambda t: t[start:stop], inputs)  # noqa: B023 - called now

    def row_batches(self, order: Optional[torch.Tensor], bounds: list) -> Iterator[tuple]:
        """One pass of batches of chosen rows, delivered like `get_iterator`'s.

        For `torchfit.distribution`: each process's share of every global batch
        of one order all processes share (see `DataAdapter.split_by`).

        Args:
            order: The epoch's order of the rows (an int64 permutation), or
                `None` for the rows as they are.
            bounds: `(low, high)` per batch: the batch is `order[low:high]`.

        Example:
        >>> adapter = ArrayDataAdapter(np.arange(6.0)[:, None], batch_size=2)
        >>> [x[:, 0].tolist() for (x,) in adapter.row_batches(torch.tensor([5, 4, 3, 2, 1, 0]),
        ...                                                  [(0, 1), (2, 3)])]
        [[5.0], [3.0]]
        """
        if self._in_place:
            rows = (slice(low, high) if order is None else order[low:high] for low, high in bounds)
            return self._gathered(rows)
        inputs = self._inputs
        if order is not None:
            index = order.to(flatten(inputs)[0].device)
            inputs = map_structure(lambda t: t.index_select(0, index), inputs)
        return self._sliced(inputs, bounds)

    def _sliced(self, inputs, bounds: list) -> Iterator[tuple]:
        for low, high in bounds:
            yield tuple(map_structure(lambda t: t[low:high], inputs))  # noqa: B023 - called now

    def _rows(self, permutation) -> Iterator:
        """Each batch's rows: a slice, or its share of the permutation."""
        for start in range(0, self._num_samples, self._batch_size):
            stop = start + self._batch_size
            yield slice(start, stop) if permutation is None else permutation[start:stop]

    def _gathered(self, rows_per_batch) -> Iterator[tuple]:
        """Batches gathered by index from the arrays where they lie."""
        device = self._device
        staged = device is not None and device.type == "cuda"
        # Each lambda runs at once, for the `rows` of its own batch.
        host_batches = (
            map_structure(lambda t: _gather(t, rows, staged), self._inputs)  # noqa: B023
            for rows in rows_per_batch
        )
        if staged:
            return self._staged(host_batches)
        return (data_adapter_utils.structure_to_device(batch, device) for batch in host_batches)

    def _staged(self, host_batches) -> Iterator[tuple]:
        """Copies pinned host batches on a side stream, one batch ahead."""
        device = self._device
        copy_stream = torch.cuda.Stream(device)

        def load(host_batch):
            with torch.cuda.stream(copy_stream):
                batch = data_adapter_utils.structure_to_device(host_batch, device)
                done = torch.cuda.Event()
                done.record(copy_stream)
            return batch, done

        host_batches = iter(host_batches)
        pending = load(next(host_batches))
        while pending is not None:
            batch, done = pending
            following = next(host_batches, None)
            pending = load(following) if following is not None else None
            compute_stream = torch.cuda.current_stream(device)
            compute_stream.wait_event(done)
            for tensor in flatten(batch):
                # The copy stream allocated it: keep it alive for compute too.
                tensor.record_stream(compute_stream)
            yield batch

    # -- sizes -------------------------------------------------------------

    @property
    def gathers_in_place(self) -> bool:
        """Whether each batch is gathered from the arrays where they lie."""
        return self._in_place


def _check_class_weight_arguments(y, sample_weight, class_weight) -> None:
    if class_weight is None:
        return
    if sample_weight is not None:
        raise ValueError(
            "You cannot pass both `class_weight` and `sample_weight`:"
            " fold the class weights into `sample_weight` instead."
        )
    if y is None:
        raise ValueError("`class_weight` needs targets: pass `y` as well.")
    data_adapter_utils.single_output(y)
