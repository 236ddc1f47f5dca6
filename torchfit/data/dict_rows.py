"""Batches a dataset of dict rows: a Hugging Face `datasets.Dataset`, or any sized,
indexable dataset whose rows are dicts.

Owns the column rule (which columns are the inputs `x`, which is the target
`y`, which are not used, said once), reading a batch of rows (whole columns at
once from a `datasets.Dataset`, row by row from anything else), and shuffling
them with the order the array adapter draws. Telling such a dataset, and
cutting off its last rows for `validation_split`, belong to
`data_adapter_utils.py`; what `forward` takes to `models/forward.py`.

The column rule:

- `y` is the `labels` column, else the `label` column (not in `predict`).
- `x` is the dict of the columns named after `forward`'s parameters (or the
  keys of its typed `**kwargs`; with an untyped `**kwargs`, every column but
  the labels). When `forward` takes `labels`, as a Hugging Face model does,
  the label column reaches it as `labels` too (a `label` column renamed, as
  Hugging Face's data collators do), so the model can compute its own loss.
- When no column is named after a parameter and one column besides the labels
  is left, that column is `x`, `forward`'s first input (with `labels` beside
  it when `forward` takes them).
- Other columns are not used. What was chosen is logged once (logger
  `"torchfit"`, level INFO); a column whose name is close to a parameter's,
  and a dataset with both `label` and `labels`, are warned about.
"""

import difflib
import logging
import warnings
from collections.abc import Iterator
from typing import Any, NamedTuple, Optional

import numpy as np
import torch

from torchfit.data.array_adapter import RowBatches, check_shuffle, epoch_permutation
from torchfit.data.batch_converter import BatchConverter
from torchfit.data.data_adapter_utils import reads_columns

__all__ = ["Columns", "DictRowsAdapter", "choose_columns"]

LABEL_COLUMNS = ("labels", "label")
_LOGGER = logging.getLogger("torchfit")
_TOLD: set = set()  # the column choices already logged in this process


class Columns(NamedTuple):
    """Which columns of a dataset of dict rows feed what."""

    #: `(forward's keyword, column)` of each input, in column order.
    x: list
    #: The target column, or `None`.
    y: Optional[str]
    #: The column that is `x` itself (`forward`'s one input), or `None`.
    bare_x: Optional[str]
    #: The columns not used.
    unused: list

    @property
    def read(self) -> list:
        """Every column a batch reads."""
        used = [column for _, column in self.x] + [self.bare_x, self.y]
        return list(dict.fromkeys(column for column in used if column is not None))


def _takes(signature: Any, name: str, text: bool) -> bool:
    """Whether `forward` takes column `name`: by name, or (strings aside) any column."""
    if signature is not None and name in _names_taken(signature):
        return True
    return not text and (signature is None or signature.any_keyword)


def _names_taken(signature: Any) -> list:
    return list(dict.fromkeys([*signature.names, *(signature.keyword_keys or ())]))


def choose_columns(
    names: list, signature: Any = None, purpose: str = "fit", text: tuple = ()
) -> Columns:
    """Applies the column rule (see the module's docstring) to a dataset's column names.

    Args:
        names: The dataset's column names, in order.
        signature: What `forward` takes: `names`, `keyword_keys` and
            `any_keyword` (a `models.forward.ForwardSignature`). Defaults to
            `None`: every column but the labels is an input.
        purpose: "fit", "evaluate" or "predict" (which has no `y`).
        text: The columns that hold strings: an input only when `forward` names them.

    Raises:
        ValueError: When no column can be an input.

    Example:
    >>> columns = choose_columns(["text", "label", "input_ids"], text=("text",))
    >>> columns.x, columns.y, columns.unused
    ([('input_ids', 'input_ids')], 'label', ['text'])
    """
    labels = [name for name in LABEL_COLUMNS if name in names]
    y = labels[0] if labels and purpose != "predict" else None
    x = [
        (name, name)
        for name in names
        if name not in labels and _takes(signature, name, name in text)
    ]
    label_input = signature is not None and "labels" in signature.names
    if y is not None and label_input:
        x.append(("labels", y))  # the model's own loss needs them
    bare_x = None
    if not [pair for pair in x if pair[0] != "labels"]:
        others = [name for name in names if name not in labels and name not in text]
        if len(others) != 1:
            raise _no_input_error(names, signature)
        if x:  # forward's first parameter, beside its `labels`
            x.insert(0, (signature.names[0], others[0]))
        else:
            bare_x = others[0]
    used = {column for _, column in x} | {bare_x, y}
    return Columns(x, y, bare_x, [name for name in names if name not in used])


