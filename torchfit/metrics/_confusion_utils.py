"""Counts weighted true/false positives/negatives at many thresholds at once.

Owns what the confusion-matrix metrics (`TruePositives` ... `AUC`) share: the
one vectorised update (aligning ranks and sample weights the way Keras does,
`top_k` and `class_id` filtering, and Keras's two counting strategies:
broadcast comparison against every threshold, or bucketing the predictions
and cumulative sums when the thresholds are evenly spaced), the AUC area
formulas, argument checks, and `ThresholdedMetric`, which keeps the
thresholds on the metric's device. What each metric reports belongs to
`confusion_metrics.py`.

Nothing here reads a tensor value on the host: counts are added in place to
the state tensors with tensor ops only.
"""

import difflib
from collections.abc import Mapping, Sequence
from typing import Optional

import numpy as np
import torch

from torchfit.metrics.base import Metric

__all__ = [
    "CURVES",
    "EPSILON",
    "NEG_INF",
    "SUMMATION_METHODS",
    "ThresholdedMetric",
    "align_ranks",
    "check_fraction",
    "divide_no_nan",
    "evenly_spaced_thresholds",
    "interpolated_pr_auc",
    "is_evenly_spaced",
    "is_int_at_least",
    "parse_choice",
    "parse_thresholds",
    "riemann_auc",
    "update_confusion_variables",
]

# Keras's stand-in for "below every threshold" when `top_k` masks predictions.
NEG_INF = -1e10
# Keras's backend epsilon, used to widen the outer AUC thresholds.
EPSILON = 1e-7

_KEYS = ("tp", "fp", "tn", "fn")


def parse_thresholds(thresholds, default: float, argument: str = "thresholds") -> list:
    """Returns `thresholds` as a list of floats, or `[default]` when it is None.

    Raises:
        ValueError: If a threshold is None or outside `[0, 1]`.
    """
    if thresholds is None:
        return [default]
    values = list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) else [thresholds]
    invalid = [t for t in values if t is None or not 0 <= t <= 1]
    if invalid:
        raise ValueError(
            f"`{argument}` must be floats in [0, 1]. Received out-of-range values: {invalid[:5]}."
        )
    return [float(t) for t in values]


def is_evenly_spaced(thresholds: Sequence[float]) -> bool:
    """Whether `thresholds` are `i / (n - 1)` for `i` in `0..n-1`, with `n >= 3`."""
    count = len(thresholds)
    if count < 3:
        return False
    even = np.arange(count, dtype=np.float32) / (count - 1)
    return bool(np.allclose(thresholds, even, atol=EPSILON))


def align_ranks(x1: torch.Tensor, x2: torch.Tensor, expand_rank_1: bool = True):
    """Squeezes or expands a trailing unit dim when the ranks differ by one."""
    if x1.ndim == x2.ndim + 1 and x1.shape[-1] == 1:
        if x2.ndim == 1 and expand_rank_1:
            x2 = x2.unsqueeze(-1)
        else:
            x1 = x1.squeeze(-1)
    elif x2.ndim == x1.ndim + 1 and x2.shape[-1] == 1:
        if x1.ndim == 1 and expand_rank_1:
            x1 = x1.unsqueeze(-1)
        else:
            x2 = x2.squeeze(-1)
    return x1, x2


def _filter_top_k(y_pred: torch.Tensor, k: int) -> torch.Tensor:
    indices = torch.topk(y_pred, k, dim=-1).indices
    keep = torch.zeros_like(y_pred, dtype=torch.bool).scatter_(-1, indices, True)
    return torch.where(keep, y_pred, torch.full_like(y_pred, NEG_INF))


def _broadcast(value: torch.Tensor, shape: torch.Size, argument: str) -> torch.Tensor:
    try:
        return value.expand(shape)
    except RuntimeError as err:
        raise ValueError(
            f"`{argument}` must broadcast to the shape of `y_pred`."
            f" Received: {argument}.shape={tuple(value.shape)},"
            f" y_pred.shape={tuple(shape)}."
        ) from err


