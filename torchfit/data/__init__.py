"""Picks the data adapter for whatever `fit`, `evaluate` or `predict` received.

Owns recognising the kind of input and rejecting arguments that kind cannot
use (`y` with a DataLoader, `class_weight` with several outputs, ...). Each
adapter batches its own kind; `EpochIterator` turns an adapter into epochs.
"""

import types
import warnings
from collections.abc import Iterable
from typing import Any, Optional

from torch.utils.data import DataLoader, Dataset, TensorDataset

from torchfit.data import data_adapter_utils
from torchfit.data.adapter import DataAdapter, resolve_device, warn_shuffle_ignored
from torchfit.data.array_adapter import ArrayDataAdapter
from torchfit.data.data_adapter_utils import (
    class_weight_to_sample_weights,
    pack_x_y_sample_weight,
    train_validation_split,
    unpack_x_y_sample_weight,
)
from torchfit.data.dict_rows import DictRowsAdapter
from torchfit.data.epoch_iterator import EpochIterator
from torchfit.data.generator_adapter import GeneratorDataAdapter
from torchfit.data.sequence_adapter import SequenceAdapter
from torchfit.data.torch_adapter import DataLoaderAdapter, DatasetAdapter
from torchfit.utils.arguments import check_count
from torchfit.utils.sequence import Sequence

__all__ = [
    "ArrayDataAdapter",
    "DataAdapter",
    "DataLoaderAdapter",
    "DatasetAdapter",
    "DictRowsAdapter",
    "EpochIterator",
    "GeneratorDataAdapter",
    "SequenceAdapter",
    "get_adapter",
    "class_weight_to_sample_weights",
    "pack_x_y_sample_weight",
    "train_validation_split",
    "unpack_x_y_sample_weight",
]

_PURPOSES = ("fit", "evaluate", "predict")
_ACCEPTED = (
    "NumPy arrays, torch tensors, pandas DataFrames/Series, lists/tuples/dicts"
    " of those, a torch Dataset or DataLoader, a dataset of dict rows"
    " (datasets.Dataset), a torchfit.utils.Sequence"
    " (PyDataset), or a generator/iterable of batches"
)