def _no_input_error(names: list, signature: Any) -> ValueError:
    taken = f"forward({', '.join(signature.names)})" if signature is not None else "forward"
    return ValueError(
        f"None of the dataset's columns {names} is an input of {taken}: the inputs"
        " `x` are the columns named after forward's parameters (or the one column"
        f" besides {' / '.join(LABEL_COLUMNS)}). Rename the input columns after"
        " forward's parameters (`ds.rename_column(old, new)`), or drop the others."
    )


def _tell(names: list, columns: Columns, signature: Any, purpose: str) -> None:
    """Logs the choice once per process, and warns where it may not be what was meant."""
    key = (tuple(names), tuple(columns.x), columns.y, columns.bare_x, purpose)
    if key in _TOLD:
        return
    _TOLD.add(key)
    inputs = ", ".join(f"{column!r} as {keyword!r}" for keyword, column in columns.x)
    if columns.bare_x is not None:
        inputs = f"{columns.bare_x!r} as forward's input"
    _LOGGER.info(
        "%s() on a dataset of dict rows: x = %s; y = %s; not used: %s.",
        purpose,
        inputs,
        repr(columns.y) if columns.y else "none",
        columns.unused or "none",
    )
    if all(name in names for name in LABEL_COLUMNS) and purpose != "predict":
        warnings.warn(
            "The dataset has both a `labels` and a `label` column: `labels` is the"
            " target `y`. Remove the one you do not mean (`ds.remove_columns`).",
            stacklevel=5,
        )
    if signature is not None and not signature.any_keyword:
        unused = [name for name in columns.unused if name not in LABEL_COLUMNS]
        _warn_near_misses(unused, _names_taken(signature))


def _warn_near_misses(unused: list, parameters: list) -> None:
    for column in unused:
        close = difflib.get_close_matches(column, parameters, n=1, cutoff=0.8)
        if close:
            warnings.warn(
                f"The dataset's column {column!r} is not used: forward() has no parameter"
                f" of that name. Did you mean {close[0]!r}? forward() takes: {parameters}.",
                stacklevel=6,
            )


def _column_names(dataset: Any) -> tuple:
    """The column names, in order, and those whose first row holds a string."""
    first = dataset[0]
    names = list(dataset.column_names) if reads_columns(dataset) else list(first.keys())
    text = tuple(name for name in names if isinstance(first.get(name), (str, bytes)))
    return names, text