def update_confusion_variables(
    variables: Mapping[str, torch.Tensor],
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    thresholds: torch.Tensor,
    *,
    sample_weight: Optional[torch.Tensor] = None,
    top_k: Optional[int] = None,
    class_id: Optional[int] = None,
    multi_label: bool = False,
    label_weights: Optional[torch.Tensor] = None,
    evenly_spaced: bool = False,
    with_epsilon: bool = False,
) -> None:
    """Adds this batch's confusion counts to `variables`, in place.

    A prediction counts as positive at threshold `t` when `y_pred > t`; a
    label is positive when it is nonzero.

    Args:
        variables: Some of "tp", "fp", "tn", "fn" mapped to state tensors of
            shape `(num_thresholds,)`, or `(num_thresholds, num_labels)` when
            `multi_label`.
        y_true: Labels, already in the state's dtype and device.
        y_pred: Predictions, same dtype and device.
        thresholds: 1-D tensor of thresholds on the same device.
        sample_weight: Optional weights broadcastable to `y_true` (Keras's
            rank rules: a trailing unit dim is squeezed, `(N,)` weights apply
            to every column of `(N, C)` data).
        top_k: Keep only the `k` largest predictions of the last axis.
        class_id: Keep only this column of the last axis.
        multi_label: Count each column of 2-D data separately.
        label_weights: Per-column weights, applied when not `multi_label`.
        evenly_spaced: The thresholds are `i / (n - 1)`, so use buckets.
        with_epsilon: The outer thresholds were widened by `EPSILON`, so a
            prediction of exactly 0 counts as above the first one.

    Raises:
        ValueError: If shapes do not line up or `class_id` needs a class axis.
    """
    y_pred, y_true = align_ranks(y_pred, y_true)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            "`y_true` and `y_pred` must have the same shape (up to a trailing"
            f" unit dim). Received: y_true.shape={tuple(y_true.shape)},"
            f" y_pred.shape={tuple(y_pred.shape)}."
        )
    if sample_weight is not None:
        _, sample_weight = align_ranks(y_true, sample_weight.unsqueeze(-1), expand_rank_1=False)
    if top_k is not None:
        y_pred = _filter_top_k(y_pred, top_k)
    if class_id is not None:
        if y_pred.ndim < 2:
            raise ValueError(
                "`class_id` needs `y_pred` of shape (num_samples, num_classes)."
                f" Received: y_pred.shape={tuple(y_pred.shape)}."
            )
        y_true = y_true[..., class_id : class_id + 1]
        y_pred = y_pred[..., class_id : class_id + 1]
    if multi_label and y_pred.ndim != 2:
        raise ValueError(
            "`multi_label=True` needs `y_pred` of rank 2 (num_samples, num_labels)."
            f" Received: y_pred.shape={tuple(y_pred.shape)}."
        )

    weights = None
    if sample_weight is not None:
        weights = _broadcast(sample_weight, y_pred.shape, "sample_weight")
    if label_weights is not None and not multi_label:
        label_weights = _broadcast(label_weights.unsqueeze(0), y_pred.shape, "label_weights")
        weights = label_weights if weights is None else weights * label_weights

    # Work on (samples, labels): one label column unless counting per label.
    columns = y_pred.shape[-1] if multi_label else 1
    y_pred = y_pred.reshape(-1, columns)
    positive = (y_true != 0).reshape(-1, columns)
    if weights is not None:
        weights = weights.reshape(-1, columns)
        positive_weight = positive * weights
        labels = torch.stack([positive_weight, weights - positive_weight], dim=1)
    else:
        # Bool labels: the broadcast counts stay exact integer sums.
        labels = torch.stack([positive, ~positive], dim=1)

    if evenly_spaced:
        counts = _bucketed_counts(variables, y_pred, labels, thresholds.shape[0], with_epsilon)
    else:
        counts = _broadcast_counts(variables, y_pred, labels, thresholds)
    for key, count in counts.items():
        variable = variables[key]
        variable.add_(count.reshape(variable.shape))