def get_adapter(
    x: Any,
    y: Any = None,
    sample_weight: Any = None,
    *,
    batch_size: Optional[int] = None,
    steps: Optional[int] = None,
    shuffle: Any = False,
    class_weight: Optional[dict] = None,
    device=None,
    purpose: str = "fit",
    forward_signature: Any = None,
    default_batch_size: Optional[int] = None,
) -> DataAdapter:
    """Returns the DataAdapter for `x` (and `y`, `sample_weight`).

    Args:
        x: The inputs: arrays or tensors (or lists/dicts of them), a torch
            `Dataset` or `DataLoader`, a dataset of dict rows (a
            `datasets.Dataset`: see `dict_rows` for which columns are `x` and
            `y`), a `Sequence`, a generator or iterable of batches, or a
            `DataAdapter` (returned as is).
        y: Targets, only with array inputs. Defaults to `None`.
        sample_weight: Per-sample weights, only with array inputs.
        batch_size: Samples per batch for arrays and datasets. Defaults to 32.
            Data that comes in batches (a DataLoader, a Sequence, a generator)
            ignores it, with a warning.
        steps: Batches per epoch (`steps_per_epoch`/`steps`); with arrays and
            no `batch_size`, sets `batch_size = ceil(N / steps)`.
        shuffle: `True`, `False` or `"batch"`. Ignored, with a warning, for
            DataLoaders and generators, which set their own order.
        class_weight: `{class_index: weight}` for a single-output model.
        device: Where batches are delivered. Defaults to `None` (not moved).
        purpose: "fit", "evaluate" or "predict", used in error messages.
        forward_signature: What the model's `forward` takes (a
            `models.forward.ForwardSignature`): which columns of a dataset of
            dict rows are inputs. Defaults to `None`: every column but the labels.
        default_batch_size: The batch size arrays and datasets take when
            `batch_size` is `None` (validation data takes fit's); data that
            comes in batches ignores it without a warning. Defaults to `None`.

    Returns:
        A `DataAdapter`.

    Raises:
        ValueError: for an unsupported kind of data, mismatched sample
            counts, or arguments the kind of data cannot use.
    """
    if purpose not in _PURPOSES:
        raise ValueError(f"`purpose` must be one of {_PURPOSES}. Received: {purpose!r}.")
    if isinstance(x, DataAdapter):
        return x
    steps_name = "steps_per_epoch" if purpose == "fit" else "steps"
    batch_size = check_count("batch_size", batch_size)
    steps = check_count(steps_name, steps)
    device = resolve_device(device)
    given_batch_size, batch_size = batch_size, batch_size or default_batch_size
    if x is None:
        raise ValueError(
            f"`{purpose}()` needs data: `x` is None. Pass arrays, a Dataset,"
            " a DataLoader, a Sequence or a generator."
        )
    if class_weight is not None and purpose != "fit":
        raise ValueError(f"`class_weight` is only used by `fit()`, not `{purpose}()`.")

    if data_adapter_utils.is_array_structure(x) and not _is_list_of_batches(x):
        _check_arrays("y", y)
        _check_arrays("sample_weight", sample_weight)
        return ArrayDataAdapter(
            x,
            y,
            sample_weight,
            batch_size=batch_size,
            steps=steps,
            shuffle=shuffle,
            class_weight=class_weight,
            device=device,
        )
    if data_adapter_utils.is_dict_rows(x):
        _reject_arguments_for_rows(y, sample_weight)
        return DictRowsAdapter(
            x,
            forward_signature=forward_signature,
            batch_size=batch_size,
            shuffle=shuffle,
            class_weight=class_weight,
            device=device,
            purpose=purpose,
        )
    if data_adapter_utils.is_nested(x) and not _is_list_of_batches(x):
        _reject_mixed_structure(x)
    if not isinstance(x, (Sequence, Dataset)) and not _is_batch_iterable(x):
        name = type(x).__name__
        raise ValueError(
            f"Unrecognized data type for `x`: {name}. {_with_article(name).capitalize()}"
            f" is not valid data: `{purpose}()` accepts {_ACCEPTED}."
            f" Received: x={_short_repr(x)}."
        )
    kind = _kind_of(x)
    _reject_arguments(kind, y, sample_weight)
    if not isinstance(x, Dataset):  # data that comes in batches
        _warn_batch_size_ignored(given_batch_size, kind)
    if isinstance(x, Sequence):
        return SequenceAdapter(x, shuffle=shuffle, class_weight=class_weight, device=device)
    if isinstance(x, DataLoader):
        if class_weight is not None:
            raise ValueError(
                "`class_weight` is not supported for a torch DataLoader, which"
                " batches by itself. Return `(x, y, sample_weight)` from the"
                " Dataset's `__getitem__`, or pass the Dataset itself with"
                " `batch_size=` so torchfit batches it and applies `class_weight`."
            )
        warn_shuffle_ignored(shuffle, "a torch DataLoader")
        return DataLoaderAdapter(x, device=device)
    if isinstance(x, TensorDataset):
        return _tensor_dataset_adapter(x, batch_size, steps, shuffle, class_weight, device)
    if isinstance(x, Dataset):
        return DatasetAdapter(
            x, batch_size=batch_size, shuffle=shuffle, class_weight=class_weight, device=device
        )
    warn_shuffle_ignored(shuffle, _with_article(kind))
    return GeneratorDataAdapter(x, class_weight=class_weight, device=device)


def _warn_batch_size_ignored(batch_size: Optional[int], kind: str) -> None:
    if batch_size is not None:
        warnings.warn(
            f"`batch_size={batch_size}` was passed, but will be ignored since the data `x`"
            f" was provided as {_with_article(kind)}, which makes its own batches. Set the"
            f" batch size where the batches are made (`DataLoader(..., batch_size=...)`),"
            " or pass the dataset itself.",
            stacklevel=4,
        )


