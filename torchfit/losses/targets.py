"""What a loss needs from its targets, checked before the loss runs.

Owns the two rules a loss declares with `Loss.target_rule`: `SAME_SHAPE`
(after Keras's `squeeze_or_expand_to_same_rank`, the target has exactly the
prediction's shape, so nothing is broadcast) and `ClassIndices` (the
prediction's shape without its class axis, holding integer class indices in
range). Shapes are host metadata, checked at every loss call for free; values
are checked on host copies only (`class_index_problem`), so no check ever
reads a device tensor. Which output a target belongs to, and the error naming
it, belong to compiled.py; when the values are checked belongs to the data
adapters.
"""

from typing import Any, NamedTuple, Optional

import numpy as np
import torch

__all__ = ["SAME_SHAPE", "ClassIndices", "class_index_problem", "shape_problem"]

#: The target is paired with the prediction element by element.
SAME_SHAPE = "same_shape"

_SHOWN_VALUES = 5  # bad label values listed in an error


class ClassIndices(NamedTuple):
    """The targets of a loss that looks up class indices (sparse cross-entropy).

    Attributes:
        axis: The class axis of the prediction.
        ignore_class: A label that is skipped, allowed outside the range.
        floats_are_indices: Whether float targets are read as indices (Keras's
            sparse losses cast them); `False` when float targets mean class
            probabilities instead (torch's `nn.CrossEntropyLoss`).
    """

    axis: int = -1
    ignore_class: Optional[int] = None
    floats_are_indices: bool = True


def same_rank_shapes(true_shape: tuple, pred_shape: tuple) -> tuple:
    """The shapes after Keras's `squeeze_or_expand_to_same_rank`.

    Example:
        >>> same_rank_shapes((8,), (8, 1))
        ((8, 1), (8, 1))
        >>> same_rank_shapes((8, 3), (8, 1))
        ((8, 3), (8, 1))
    """
    true_rank, pred_rank = len(true_shape), len(pred_shape)
    if true_rank == pred_rank + 1 and true_shape[-1] == 1:
        if pred_rank == 1:
            return true_shape, pred_shape + (1,)
        return true_shape[:-1], pred_shape
    if pred_rank == true_rank + 1 and pred_shape[-1] == 1:
        if true_rank == 1:
            return true_shape + (1,), pred_shape
        return true_shape, pred_shape[:-1]
    return true_shape, pred_shape


def _without_axis(shape: tuple, axis: int) -> Optional[tuple]:
    if not shape or not -len(shape) <= axis < len(shape):
        return None
    axis %= len(shape)
    return shape[:axis] + shape[axis + 1 :]


def shape_problem(rule: Any, y_true: Any, y_pred: Any) -> Optional[str]:
    """Describes why `y_true` cannot be `y_pred`'s target under `rule`.

    Args:
        rule: `SAME_SHAPE`, a `ClassIndices`, or `None` (anything goes).
        y_true: The target (only its shape and dtype are read).
        y_pred: The prediction (only its shape is read).

    Returns:
        `None` when the shapes fit, else a sentence for an error message.

    Example:
        >>> shape_problem(SAME_SHAPE, torch.zeros(4), torch.zeros(4, 1)) is None
        True
        >>> shape_problem(SAME_SHAPE, torch.zeros(4, 3), torch.zeros(4, 1))
        'the target has shape (4, 3) and the prediction (4, 1): they would be broadcast'
    """
    true_shape = tuple(getattr(y_true, "shape", None) or ())
    pred_shape = tuple(getattr(y_pred, "shape", None) or ())
    if rule is None or not pred_shape or not hasattr(y_true, "shape"):
        return None
    if isinstance(rule, ClassIndices):
        if not rule.floats_are_indices and _is_floating(y_true):
            return (
                None
                if true_shape == pred_shape
                else (
                    f"the target has shape {true_shape} and the prediction {pred_shape}:"
                    " class probabilities need the prediction's shape"
                )
            )
        return _class_index_shape_problem(rule.axis, true_shape, pred_shape)
    matched_true, matched_pred = same_rank_shapes(true_shape, pred_shape)
    if matched_true == matched_pred:
        return None
    return (
        f"the target has shape {true_shape} and the prediction {pred_shape}:"
        " they would be broadcast"
    )


def _class_index_shape_problem(axis: int, true_shape: tuple, pred_shape: tuple) -> Optional[str]:
    # Keras first matches ranks, then squeezes a size-1 class axis off the labels.
    true_shape, pred_shape = same_rank_shapes(true_shape, pred_shape)
    if (
        len(true_shape) == len(pred_shape)
        and _without_axis(true_shape, axis) is not None
        and true_shape[axis] == 1
    ):
        true_shape = _without_axis(true_shape, axis)
    expected = _without_axis(pred_shape, axis)
    if expected is None or true_shape == expected:
        return None
    return (
        f"the target has shape {true_shape} and the prediction {pred_shape}: class"
        f" indices need the prediction's shape without its class axis, {expected}"
    )


def _is_floating(value: Any) -> bool:
    dtype = getattr(value, "dtype", None)
    if isinstance(dtype, torch.dtype):
        return dtype.is_floating_point
    return getattr(dtype, "kind", "") == "f"


def _listed(values: torch.Tensor) -> str:
    distinct = torch.unique(values)
    shown = ", ".join(f"{value:g}" for value in distinct[:_SHOWN_VALUES].tolist())
    more = len(distinct) - _SHOWN_VALUES
    return shown + (f" and {more} more" if more > 0 else "")


def class_index_problem(values: Any, num_classes: int, rule: ClassIndices) -> Optional[str]:
    """Describes the values of a host array that are no class index.

    NaN, non-integer floats, negative labels and labels of `num_classes` or
    more are problems; `rule.ignore_class` is allowed anywhere.

    Args:
        values: A CPU tensor or NumPy array of labels. A device tensor is not
            read (that would wait for the device): it gives `None`.
        num_classes: The size of the prediction's class axis.
        rule: The loss's `ClassIndices`.

    Returns:
        `None` when every label is valid, else a sentence naming the bad values.

    Example:
        >>> rule = ClassIndices()
        >>> class_index_problem(torch.tensor([0, 2, 5, -1]), 3, rule)
        'labels -1, 5 are outside the valid range [0, 2]'
        >>> class_index_problem(torch.tensor([0.0, 1.5]), 3, rule)
        'labels 1.5 are not integers'
    """
    if not isinstance(values, torch.Tensor):
        # A copy: labels are small, and torch cannot share read-only or reversed memory.
        values = torch.from_numpy(np.array(values))
    if values.device.type != "cpu" or values.numel() == 0 or values.dtype == torch.bool:
        return None
    if values.is_floating_point():
        if not rule.floats_are_indices:
            return None
        if values.isnan().any():
            return "labels include NaN"
        fractional = values != values.round()
        if fractional.any():
            return f"labels {_listed(values[fractional])} are not integers"
    bad = (values < 0) | (values >= num_classes)
    if rule.ignore_class is not None:
        bad &= values != rule.ignore_class
    if not bad.any():
        return None
    return f"labels {_listed(values[bad])} are outside the valid range [0, {num_classes - 1}]"
