"""Small helpers every data adapter shares.

Owns the batch format (`x`, `(x,)`, `(x, y)`, `(x, y, sample_weight)`), the
nested-structure helpers, turning array-likes into torch tensors, telling a
dataset of dict rows, the `validation_split` cut (the last rows of arrays or of
a dataset of dict rows) and `class_weight` lookups. Batching, shuffling and
device placement belong to the adapters.
"""

import math
import sys
import warnings
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import IterableDataset, Subset

from torchfit.tree import flatten, is_nested, map_structure
from torchfit.utils.sequence import Sequence


def _is_pandas(value: Any) -> bool:
    """Whether `value` is a pandas DataFrame or Series.

    pandas is optional and slow to import: a user holding a DataFrame has
    already imported it, so only look when it is loaded.
    """
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, (pandas.DataFrame, pandas.Series))


Batch = tuple  # `(x,)`, `(x, y)` or `(x, y, sample_weight)`, leaves are tensors.

_FLOATX = torch.float32


# ---------------------------------------------------------------------------
# Batch format
# ---------------------------------------------------------------------------


def unpack_x_y_sample_weight(data: Any) -> tuple:
    """Splits a batch into `(x, y, sample_weight)`.

    A list is read as a tuple; anything that is not a tuple is `x` alone. This
    is the helper to call first in a custom `train_step(data)`.

    Args:
        data: `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`.

    Returns:
        `(x, y, sample_weight)`, with `None` for the parts not given.

    Raises:
        ValueError: if `data` is a tuple with more than three elements.

    Example:
        >>> x, y, sw = unpack_x_y_sample_weight((1, 2))
        >>> (x, y, sw)
        (1, 2, None)
    """
    parts = _batch_parts(data)
    return parts + (None,) * (3 - len(parts))


def pack_x_y_sample_weight(x: Any, y: Any = None, sample_weight: Any = None) -> Any:
    """Packs `x`, `y` and `sample_weight` into the batch format `fit` reads.

    Args:
        x: Model inputs.
        y: Targets. Defaults to `None`.
        sample_weight: Per-sample weights. Defaults to `None`.

    Returns:
        `x` itself when it is a single input and `y` is `None`, else `(x,)`,
        `(x, y)` or `(x, y, sample_weight)`.

    Example:
        >>> pack_x_y_sample_weight(1, 2)
        (1, 2)
        >>> pack_x_y_sample_weight([1, 2])
        ([1, 2],)
    """
    if y is None:
        # A lone list/tuple x is wrapped so it is not read as (x, y).
        return (x,) if isinstance(x, (list, tuple)) else x
    if sample_weight is None:
        return (x, y)
    return (x, y, sample_weight)


def standardize_batch(batch: Any) -> tuple:
    """Puts one batch into tuple form: `(x,)`, `(x, y)` or `(x, y, sw)`.

    Follows Keras: a list is read as a tuple, a dict or a single array is `x`.

    Raises:
        ValueError: if the batch is a tuple of more than three elements.
    """
    if hasattr(batch, "_fields"):
        return (batch,)  # a namedtuple is x alone
    return _batch_parts(batch)


def _batch_parts(data: Any) -> tuple:
    """`data` as a tuple of 1 to 3 parts: a list is read as a tuple, anything else is `x`."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return (data,)  # a dict or an array is x alone
    if 1 <= len(data) <= 3:
        return data
    raise ValueError(
        "A batch must be `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`."
        f" Received a tuple of {len(data)} elements."
        " Pass several inputs as a list or dict inside the first element:"
        " `([x1, x2], y)`."
    )


# ---------------------------------------------------------------------------
# Nested structures (tuples, lists, dicts; None is kept as is)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Array-likes and tensors
# ---------------------------------------------------------------------------


def is_array_like(value: Any) -> bool:
    """Whether `value` is one array: NumPy, torch, pandas or `__array__`."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return True
    if _is_pandas(value):
        return True
    return hasattr(value, "__array__") and not isinstance(value, (str, bytes))


def is_array_structure(structure: Any) -> bool:
    """Whether `structure` is an array or a non-empty list/tuple/dict of arrays."""
    if structure is None:
        return True
    if is_array_like(structure):
        return True
    if not is_nested(structure):
        return False
    values = list(structure.values()) if isinstance(structure, Mapping) else structure
    return len(values) > 0 and all(is_array_structure(item) for item in values)


def _non_numeric_columns(value: Any) -> list:
    """`name (dtype)` of each column of a DataFrame (or of the Series) that
    holds something other than numbers."""
    columns = value.items() if hasattr(value, "columns") else [(value.name, value)]
    found = []
    for name, column in columns:
        if column.dtype.kind in "biuf":
            continue
        try:
            column.to_numpy(dtype=np.float32)
        except (TypeError, ValueError):
            found.append(f"{name!r} ({column.dtype})")
    return found