def _reject_arguments_for_rows(y: Any, sample_weight: Any) -> None:
    for name, value in (("y", y), ("sample_weight", sample_weight)):
        if value is not None:
            raise ValueError(
                f"When `x` is a dataset of dict rows (such as a `datasets.Dataset`), `{name}`"
                " should not be passed: the targets come from its `labels` (or `label`)"
                f" column. Received: {name} of type {type(value).__name__}. Add the"
                " targets as a column (`ds.add_column('labels', y)`)."
            )


def _with_article(noun: str) -> str:
    """`"a generator"`, `"an iterable"`."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind_of(x: Any) -> str:
    if isinstance(x, Sequence):
        return "Sequence"
    if isinstance(x, DataLoader):
        return "DataLoader"
    if isinstance(x, Dataset):
        return "Dataset"
    if isinstance(x, types.GeneratorType):
        return "generator"
    return "iterable"


def _is_list_of_batches(x: Any) -> bool:
    """A list whose items are all `(x, y)` / `(x, y, sample_weight)` tuples is a
    list of batches, not several inputs (those are arrays or lists of arrays)."""
    return (
        isinstance(x, list)
        and len(x) > 0
        and all(isinstance(item, tuple) and len(item) in (2, 3) for item in x)
    )


def _is_batch_iterable(x: Any) -> bool:
    return isinstance(x, Iterable) and not isinstance(x, (str, bytes))


def _reject_mixed_structure(x: Any) -> None:
    leaves = x.values() if isinstance(x, dict) else x
    if isinstance(x, dict) and x and all(map(data_adapter_utils.is_dict_rows, leaves)):
        raise ValueError(
            f"`x` is a {type(x).__name__} of datasets (splits {sorted(x)}), not one dataset."
            f" Pass one split, e.g. x=ds[{sorted(x)[0]!r}]."
        )
    found = sorted(
        {
            type(leaf).__name__
            for leaf in leaves
            if not data_adapter_utils.is_array_structure(leaf) or leaf is None
        }
    )
    raise ValueError(
        f"`x` is a {type(x).__name__} whose items are not all arrays or tensors"
        f" (found {', '.join(found) or 'nothing: it is empty'}). Several inputs go"
        " in a list or dict of arrays; a list of numbers needs `np.asarray(x)`."
    )


def _check_arrays(name: str, value: Any) -> None:
    if not data_adapter_utils.is_array_structure(value):
        raise ValueError(
            f"`{name}` must be an array or tensor (or a list/dict of them) when `x`"
            f" is arrays. Received: {name} of type {type(value).__name__}."
        )


def _reject_arguments(kind: str, y: Any, sample_weight: Any) -> None:
    for name, value, what in (
        ("y", y, "the targets"),
        ("sample_weight", sample_weight, "the sample weights"),
    ):
        if value is not None:
            raise ValueError(
                f"When `x` is {_with_article(kind)}, `{name}` should not be passed: {what} must"
                f" come from the {kind}, as batches `(x, y)` or"
                f" `(x, y, sample_weight)`. Received: {name} of type {type(value).__name__}."
            )


def _tensor_dataset_adapter(dataset, batch_size, steps, shuffle, class_weight, device):
    tensors = dataset.tensors
    if not 1 <= len(tensors) <= 3:
        raise ValueError(
            "A TensorDataset passed as `x` must hold 1 to 3 tensors: x, (x, y) or"
            f" (x, y, sample_weight). Received {len(tensors)} tensors."
        )
    x, y, sample_weight = unpack_x_y_sample_weight(tuple(tensors))
    return ArrayDataAdapter(
        x,
        y,
        sample_weight,
        batch_size=batch_size,
        steps=steps,
        shuffle=shuffle,
        class_weight=class_weight,
        device=device,
    )