class DictRowsAdapter(RowBatches):
    """Batches a sized, indexable dataset of dict rows (see the module's column rule).

    A `datasets.Dataset` is read a batch of rows at a time, as torch tensors
    (`with_format("torch")`): no Python loop over rows. Any other dataset is
    read row by row and collated as a DataLoader would. Shuffling draws the
    same order as arrays do, from the global torch RNG.

    Args:
        dataset: The rows.
        forward_signature: What `forward` takes, for the column rule. Defaults
            to `None`: every column but the labels is an input.
        batch_size: Rows per batch. Defaults to 32.
        shuffle: `True`, `"batch"` or `False`. Defaults to `False`.
        class_weight: `{class_index: weight}`. Defaults to `None`.
        device: Where batches are delivered. Defaults to `None`.
        purpose: "fit", "evaluate" or "predict". Defaults to "fit".

    Example:
    >>> class Rows(torch.utils.data.Dataset):
    ...     def __len__(self):
    ...         return 5
    ...     def __getitem__(self, index):
    ...         return {"x": [float(index)], "label": index % 2, "note": "text"}
    >>> adapter = DictRowsAdapter(Rows(), batch_size=2)
    >>> [(tuple(x["x"].shape), y.tolist()) for x, y in adapter.get_iterator()]
    [((2, 1), [0, 1]), ((2, 1), [0, 1]), ((1, 1), [0])]
    """

    split_by = "rows"  # see DataAdapter.split_by: any rows, in any order

    def __init__(
        self,
        dataset: Any,
        *,
        forward_signature: Any = None,
        batch_size: Optional[int] = None,
        shuffle: Any = False,
        class_weight: Optional[dict] = None,
        device=None,
        purpose: str = "fit",
    ):
        self._num_samples = len(dataset)
        if not self._num_samples:
            raise ValueError(f"Received empty data: the dataset passed to {purpose}() has 0 rows.")
        names, text = _column_names(dataset)
        self._columns = choose_columns(names, forward_signature, purpose, text)
        _tell(names, self._columns, forward_signature, purpose)
        self._by_column = reads_columns(dataset)
        self._rows = (
            dataset.with_format("torch", columns=self._columns.read) if self._by_column else dataset
        )
        self._batch_size = int(batch_size or 32)
        self._shuffle = check_shuffle(shuffle)
        self._convert = BatchConverter(device, True, class_weight, "dataset")

    # -- reading -------------------------------------------------------------

    def _read(self, rows: list) -> dict:
        """The columns read for `rows`, one tensor per column."""
        if self._by_column:
            columns = self._rows[rows]
        else:
            columns = _collate([self._rows[i] for i in rows], self._columns.read)
        for name, value in columns.items():
            if not isinstance(value, torch.Tensor):
                raise _not_a_tensor_error(name, value)
        return columns

    def _batch(self, rows: list, index: Optional[int]) -> tuple:
        columns = self._read(rows)
        spec = self._columns
        if spec.bare_x is not None:
            x = columns[spec.bare_x]
        else:
            x = {keyword: columns[column] for keyword, column in spec.x}
        batch = (x,) if spec.y is None else (x, columns[spec.y])
        return self._convert(batch, index)

    def _batches(self, rows_per_batch) -> Iterator[tuple]:
        for index, rows in enumerate(rows_per_batch):
            yield self._batch(rows, index)

    def get_iterator(self) -> Iterator[tuple]:
        """One epoch of batches; the order is drawn now, as the array adapter draws it."""
        order = epoch_permutation(self._num_samples, self._batch_size, self._shuffle)
        rows = list(range(self._num_samples)) if order is None else order.tolist()
        size = self._batch_size
        return self._batches(rows[start : start + size] for start in range(0, len(rows), size))

    def row_batches(self, order: Optional[torch.Tensor], bounds: list) -> Iterator[tuple]:
        """One pass of batches of chosen rows (see `ArrayDataAdapter.row_batches`)."""
        rows = list(range(self._num_samples)) if order is None else order.tolist()
        return self._batches(rows[low:high] for low, high in bounds)

    def check_targets(self, check) -> None:
        self._convert.check_targets(check)

    # -- sizes ---------------------------------------------------------------

    @property
    def columns(self) -> Columns:
        """The columns chosen for `x` and `y` (see the module's column rule)."""
        return self._columns


def _collate(rows: list, names: list) -> dict:
    """One tensor per column of `rows` (dicts of numbers, lists, arrays or tensors)."""
    return {name: _collate_column(name, [row[name] for row in rows]) for name in names}


def _collate_column(name: str, values: list) -> torch.Tensor:
    if all(isinstance(value, torch.Tensor) for value in values):
        try:
            return torch.stack(values)
        except RuntimeError as err:
            raise _column_error(name, _shapes_found(values)) from err
    try:
        array = np.asarray(values)
    except ValueError as err:  # rows of different lengths
        raise _column_error(name, "rows of different lengths") from err
    if array.dtype == object or array.dtype.kind in "USV":
        raise _column_error(name, f"{type(values[0]).__name__} values, not numbers")
    return torch.from_numpy(array)


def _shapes_found(tensors: list) -> str:
    shapes = sorted({tuple(tensor.shape) for tensor in tensors})
    return f"rows of different shapes ({', '.join(map(str, shapes[:3]))}, ...)"


def _not_a_tensor_error(name: str, value: Any) -> ValueError:
    """The error for a column a `datasets.Dataset` read as a list, not one tensor."""
    items = value if isinstance(value, list) else []
    if items and all(isinstance(item, torch.Tensor) for item in items):
        return _column_error(name, _shapes_found(items))
    found = type(items[0]).__name__ if items else type(value).__name__
    return _column_error(name, f"{found} values, not numbers")


def _column_error(name: str, found: str) -> ValueError:
    return ValueError(
        f"The dataset's column {name!r} holds {found}: a batch needs numbers of one"
        " shape per column. Pad sequences to one length when tokenizing"
        " (`tokenizer(..., padding='max_length', truncation=True, max_length=N)`),"
        " encode strings as numbers, or pass a `DataLoader(ds, batch_size=...,"
        " collate_fn=...)` that pads each batch (its dict batches are `x` whole)."
    )