def as_numpy(value: Any) -> np.ndarray:
    """One array-like as NumPy (pandas through `to_numpy`, naming non-numeric columns)."""
    if _is_pandas(value):
        array = value.to_numpy()
        if array.dtype == object:  # mixed column dtypes: Keras casts to floatx
            found = _non_numeric_columns(value)
            if found:
                what = "column(s)" if hasattr(value, "columns") else "Series"
                raise TypeError(
                    "Data must be numeric to become a torch tensor, but the pandas"
                    f" {what} {', '.join(found)} hold values that are no numbers."
                    " Encode them as numbers (e.g. `pd.get_dummies(frame)` or"
                    " `column.cat.codes`) or drop them."
                )
            array = value.to_numpy(dtype=np.float32)
        return array
    return np.asarray(value)


def host_tensor(value: Any) -> Any:
    """Converts one leaf to a torch tensor, keeping its dtype and where it lives.

    NumPy memory is shared when torch can share it; read-only and
    negative-stride arrays are copied. Tensors and `None` pass unchanged.

    Raises:
        TypeError: if `value` holds strings or Python objects.

    Example:
        >>> host_tensor(np.array([1.5, 2.5])).dtype
        torch.float64
    """
    if value is None or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (bool, int, float)):
        return torch.tensor(value)
    array = as_numpy(value)
    if array.dtype == object or array.dtype.kind in "USV":
        raise TypeError(
            "Data must be numeric to become a torch tensor."
            f" Received: an array of dtype {array.dtype} and shape {array.shape}."
            " Encode strings and Python objects as numbers first."
        )
    if not array.flags.writeable or any(s < 0 for s in array.strides):
        array = np.array(array)  # torch cannot share read-only/negative-stride memory
    return torch.from_numpy(array)


def shared_host_tensor(value: Any) -> Any:
    """A CPU tensor over `value`'s own memory, dtype unchanged, for data only read from.

    Unlike `host_tensor`, read-only memory (a `np.load(mmap_mode="r")` array)
    is shared, not copied: the tensor must never be written to. Only
    negative-stride arrays are copied.

    Example:
        >>> array = np.arange(3.0)
        >>> array.flags.writeable = False
        >>> shared_host_tensor(array).data_ptr() == array.ctypes.data
        True
    """
    if value is None or isinstance(value, torch.Tensor):
        return value
    array = as_numpy(value)
    if array.dtype == object or array.dtype.kind in "USV" or any(s < 0 for s in array.strides):
        return host_tensor(array)
    with warnings.catch_warnings():
        # torch warns that it cannot mark the tensor read-only; nothing writes to it.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def to_tensor(value: Any, device: Optional[torch.device] = None) -> Any:
    """Converts one leaf to a torch tensor, floats as float32 (Keras's floatx).

    Integers and bools keep their dtype. Tensors already of the right dtype on
    `device` are returned as they are (no copy).

    Args:
        value: A tensor, NumPy array, pandas object, array-like or Python number.
            `None` is returned unchanged.
        device: Where the tensor should live. Defaults to `None` (leave it).

    Returns:
        A `torch.Tensor` (or `None`).

    Raises:
        TypeError: if `value` holds strings or Python objects.
    """
    value = host_tensor(value)
    if value is None:
        return None
    # Move before casting: a pinned float64 batch still copies asynchronously.
    if device is not None and value.device != device:
        value = value.to(device, non_blocking=True)
    if value.is_floating_point() and value.dtype != _FLOATX:
        value = value.to(_FLOATX)
    return value


def structure_to_device(structure: Any, device: Optional[torch.device]) -> Any:
    """Converts every leaf with `to_tensor` and moves it to `device`."""
    return map_structure(lambda leaf: to_tensor(leaf, device), structure)


def move_to_device(structure: Any, device: Optional[torch.device]) -> Any:
    """Moves the tensors of a structure to `device` without changing dtypes."""
    if device is None:
        return structure

    def move(leaf):
        if isinstance(leaf, torch.Tensor) and leaf.device != device:
            return leaf.to(device, non_blocking=True)
        return leaf

    return map_structure(move, structure)


def num_samples(value: Any) -> int:
    """Length of the first (batch) axis of one array-like."""
    shape = getattr(value, "shape", None)
    if shape is None:
        shape = np.shape(value)
    if len(shape) == 0:
        raise ValueError(
            "Every array needs a first (batch) axis."
            f" Received a scalar of type {type(value).__name__}."
        )
    return int(shape[0])


# ---------------------------------------------------------------------------
# Datasets of dict rows
# ---------------------------------------------------------------------------