def _broadcast_counts(variables, y_pred, labels, thresholds) -> dict:
    """Counts by comparing every prediction with every threshold: O(T * N).

    `labels` is `(N, 2, L)`: positive and negative weight (or flag) per value.
    """
    above = (y_pred.unsqueeze(0) > thresholds.view(-1, 1, 1)).unsqueeze(2)
    counts = {}
    if "tp" in variables or "fp" in variables:
        summed = (above * labels).sum(dim=1)
        counts["tp"], counts["fp"] = summed[:, 0], summed[:, 1]
    if "tn" in variables or "fn" in variables:
        summed = (~above * labels).sum(dim=1)
        counts["fn"], counts["tn"] = summed[:, 0], summed[:, 1]
    return {key: counts[key] for key in _KEYS if key in variables}


def _bucketed_counts(variables, y_pred, labels, num_thresholds, with_epsilon) -> dict:
    """Counts with one scatter and two cumulative sums: O(T + N).

    Prediction `p` lands in bucket `ceil(p * (T - 1)) - 1`, the index of the
    highest threshold strictly below it; row 0 of the scatter target collects
    the predictions below every threshold and is dropped.
    """
    columns = y_pred.shape[1]
    labels = labels.to(y_pred.dtype).reshape(-1, 2 * columns)
    buckets = torch.ceil(y_pred.clamp(0.0, 1.0) * (num_thresholds - 1)) - 1
    buckets = buckets.clamp(min=0.0 if with_epsilon else -1.0) + 1
    index = buckets.to(torch.int64).repeat(1, 2)
    bins = torch.zeros(num_thresholds + 1, 2 * columns, dtype=labels.dtype, device=labels.device)
    bins.scatter_add_(0, index, labels)
    above = bins[1:].flip(0).cumsum(0).flip(0)
    counts = {"tp": above[:, :columns], "fp": above[:, columns:]}
    if "tn" in variables or "fn" in variables:
        # Row i of the forward cumsum holds everything at or below threshold i;
        # exact where `total - tp` would leave rounding residue.
        below = bins[:-1].cumsum(0)
        counts["fn"], counts["tn"] = below[:, :columns], below[:, columns:]
    return {key: counts[key] for key in _KEYS if key in variables}


