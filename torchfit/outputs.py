"""Reads what a model's call returns as Keras reads a model's outputs.

Owns which parts of a call's return value are outputs, and their names. A tensor
is one output. A tuple or list is named by position (`output_names`, else
`output_1`, `output_2`, ...); a dict, a dataclass (a Hugging Face `ModelOutput`
is both) or a namedtuple by its keys or fields. Only the tensors are outputs:
`None`, caches (`DynamicCache`), tuples of tensors (`hidden_states`) and other
objects take no loss and no metric. The `loss` entry of a dict, dataclass or
namedtuple is the model's own loss (Hugging Face models return one when given
`labels`), never an output. Also owns the container `predict` returns.
Applying `compile()`'s losses and metrics to the outputs belongs to
`compiled.py`; joining the batches of a prediction to `loops.py`.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np
import torch

from torchfit import tree

__all__ = [
    "OWN_LOSS",
    "Outputs",
    "describe_entries",
    "named_entries",
    "outputs_structure",
    "own_loss",
    "predictions",
]

#: The entry of a named output that holds the model's own loss.
OWN_LOSS = "loss"


def _is_namedtuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def named_entries(value: Any) -> Optional[list]:
    """`(name, value)` of each entry of a dict, dataclass or namedtuple; `None` otherwise.

    A Hugging Face `ModelOutput` lists only its entries that are not `None`.

    Example:
    >>> from collections import namedtuple
    >>> named_entries(namedtuple("Heads", "score probs")(1, 2))
    [('score', 1), ('probs', 2)]
    >>> named_entries((1, 2)) is None
    True
    """
    if isinstance(value, Mapping):
        return list(value.items())
    if _is_namedtuple(value):
        return list(zip(value._fields, value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(field.name, getattr(value, field.name)) for field in dataclasses.fields(value)]
    return None


def _entry(value: Any, name: str) -> Any:
    return value[name] if isinstance(value, Mapping) else getattr(value, name)


def own_loss(y_pred: Any) -> Optional[torch.Tensor]:
    """The model's own loss: the `loss` tensor of a named output, else `None`.

    A loss with a batch axis is averaged, as a Keras loss reduces over the batch.

    Example:
    >>> own_loss({"loss": torch.tensor(0.5), "logits": torch.zeros(2, 3)})
    tensor(0.5000)
    >>> own_loss(torch.zeros(2, 3)) is None
    True
    """
    if isinstance(y_pred, torch.Tensor):
        return None
    if isinstance(y_pred, Mapping):
        loss = y_pred.get(OWN_LOSS)
    elif named_entries(y_pred) is not None:
        loss = getattr(y_pred, OWN_LOSS, None)
    else:
        return None
    if not isinstance(loss, torch.Tensor):
        return None
    return loss if loss.dim() == 0 else loss.mean()


def describe_entries(y_pred: Any) -> str:
    """`"loss: Tensor (), logits: Tensor (2, 3), cache: DynamicCache"`, for errors."""
    entries = named_entries(y_pred)
    if entries is None:
        entries = [(f"output {index + 1}", item) for index, item in enumerate(y_pred)]

    def describe(item: Any) -> str:
        if isinstance(item, torch.Tensor):
            return f"Tensor {tuple(item.shape)}"
        return type(item).__name__

    return ", ".join(f"{name}: {describe(item)}" for name, item in entries)


# ------------------------------------------------------------------ predict
def predictions(y_pred: Any) -> Any:
    """The outputs of one call in the container `predict` returns, whatever the batch count.

    A dict, dataclass or `ModelOutput` becomes a plain dict of its entries that
    hold tensors (or NumPy arrays); a namedtuple stays that namedtuple, and a
    tuple or list stays one, with `None` in place of what holds none. The
    model's own `loss` is left out. Tensors are not copied.

    Example:
    >>> predictions({"loss": torch.tensor(1.0), "logits": torch.zeros(2), "cache": object()})
    {'logits': tensor([0., 0.])}
    """
    if isinstance(y_pred, (torch.Tensor, np.ndarray)) or y_pred is None:
        return y_pred
    if named_entries(y_pred) is None and not isinstance(y_pred, (list, tuple)):
        return y_pred  # a custom predict_step's own object: passed on as it is
    return _kept(y_pred, top=True)


def _kept(value: Any, top: bool = False) -> Any:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value
    if _is_namedtuple(value):
        fields = (
            None if top and name == OWN_LOSS else _kept(item)
            for name, item in zip(value._fields, value)
        )
        return type(value)._make(fields)
    if isinstance(value, (list, tuple)):
        return type(value)(_kept(item) for item in value)
    entries = named_entries(value)
    if entries is None:
        return None  # a cache, a number, any other object: no prediction
    kept = {}
    for name, item in entries:
        item = _kept(item)
        if tree.flatten(item) and not (top and name == OWN_LOSS):
            kept[name] = item
    return kept


# ------------------------------------------------------------------ outputs
class Outputs:
    """The model's outputs laid flat: one name per output, in order.

    Kinds:
        `"single"`: one tensor (or a one-element tuple or list), one unnamed
            output: its log keys get no prefix.
        `"list"`: a tuple or list, named by `output_names`, else `output_1`,
            `output_2`, ...
        `"dict"`: a dict, dataclass or namedtuple, named by its keys or fields.

    Only tensor entries are outputs (`names`); the `loss` entry of a dict,
    dataclass or namedtuple is the model's own loss (`has_own_loss`). When
    exactly one tensor is left, the model has a single output as Keras sees
    it: a bare `y`, one loss and a flat metrics list fit it, and its logs
    are unprefixed.

    Example:
    >>> outputs = Outputs({"logits": torch.zeros(2, 3), "cache": object()})
    >>> outputs.names, outputs.count, outputs.others
    (['logits'], 1, ['cache'])
    """

    def __init__(self, y_pred: Any, output_names: Optional[Sequence[str]] = None):
        self.has_own_loss = False
        self.others: list = []  # entries that are no output: caches, None, the own loss
        entries = named_entries(y_pred)
        if entries is not None:
            self._read_named(entries)
        elif isinstance(y_pred, (list, tuple)) and len(y_pred) != 1:
            self._read_positional(y_pred, output_names)
        else:
            self.kind = "single"
            self.names = list(output_names)[:1] if output_names else ["output"]
            self.positions = [0]
            self.size = 1

    def _read_named(self, entries: list) -> None:
        self.kind = "dict"
        self.names = []
        for name, item in entries:
            if name == OWN_LOSS and isinstance(item, torch.Tensor):
                self.has_own_loss = True
                self.others.append(name)
            elif isinstance(item, torch.Tensor):
                self.names.append(name)
            else:
                self.others.append(name)
        self.positions = None
        self.size = len(entries)

    def _read_positional(self, y_pred: Sequence, output_names) -> None:
        self.kind = "list"
        if output_names is not None and len(output_names) != len(y_pred):
            raise ValueError(
                f"`output_names` has {len(output_names)} names but the model"
                f" returned {len(y_pred)} outputs. Received:"
                f" output_names={list(output_names)}."
            )
        every = (
            list(output_names)
            if output_names is not None
            else [f"output_{index + 1}" for index in range(len(y_pred))]
        )
        self.positions = [i for i, item in enumerate(y_pred) if isinstance(item, torch.Tensor)]
        self.names = [every[i] for i in self.positions]
        self.others = [name for i, name in enumerate(every) if i not in self.positions]
        self.size = len(y_pred)

    @classmethod
    def from_names(cls, names: Sequence[str]) -> "Outputs":
        """The outputs of a model known only by `output_names`: one, or a tuple of several."""
        outputs = cls.__new__(cls)
        outputs.kind = "list" if len(names) > 1 else "single"
        outputs.names = list(names)
        outputs.positions = list(range(len(names)))
        outputs.size = len(names)
        outputs.has_own_loss = False
        outputs.others = []
        return outputs

    @property
    def count(self) -> int:
        return len(self.names)

    def flatten(self, y_pred: Any) -> list:
        """The model's predictions, one per output name."""
        if self.kind == "dict":
            return [_entry(y_pred, name) for name in self.names]
        if self.kind == "list":
            return [y_pred[index] for index in self.positions]
        if isinstance(y_pred, (list, tuple)):
            return [y_pred[0]]
        return [y_pred]

    def match(self, value: Any, argument: str, *, broadcast: bool = False) -> list:
        """Lays `value` (targets or sample weights) out per output.

        Args:
            value: `None`, one array for a single output, a list by position or
                a dict by output name.
            argument: The user-facing argument name, for errors.
            broadcast: Whether one non-nested value serves every output (as a
                1-D `sample_weight` does in Keras).
        """
        if value is None:
            return [None] * self.count
        if isinstance(value, Mapping):
            return self._match_dict(value, argument)
        if isinstance(value, (list, tuple)):
            return self._match_list(value, argument)
        if self.count == 1 or broadcast:
            return [value] * self.count
        raise ValueError(
            f"The model has {self.count} outputs ({self.names}) but `{argument}`"
            f" is a single {type(value).__name__}. Pass a list with one entry"
            " per output, or a dict keyed by output name."
        )

    def _match_dict(self, value: Mapping, argument: str) -> list:
        value = self.without_others(value, argument)
        if self.count == 1:
            if len(value) != 1:
                raise ValueError(
                    f"`{argument}` is a dict with keys {sorted(value)} but the"
                    " model has a single output."
                )
            return list(value.values())
        unknown = sorted(set(value) - set(self.names))
        if unknown:
            raise ValueError(
                f"`{argument}` has keys {unknown} that are no output of the"
                f" model. Expected keys among: {self.names}."
            )
        return [value.get(name) for name in self.names]

    def without_others(self, value: Mapping, argument: str) -> Mapping:
        """`value` (a dict keyed by entry name) without the `None` entries for what
        the model returns but is no output (a cache, the own loss); raises for others."""
        others = [key for key in value if key in self.others and key not in self.names]
        if not others:
            return value
        given = [key for key in others if value[key] is not None]
        if given:
            raise ValueError(
                f"`{argument}` has an entry for {given}, which the model returns but"
                f" which is no output: only tensors are outputs (the model's outputs:"
                f" {self.names}), and `{OWN_LOSS}` is the model's own loss. Leave"
                f" {given} out of `{argument}`."
            )
        return {key: item for key, item in value.items() if key not in others}

    def spans_every_entry(self, value: Any) -> bool:
        """Whether `value` is a list with one entry per element of a returned tuple, tensor or
        not (`loss=["mse", None]` for `(prediction, cache)`), rather than one per output."""
        return (
            self.kind == "list"
            and isinstance(value, (list, tuple))
            and len(value) == self.size != self.count
        )

    def _match_list(self, value: Sequence, argument: str) -> list:
        if self.spans_every_entry(value):
            return self._by_every_position(value, argument)
        if self.count == 1:
            return [value[0]] if len(value) == 1 else [value]
        if len(value) != self.count:
            raise ValueError(
                f"`{argument}` has {len(value)} entries but the model has"
                f" {self.count} outputs ({self.names}). Pass one entry per"
                " output, or a dict keyed by output name."
            )
        return list(value)

    def _by_every_position(self, value: Sequence, argument: str) -> list:
        """`value` given for every entry the model returns, tensors or not."""
        extra = [
            index + 1
            for index, item in enumerate(value)
            if index not in self.positions and item is not None
        ]
        if extra:
            raise ValueError(
                f"`{argument}` has entries for the model's outputs at positions {extra}"
                " (counting from 1), which are no tensors and take none. Put `None`"
                f" there, or give one entry per tensor output ({self.names})."
            )
        return [value[index] for index in self.positions]


def outputs_structure(y_pred: Any, output_names=None) -> Optional[Outputs]:
    """The outputs of a model's call, or `None` when `output_names` does not fit them
    (the first batch of `fit` will say so)."""
    try:
        return Outputs(y_pred, output_names)
    except ValueError:
        return None