def reads_columns(value: Any) -> bool:
    """Whether `value` reads a column of many rows at once, as a `datasets.Dataset`
    declares it does: `column_names`, `with_format(...)` and `select(rows)`."""
    return (
        isinstance(getattr(value, "column_names", None), list)
        and callable(getattr(value, "with_format", None))
        and callable(getattr(value, "select", None))
    )


def is_dict_rows(value: Any) -> bool:
    """Whether `value` is a sized, indexable dataset whose rows are dicts.

    A Hugging Face `datasets.Dataset` is one; so is a torch map-style `Dataset`
    whose `__getitem__` returns a dict. Lists, dicts, arrays, a
    `torchfit.utils.Sequence` (it holds batches, not rows) and iterable
    datasets are not.

    Example:
    >>> class Rows(torch.utils.data.Dataset):
    ...     def __len__(self):
    ...         return 2
    ...     def __getitem__(self, index):
    ...         return {"x": float(index), "label": index}
    >>> is_dict_rows(Rows()), is_dict_rows([{"x": 1.0}]), is_dict_rows(np.zeros(3))
    (True, False, False)
    """
    if reads_columns(value):
        return True
    if (
        isinstance(value, (list, tuple, Mapping, str, bytes, Sequence, IterableDataset))
        or is_array_like(value)
        or not (hasattr(type(value), "__len__") and hasattr(type(value), "__getitem__"))
    ):
        return False
    try:
        return len(value) > 0 and isinstance(value[0], Mapping)
    except (IndexError, KeyError, TypeError, ValueError, NotImplementedError):
        return False


def take_rows(dataset: Any, start: int, stop: int) -> Any:
    """Rows `start` to `stop` of a dataset of dict rows, without copying them."""
    if reads_columns(dataset):
        return dataset.select(range(start, stop))
    return Subset(dataset, range(start, stop))


# ---------------------------------------------------------------------------
# validation_split
# ---------------------------------------------------------------------------


def _slice_rows(value: Any, start: int, stop: int) -> Any:
    if _is_pandas(value):
        return value.iloc[start:stop]
    return value[start:stop]


def train_validation_split(arrays: Any, validation_split: float) -> tuple:
    """Cuts off the last `validation_split` fraction of the samples.

    The cut is made before any shuffling, at `floor(N * (1 - validation_split))`.

    Args:
        arrays: A structure of arrays/tensors, usually `(x, y, sample_weight)`;
            `None` entries are kept. `x` may be a dataset of dict rows instead
            (`y` and `sample_weight` then `None`): its last rows are held out.
        validation_split: Fraction of the samples, strictly between 0 and 1.

    Returns:
        `(train_arrays, validation_arrays)`, each with the structure of `arrays`.

    Raises:
        ValueError: if the data is not arrays or tensors, `validation_split` is
            out of range, or either part would be empty.

    Example:
        >>> x = np.arange(10)
        >>> (train,), (val,) = train_validation_split((x,), 0.2)
        >>> train.tolist(), val.tolist()
        ([0, 1, 2, 3, 4, 5, 6, 7], [8, 9])
    """
    if isinstance(validation_split, bool) or not 0.0 < float(validation_split) < 1.0:
        raise ValueError(
            "`validation_split` must be a float strictly between 0 and 1."
            f" Received: validation_split={validation_split!r}."
        )
    if _rows_only(arrays):
        return _split_rows(arrays[0], validation_split, len(arrays))
    if not is_array_structure(arrays):
        kinds = sorted({type(leaf).__name__ for leaf in flatten(arrays) if not is_array_like(leaf)})
        received = ", ".join(kinds) or type(arrays).__name__
        raise ValueError(
            "`validation_split` needs arrays or tensors (or a dataset of dict rows,"
            " such as a `datasets.Dataset`): it takes the last fraction of the samples"
            " before shuffling."
            f" Received data of type {received}."
            " Pass `validation_data=(x_val, y_val)` instead."
        )
    leaves = flatten(arrays)
    if not leaves:
        return arrays, arrays
    total = num_samples(leaves[0])
    split_at = int(math.floor(total * (1.0 - validation_split)))
    if split_at == 0 or split_at == total:
        raise ValueError(
            f"The data has {total} samples, too few to split with"
            f" `validation_split={validation_split}`: one part would be empty."
            " Provide more data or a different `validation_split`."
        )
    train = map_structure(lambda leaf: _slice_rows(leaf, 0, split_at), arrays)
    validation = map_structure(lambda leaf: _slice_rows(leaf, split_at, total), arrays)
    return train, validation


def _rows_only(arrays: Any) -> bool:
    """Whether `arrays` is `(rows,)` or `(rows, None, None)`: a dataset of dict rows alone."""
    return (
        isinstance(arrays, tuple)
        and bool(arrays)
        and all(part is None for part in arrays[1:])
        and is_dict_rows(arrays[0])
    )