def divide_no_nan(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """`numerator / denominator`, with 0 where the denominator is 0."""
    safe = torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    return torch.where(denominator == 0, torch.zeros_like(numerator), numerator / safe)


def interpolated_pr_auc(tp, fp, fn) -> torch.Tensor:
    """Area under the PR curve, interpolating tp and fp (Davis & Goadrich 2006).

    Within each interval between thresholds, tp and `p = tp + fp` vary
    linearly, so precision `tp / p` integrates in closed form:
    `slope * (dtp + intercept * log(p_a / p_b))`, divided by the positives.
    Sums over the threshold axis (0); keeps a trailing label axis.
    """
    predicted = tp + fp
    dtp = tp[:-1] - tp[1:]
    dp = predicted[:-1] - predicted[1:]
    slope = divide_no_nan(dtp, dp.clamp(min=0))
    intercept = tp[1:] - slope * predicted[1:]
    both_positive = (predicted[:-1] > 0) & (predicted[1:] > 0)
    ratio = torch.where(
        both_positive,
        divide_no_nan(predicted[:-1], predicted[1:].clamp(min=0)),
        torch.ones_like(predicted[1:]),
    )
    increments = divide_no_nan(
        slope * (dtp + intercept * torch.log(ratio)),
        (tp[1:] + fn[1:]).clamp(min=0),
    )
    return increments.sum(dim=0)


def riemann_auc(tp, fp, tn, fn, curve: str, summation_method: str) -> torch.Tensor:
    """Area under the ROC, PR or PR-gain curve by a Riemann sum over thresholds.

    Args:
        tp, fp, tn, fn: Counts of shape `(T,)` or `(T, labels)`, thresholds
            ascending.
        curve: "ROC", "PR" or "PRGAIN".
        summation_method: "interpolation" (trapezoids), "minoring" (lower
            sum) or "majoring" (upper sum).

    Returns:
        The area, summed over the threshold axis.
    """
    recall = divide_no_nan(tp, tp + fn)
    if curve == "ROC":
        x, y = divide_no_nan(fp, fp + tn), recall
    elif curve == "PR":
        x, y = recall, divide_no_nan(tp, tp + fp)
    else:
        scale = divide_no_nan(tp + fn, tn + fp)
        no_tp = tp == 0
        recall_gain = 1.0 - scale * divide_no_nan(fn, tp)
        precision_gain = 1.0 - scale * divide_no_nan(fp, tp)
        recall_gain = torch.where(no_tp, torch.zeros_like(recall_gain), recall_gain)
        precision_gain = torch.where(no_tp, torch.ones_like(precision_gain), precision_gain)
        x, y = recall_gain.clamp(min=0.0), precision_gain
    if summation_method == "interpolation":
        heights = (y[:-1] + y[1:]) / 2.0
    elif summation_method == "minoring":
        heights = torch.minimum(y[:-1], y[1:])
    else:
        heights = torch.maximum(y[:-1], y[1:])
    return ((x[:-1] - x[1:]) * heights).sum(dim=0)


def evenly_spaced_thresholds(num_thresholds: int) -> list:
    """`[0, 1/(n-1), ..., 1]`, computed as Keras does (so the floats match)."""
    inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    return [0.0] + inner + [1.0]


def check_fraction(value, argument: str) -> None:
    """Raises ValueError unless `value` is a number in `[0, 1]`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(
            f"`{argument}` must be a number in [0, 1]. Received: {argument}={value!r}."
        )


def is_int_at_least(value, minimum: int) -> bool:
    """Whether `value` is an int (not a bool) and `>= minimum`."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


CURVES = ("ROC", "PR", "PRGAIN")
SUMMATION_METHODS = ("interpolation", "minoring", "majoring")


def parse_choice(value, choices: tuple, argument: str) -> str:
    """Returns the entry of `choices` that `value` names, ignoring case.

    Raises:
        ValueError: Naming `argument` and the closest valid choice.
    """
    # Keras also takes its enum members, whose `.value` is the string.
    value = getattr(value, "value", value)
    if isinstance(value, str):
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
    close = difflib.get_close_matches(str(value), choices, n=3, cutoff=0.4)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"`{argument}` must be one of {list(choices)}. Received: {argument}={value!r}.{hint}"
    )


class ThresholdedMetric(Metric):
    """Holds a thresholds tensor on the metric's device and feeds the shared update."""

    def _init_thresholds(self, thresholds: list, evenly_spaced: bool, with_epsilon: bool = False):
        self._thresholds_list = list(thresholds)
        self._thresholds_distributed_evenly = evenly_spaced
        self._with_epsilon = with_epsilon
        # A tensor attribute: `Metric.to` moves it along with the state.
        self._threshold_values = torch.tensor(thresholds, dtype=self.dtype)

    def _convert_inputs(self, y_true, y_pred, sample_weight):
        # y_pred first: on a not-yet-pinned metric it decides the device.
        y_pred = self._convert(y_pred, self.dtype)
        y_true = self._convert(y_true, self.dtype)
        if sample_weight is not None:
            sample_weight = self._convert(sample_weight, self.dtype)
        return y_true, y_pred, sample_weight

    def _update(self, variables, y_true, y_pred, sample_weight=None, **options) -> None:
        y_true, y_pred, sample_weight = self._convert_inputs(y_true, y_pred, sample_weight)
        self._update_converted(variables, y_true, y_pred, sample_weight, **options)

    def _update_converted(self, variables, y_true, y_pred, sample_weight=None, **options):
        update_confusion_variables(
            variables,
            y_true,
            y_pred,
            self._threshold_values,
            sample_weight=sample_weight,
            evenly_spaced=self._thresholds_distributed_evenly,
            with_epsilon=self._with_epsilon,
            **options,
        )

    def _squeeze_single(self, values: torch.Tensor) -> torch.Tensor:
        return values[0].clone() if len(self._thresholds_list) == 1 else values.clone()
