"""Batches in-memory arrays: NumPy, torch tensors, pandas, and lists/dicts of them.

Owns converting the data to tensors once, placing it on the device once,
shuffling (one gather per epoch so each batch is a contiguous slice) and
turning `class_weight` into sample weights. Type dispatch belongs to
`torchfit.data.get_adapter`; steps_per_epoch to the epoch iterator.
"""

import math
from collections.abc import Mapping
from typing import Any, Iterator, Optional

import torch

from torchfit.data import data_utils
from torchfit.data.adapter import DataAdapter

# Data is copied to the GPU once when it takes at most this share of the free
# memory; bigger data stays in pinned host memory and is copied per batch.
DEVICE_MEMORY_FRACTION = 0.3
_PARTS = ("x", "y", "sample_weight")


def check_shuffle(shuffle: Any) -> Any:
    """Validates `shuffle`: True, False or "batch"."""
    if shuffle is None:
        return False
    if shuffle in (True, False) or shuffle == "batch":
        return shuffle
    raise ValueError(
        f'`shuffle` must be True, False or "batch". Received: shuffle={shuffle!r}.'
    )


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
        leaves = data_utils.flatten(part)
        if leaves:
            parts[name] = sorted({data_utils.num_samples(leaf) for leaf in leaves}, reverse=True)
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
    if sample_weight is None or not data_utils.is_nested(y):
        return sample_weight
    if data_utils.is_nested(sample_weight):
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


def _fits_on_device(tensors: list, device: Optional[torch.device]) -> bool:
    if device is None or device.type != "cuda":
        return True
    nbytes = sum(t.numel() * t.element_size() for t in tensors if t.device != device)
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_MEMORY_FRACTION * free


class ArrayDataAdapter(DataAdapter):
    """Batches arrays that fit in host memory.

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
    """

    def __init__(self, x, y=None, sample_weight=None, *, batch_size=None, steps=None,
                 shuffle=False, class_weight=None, device=None):
        self._shuffle = check_shuffle(shuffle)
        if class_weight is not None and sample_weight is not None:
            raise ValueError(
                "You cannot pass both `class_weight` and `sample_weight`:"
                " fold the class weights into `sample_weight` instead."
            )
        if class_weight is not None and y is None:
            raise ValueError("`class_weight` needs targets: pass `y` as well.")
        if class_weight is not None:
            data_utils.single_output(y)
        sample_weight = match_sample_weight(y, sample_weight)
        self._num_samples = check_cardinality(x, y, sample_weight)
        if not batch_size:
            batch_size = math.ceil(self._num_samples / steps) if steps else 32
        self._batch_size = int(batch_size)
        self._device = device

        inputs = (x, y, sample_weight) if sample_weight is not None else (x, y)
        inputs = data_utils.map_structure(data_utils.to_tensor, inputs)
        leaves = data_utils.flatten(inputs)
        self._on_device = _fits_on_device(leaves, device)
        if self._on_device:
            inputs = data_utils.move_to_device(inputs, device)
        if class_weight is not None:
            inputs = (inputs[0], inputs[1], data_utils.class_weight_for_targets(inputs[1], class_weight))
        if inputs[1] is None and len(inputs) == 2:
            inputs = inputs[:1]
        self._inputs = inputs
        self._flat = all(isinstance(part, torch.Tensor) for part in inputs)
        self._pinned_buffer = None
        self._last_copy = None
        if not self._on_device and not self._shuffle:
            self._inputs = data_utils.map_structure(lambda t: t.pin_memory(), inputs)

    # -- iteration ---------------------------------------------------------

    def get_iterator(self) -> Iterator[tuple]:
        """Returns an iterator over one epoch; the permutation is drawn now."""
        permutation = epoch_permutation(self._num_samples, self._batch_size, self._shuffle)
        inputs = self._inputs
        if permutation is not None:
            inputs = self._gather(inputs, permutation)
        if self._on_device:
            return self._slices(inputs)
        return self._staged_slices(inputs)

    def _gather(self, inputs, permutation):
        if self._on_device:
            index = permutation.to(data_utils.flatten(inputs)[0].device)
            return data_utils.map_structure(lambda t: t.index_select(0, index), inputs)
        # Host data: gather into a reused pinned buffer, once the previous
        # epoch's asynchronous copies out of it have finished.
        if self._last_copy is not None:
            self._last_copy.synchronize()
        if self._pinned_buffer is None:
            self._pinned_buffer = data_utils.map_structure(
                lambda t: torch.empty(t.shape, dtype=t.dtype, pin_memory=True), inputs)
        buffers = iter(data_utils.flatten(self._pinned_buffer))

        def gather(tensor):
            return torch.index_select(tensor, 0, permutation, out=next(buffers))

        return data_utils.map_structure(gather, inputs)

    def _slices(self, inputs) -> Iterator[tuple]:
        batch_size = self._batch_size
        if self._flat:
            for start in range(0, self._num_samples, batch_size):
                stop = start + batch_size
                yield tuple(t[start:stop] for t in inputs)
        else:
            for start in range(0, self._num_samples, batch_size):
                stop = start + batch_size
                yield data_utils.map_structure(lambda t: t[start:stop], inputs)

    def _staged_slices(self, inputs) -> Iterator[tuple]:
        """Copies pinned host slices on a side stream, one batch ahead."""
        device = self._device
        copy_stream = torch.cuda.Stream(device)

        def load(start):
            with torch.cuda.stream(copy_stream):
                batch = data_utils.map_structure(
                    lambda t: t[start:start + self._batch_size].to(device, non_blocking=True),
                    inputs)
                done = torch.cuda.Event()
                done.record(copy_stream)
            return batch, done

        starts = range(0, self._num_samples, self._batch_size)
        pending = load(0)
        for start in starts:
            batch, done = pending
            if start + self._batch_size < self._num_samples:
                pending = load(start + self._batch_size)
            self._last_copy = pending[1]
            compute_stream = torch.cuda.current_stream(device)
            compute_stream.wait_event(done)
            for tensor in data_utils.flatten(batch):
                # The copy stream allocated it: keep it alive for compute too.
                tensor.record_stream(compute_stream)
            yield batch

    # -- sizes -------------------------------------------------------------

    @property
    def num_batches(self) -> int:
        return math.ceil(self._num_samples / self._batch_size)

    @property
    def num_samples(self) -> int:
        """Number of samples in the data."""
        return self._num_samples

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def has_partial_batch(self) -> bool:
        return self._num_samples % self._batch_size > 0

    @property
    def partial_batch_size(self) -> Optional[int]:
        return self._num_samples % self._batch_size or None