def _split_rows(rows: Any, validation_split: float, parts: int) -> tuple:
    total = len(rows)
    split_at = int(math.floor(total * (1.0 - validation_split)))
    if split_at == 0 or split_at == total:
        raise ValueError(
            f"The dataset has {total} rows, too few to split with"
            f" `validation_split={validation_split}`: one part would be empty."
            " Provide more data or a different `validation_split`."
        )
    padding = (None,) * (parts - 1)
    return (
        (take_rows(rows, 0, split_at),) + padding,
        (take_rows(rows, split_at, total),) + padding,
    )


# ---------------------------------------------------------------------------
# class_weight
# ---------------------------------------------------------------------------


def class_weight_lookup(class_weight: Mapping, device: Optional[torch.device] = None) -> tuple:
    """Builds the lookup table `class_weight_to_sample_weights` indexes into.

    Args:
        class_weight: `{class_index: weight}`; keys are cast with `int(key)`.
        device: Device of the table. Defaults to `None` (CPU).

    Returns:
        `(table, offset)`: `table[label - offset]` is the weight of `label`, and
        the table's last entry (1.0) serves every class not in the dict.

    Raises:
        TypeError: if `class_weight` is not a dict.
        ValueError: if a key is not an integer class index or a weight is not
            a number.
    """
    if not isinstance(class_weight, Mapping):
        raise TypeError(
            "`class_weight` must be a dict mapping class indices to weights,"
            f" e.g. {{0: 1.0, 1: 5.0}}. Received: type {type(class_weight).__name__}."
        )
    if not class_weight:
        raise ValueError("`class_weight` is an empty dict. Pass `class_weight=None` instead.")
    weights = {}
    for key, value in class_weight.items():
        try:
            index = int(key)
        except (TypeError, ValueError) as err:
            raise ValueError(
                "`class_weight` keys must be integer class indices."
                f" Received key {key!r} of type {type(key).__name__}."
            ) from err
        try:
            weights[index] = float(value)
        except (TypeError, ValueError) as err:
            raise ValueError(
                "`class_weight` values must be numbers."
                f" Received {type(value).__name__} for class {index}."
            ) from err
    offset = min(weights)
    table = torch.ones(max(weights) - offset + 2, dtype=_FLOATX)
    for index, weight in weights.items():
        table[index - offset] = weight
    return table.to(device) if device is not None else table, offset


def labels_from_targets(y: torch.Tensor) -> torch.Tensor:
    """Class indices from targets: argmax of one-hot, squeeze of `(N, 1)`, rounded."""
    if y.ndim > 1:
        y = y.argmax(dim=-1) if y.shape[-1] != 1 else y.squeeze(-1)
    if y.is_floating_point():
        y = torch.round(y)
    return y.long()


def class_weight_to_sample_weights(y: Any, class_weight: Any) -> torch.Tensor:
    """Turns targets and `{class: weight}` into per-sample weights, as Keras does.

    One-hot targets use their argmax, `(N, 1)` targets are squeezed, float
    labels are rounded, and classes missing from the dict weigh 1.0. The lookup
    runs on `y`'s device without a host sync.

    Args:
        y: Targets of one output: `(N,)`, `(N, 1)` or one-hot `(N, C)`.
        class_weight: `{class_index: weight}`, or the `(table, offset)` pair
            from `class_weight_lookup` to reuse a table across batches.

    Returns:
        A float32 tensor of shape `(N,)` on `y`'s device.

    Example:
        >>> class_weight_to_sample_weights(np.array([0, 1, 2]), {1: 3.0}).tolist()
        [1.0, 3.0, 1.0]
    """
    y = to_tensor(y)
    if isinstance(class_weight, tuple):
        table, offset = class_weight
    else:
        table, offset = class_weight_lookup(class_weight)
    if table.device != y.device:
        table = table.to(y.device)
    labels = labels_from_targets(y) - offset
    last = table.shape[0] - 1  # weight 1.0 for classes outside the dict
    in_range = (labels >= 0) & (labels < last)
    return table[torch.where(in_range, labels, last)]


def single_output(y: Any) -> Any:
    """The one target tensor of `y`; raises when `y` has several outputs."""
    leaves = flatten(y)
    if len(leaves) != 1:
        raise ValueError(
            "class_weight is only supported for single-output models:"
            f" received `y` with {len(leaves)} outputs."
            " Pass per-output `sample_weight` arrays instead."
        )
    return leaves[0]


def class_weight_for_targets(y: Any, class_weight: Any, table=None) -> Any:
    """Sample weights for `y` from `class_weight`, in `y`'s structure."""
    target = single_output(y)
    if table is None:
        table = class_weight_lookup(class_weight, target.device)
    weights = class_weight_to_sample_weights(target, table)
    return map_structure(lambda _: weights, y)
