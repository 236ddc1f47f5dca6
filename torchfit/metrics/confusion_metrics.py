"""Metrics read off a thresholded confusion matrix: counts, precision, recall, AUC.

Owns the Keras 3 confusion-matrix metrics: `TruePositives`, `FalsePositives`,
`TrueNegatives`, `FalseNegatives`, `Precision`, `Recall`, the four
"X at fixed Y" metrics and `AUC`, with Keras's arguments, names and numbers.
The vectorised counting they share lives in `_confusion_utils.py`; state
handling (devices, reset, configs) belongs to `base.Metric`.
"""

from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np
import torch

from torchfit.metrics import _confusion_utils as utils

__all__ = [
    "AUC",
    "FalseNegatives",
    "FalsePositives",
    "Precision",
    "PrecisionAtRecall",
    "Recall",
    "RecallAtPrecision",
    "SensitivityAtSpecificity",
    "SpecificityAtSensitivity",
    "TrueNegatives",
    "TruePositives",
]

Thresholds = Union[None, float, Sequence[float]]


class _ConfusionMatrixConditionCount(utils.ThresholdedMetric):
    """Accumulates one cell of the confusion matrix per threshold."""

    _condition = ""

    def __init__(self, thresholds: Thresholds = None, name: Optional[str] = None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.thresholds = utils.parse_thresholds(thresholds, default=0.5)
        self._init_thresholds(self.thresholds, utils.is_evenly_spaced(self.thresholds))
        self.accumulator = self.add_variable(shape=(len(self.thresholds),), name="accumulator")

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Adds this batch's weighted count at each threshold.

        Args:
            y_true: Labels; nonzero means positive.
            y_pred: Predictions, usually in `[0, 1]`, same shape as `y_true`.
            sample_weight: Optional weights broadcastable to `y_true`.
                Defaults to 1.
        """
        self._update({self._condition: self.accumulator}, y_true, y_pred, sample_weight)

    def result(self) -> torch.Tensor:
        """The count: a 0-d tensor for one threshold, else one per threshold."""
        return self._squeeze_single(self.accumulator)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "thresholds": self.init_thresholds}


class TruePositives(_ConfusionMatrixConditionCount):
    """Weighted count of positive labels predicted above the threshold.

    Args:
        thresholds: A float or list of floats in `[0, 1]`; a prediction above
            a threshold counts as positive. One result per threshold.
            Defaults to 0.5.
        name: Log name. Defaults to "true_positives".
        dtype: Dtype of the state. Defaults to float32.

    Example:
    >>> m = TruePositives()
    >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    >>> float(m.result())
    2.0
    """

    _condition = "tp"


class FalsePositives(_ConfusionMatrixConditionCount):
    """Weighted count of negative labels predicted above the threshold.

    Args: as `TruePositives`; name defaults to "false_positives".

    Example:
    >>> float(FalsePositives()([0, 1, 0, 0], [0, 0, 1, 1]))
    2.0
    """

    _condition = "fp"


class TrueNegatives(_ConfusionMatrixConditionCount):
    """Weighted count of negative labels predicted at or below the threshold.

    Args: as `TruePositives`; name defaults to "true_negatives".

    Example:
    >>> float(TrueNegatives()([0, 1, 0, 0], [1, 1, 0, 0]))
    2.0
    """

    _condition = "tn"


class FalseNegatives(_ConfusionMatrixConditionCount):
    """Weighted count of positive labels predicted at or below the threshold.

    Args: as `TruePositives`; name defaults to "false_negatives".

    Example:
    >>> float(FalseNegatives()([0, 1, 1, 1], [0, 1, 0, 0]))
    2.0
    """

    _condition = "fn"


class _PrecisionRecallBase(utils.ThresholdedMetric):
    """Shared constructor of `Precision` and `Recall`: tp plus one error cell."""

    _error = ""
    _error_name = ""

    def __init__(
        self,
        thresholds: Thresholds = None,
        top_k: Optional[int] = None,
        class_id: Optional[int] = None,
        name: Optional[str] = None,
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype)
        self._direction = "up"
        if top_k is not None and not utils.is_int_at_least(top_k, 1):
            raise ValueError(f"`top_k` must be a positive int or None. Received: top_k={top_k!r}.")
        if class_id is not None and (isinstance(class_id, bool) or not isinstance(class_id, int)):
            raise TypeError(
                "`class_id` must be an int or None."
                f" Received: class_id of type {type(class_id).__name__}."
            )
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = class_id
        default = 0.5 if top_k is None else utils.NEG_INF
        self.thresholds = utils.parse_thresholds(thresholds, default=default)
        self._init_thresholds(self.thresholds, utils.is_evenly_spaced(self.thresholds))
        size = (len(self.thresholds),)
        self.true_positives = self.add_variable(shape=size, name="true_positives")
        setattr(self, self._error_name, self.add_variable(shape=size, name=self._error_name))

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Accumulates true positives and the metric's error cell.

        Args:
            y_true: Labels; nonzero means positive.
            y_pred: Predictions, same shape as `y_true` (e.g. `(N, C)` with
                `top_k`/`class_id`).
            sample_weight: Optional weights broadcastable to `y_true`.
                Defaults to 1.
        """
        variables = {"tp": self.true_positives, self._error: getattr(self, self._error_name)}
        self._update(
            variables, y_true, y_pred, sample_weight, top_k=self.top_k, class_id=self.class_id
        )

    def result(self) -> torch.Tensor:
        """A 0-d tensor for one threshold, else one value per threshold."""
        errors = getattr(self, self._error_name)
        return self._squeeze_single(
            utils.divide_no_nan(self.true_positives, self.true_positives + errors)
        )

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "thresholds": self.init_thresholds,
            "top_k": self.top_k,
            "class_id": self.class_id,
        }


class Precision(_PrecisionRecallBase):
    """Fraction of predicted positives that are positive: `tp / (tp + fp)`.

    Args:
        thresholds: A float or list of floats in `[0, 1]`; a prediction above
            a threshold counts as positive. Defaults to 0.5, or to "any of the
            top k" when `top_k` is set.
        top_k: Count only the `k` highest predictions of each row as positive.
            Defaults to None.
        class_id: Look only at this column of `(N, C)` inputs. Defaults to None.
        name: Log name. Defaults to "precision".
        dtype: Dtype of the state. Defaults to float32.

    Example:
    >>> m = Precision()
    >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    >>> round(float(m.result()), 4)
    0.6667
    """

    _error = "fp"
    _error_name = "false_positives"


class Recall(_PrecisionRecallBase):
    """Fraction of positives predicted positive: `tp / (tp + fn)`.

    Args: as `Precision`; name defaults to "recall".

    Example:
    >>> m = Recall()
    >>> m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    >>> round(float(m.result()), 4)
    0.6667
    """

    _error = "fn"
    _error_name = "false_negatives"


class _SensitivitySpecificityBase(utils.ThresholdedMetric):
    """Full confusion matrix over `num_thresholds` evenly spaced thresholds.

    Subclasses maximise one rate subject to another being at least `value`.
    """

    _value_name = ""

    def __init__(
        self, value: float, num_thresholds: int = 200, class_id=None, name=None, dtype=None
    ):
        utils.check_fraction(value, self._value_name)
        if not utils.is_int_at_least(num_thresholds, 1):
            raise ValueError(
                f"`num_thresholds` must be an int > 0. Received: num_thresholds={num_thresholds!r}."
            )
        super().__init__(name=name, dtype=dtype)
        self._direction = "up"
        self.value = value
        setattr(self, self._value_name, value)
        self.num_thresholds = num_thresholds
        self.class_id = class_id
        if num_thresholds == 1:
            self.thresholds = [0.5]
        else:
            self.thresholds = utils.evenly_spaced_thresholds(num_thresholds)
        self._init_thresholds(self.thresholds, evenly_spaced=num_thresholds > 1)
        size = (len(self.thresholds),)
        self.true_positives = self.add_variable(shape=size, name="true_positives")
        self.false_positives = self.add_variable(shape=size, name="false_positives")
        self.true_negatives = self.add_variable(shape=size, name="true_negatives")
        self.false_negatives = self.add_variable(shape=size, name="false_negatives")

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Accumulates the four confusion cells at every threshold.

        Args:
            y_true: Labels; nonzero means positive.
            y_pred: Predictions in `[0, 1]`, same shape as `y_true`.
            sample_weight: Optional weights broadcastable to `y_true`.
                Defaults to 1.
        """
        variables = {
            "tp": self.true_positives,
            "fp": self.false_positives,
            "tn": self.true_negatives,
            "fn": self.false_negatives,
        }
        self._update(variables, y_true, y_pred, sample_weight, class_id=self.class_id)

    def _rates(self) -> dict[str, torch.Tensor]:
        tp, fp = self.true_positives, self.false_positives
        tn, fn = self.true_negatives, self.false_negatives
        return {
            "sensitivity": utils.divide_no_nan(tp, tp + fn),
            "specificity": utils.divide_no_nan(tn, tn + fp),
            "precision": utils.divide_no_nan(tp, tp + fp),
        }

    def _max_where_at_least(self, constrained: torch.Tensor, dependent: torch.Tensor):
        feasible = constrained >= self.value
        best = torch.where(feasible, dependent, torch.zeros_like(dependent)).max()
        return best.clamp(min=0)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "class_id": self.class_id,
            "num_thresholds": self.num_thresholds,
            self._value_name: self.value,
        }


class SensitivityAtSpecificity(_SensitivitySpecificityBase):
    """Best sensitivity (recall) over thresholds whose specificity is >= `specificity`.

    Args:
        specificity: Minimum specificity, in `[0, 1]`.
        num_thresholds: Number of evenly spaced thresholds in `[0, 1]` to try.
            Defaults to 200.
        class_id: Look only at this column of `(N, C)` inputs. Defaults to None.
        name: Log name. Defaults to "sensitivity_at_specificity".
        dtype: Dtype of the state. Defaults to float32.

    Example:
    >>> m = SensitivityAtSpecificity(0.5)
    >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
    >>> float(m.result())
    0.5
    """

    _value_name = "specificity"

    def __init__(
        self, specificity: float, num_thresholds: int = 200, class_id=None, name=None, dtype=None
    ):
        super().__init__(specificity, num_thresholds, class_id, name, dtype)

    def result(self) -> torch.Tensor:
        rates = self._rates()
        return self._max_where_at_least(rates["specificity"], rates["sensitivity"])


class SpecificityAtSensitivity(_SensitivitySpecificityBase):
    """Best specificity over thresholds whose sensitivity is >= `sensitivity`.

    Args: as `SensitivityAtSpecificity`, with `sensitivity` the minimum
        sensitivity; name defaults to "specificity_at_sensitivity".

    Example:
    >>> m = SpecificityAtSensitivity(0.5)
    >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
    >>> round(float(m.result()), 4)
    0.6667
    """

    _value_name = "sensitivity"

    def __init__(
        self, sensitivity: float, num_thresholds: int = 200, class_id=None, name=None, dtype=None
    ):
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)

    def result(self) -> torch.Tensor:
        rates = self._rates()
        return self._max_where_at_least(rates["sensitivity"], rates["specificity"])


class PrecisionAtRecall(_SensitivitySpecificityBase):
    """Best precision over thresholds whose recall is >= `recall`.

    Args: as `SensitivityAtSpecificity`, with `recall` the minimum recall;
        name defaults to "precision_at_recall".

    Example:
    >>> m = PrecisionAtRecall(0.5)
    >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
    >>> float(m.result())
    0.5
    """

    _value_name = "recall"

    def __init__(
        self, recall: float, num_thresholds: int = 200, class_id=None, name=None, dtype=None
    ):
        super().__init__(recall, num_thresholds, class_id, name, dtype)

    def result(self) -> torch.Tensor:
        rates = self._rates()
        return self._max_where_at_least(rates["sensitivity"], rates["precision"])


class RecallAtPrecision(_SensitivitySpecificityBase):
    """Best recall over thresholds whose precision is >= `precision`.

    Args: as `SensitivityAtSpecificity`, with `precision` the minimum
        precision; name defaults to "recall_at_precision".

    Example:
    >>> m = RecallAtPrecision(0.8)
    >>> m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    >>> float(m.result())
    0.5
    """

    _value_name = "precision"

    def __init__(
        self, precision: float, num_thresholds: int = 200, class_id=None, name=None, dtype=None
    ):
        super().__init__(precision, num_thresholds, class_id, name, dtype)

    def result(self) -> torch.Tensor:
        rates = self._rates()
        return self._max_where_at_least(rates["precision"], rates["sensitivity"])


class AUC(utils.ThresholdedMetric):
    """Approximate area under the ROC or precision-recall curve.

    The confusion matrix is accumulated at `num_thresholds` thresholds and the
    curve's area is a Riemann sum over them (or, for PR with
    "interpolation", Davis & Goadrich's interpolation).

    Args:
        num_thresholds: Number of thresholds, evenly spaced in `[0, 1]`, the
            outer two widened by 1e-7. Must be > 1. Defaults to 200.
        curve: "ROC" or "PR" ("PRGAIN" also works). Defaults to "ROC".
        summation_method: "interpolation", "minoring" or "majoring".
            Defaults to "interpolation".
        name: Log name. Defaults to "auc".
        dtype: Dtype of the state. Defaults to float32.
        thresholds: Explicit inner thresholds in `[0, 1]`; overrides
            `num_thresholds` (which becomes `len(thresholds) + 2`).
            Defaults to None.
        multi_label: Treat each column of `(N, L)` data as its own label and
            average the per-label areas; otherwise all values are pooled.
            Defaults to False.
        num_labels: Number of labels when `multi_label`, to create the state
            before the first batch. Defaults to None (read from the batch).
        label_weights: Per-label weights: for `multi_label`, the weights of
            the per-label average; otherwise applied to the counts.
            Defaults to None.
        from_logits: Apply a sigmoid to `y_pred` first. Defaults to False.

    Example:
    >>> m = AUC(num_thresholds=3)
    >>> m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    >>> float(m.result())
    0.75
    """

    def __init__(
        self,
        num_thresholds: int = 200,
        curve: str = "ROC",
        summation_method: str = "interpolation",
        name: Optional[str] = None,
        dtype=None,
        thresholds: Optional[Sequence[float]] = None,
        multi_label: bool = False,
        num_labels: Optional[int] = None,
        label_weights=None,
        from_logits: bool = False,
    ):
        super().__init__(name=name, dtype=dtype)
        self._direction = "up"
        self.curve = utils.parse_choice(curve, utils.CURVES, "curve")
        self.summation_method = utils.parse_choice(
            summation_method, utils.SUMMATION_METHODS, "summation_method"
        )
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(float(t) for t in np.asarray(thresholds, dtype=np.float64).reshape(-1))
            self.num_thresholds = len(inner) + 2
            evenly = utils.is_evenly_spaced(np.array([0.0] + inner + [1.0]))
        else:
            if not utils.is_int_at_least(num_thresholds, 2):
                raise ValueError(
                    "`num_thresholds` must be an int > 1."
                    f" Received: num_thresholds={num_thresholds!r}."
                )
            self.num_thresholds = num_thresholds
            inner = utils.evenly_spaced_thresholds(num_thresholds)[1:-1]
            evenly = True
        widened = [0.0 - utils.EPSILON] + inner + [1.0 + utils.EPSILON]
        self._init_thresholds(widened, evenly, with_epsilon=True)

        self.multi_label = multi_label
        self.num_labels = num_labels
        self.label_weights = None
        if label_weights is not None:
            self.label_weights = torch.as_tensor(np.asarray(label_weights), dtype=self.dtype)
            if self.label_weights.ndim != 1:
                raise ValueError(
                    "`label_weights` must be 1-D, one weight per label."
                    f" Received: label_weights of shape {tuple(self.label_weights.shape)}."
                )
        self._from_logits = from_logits
        self._built = False
        if multi_label:
            if num_labels:
                self._build((None, num_labels))
        elif num_labels:
            raise ValueError(
                "`num_labels` is only used with `multi_label=True`."
                f" Received: num_labels={num_labels!r}, multi_label=False."
            )
        else:
            self._build(None)

    @property
    def thresholds(self) -> list:
        """The thresholds, ascending, including the two widened outer ones."""
        return list(self._thresholds_list)

    def _build(self, shape) -> None:
        if self.multi_label:
            if len(shape) != 2:
                raise ValueError(
                    "`y_pred` must have rank 2 (num_samples, num_labels) when"
                    f" `multi_label=True`. Received: y_pred.shape={tuple(shape)}."
                )
            self._num_labels = shape[1]
            size = (self.num_thresholds, self._num_labels)
        else:
            size = (self.num_thresholds,)
        self.true_positives = self.add_variable(shape=size, name="true_positives")
        self.false_positives = self.add_variable(shape=size, name="false_positives")
        self.true_negatives = self.add_variable(shape=size, name="true_negatives")
        self.false_negatives = self.add_variable(shape=size, name="false_negatives")
        self._built = True

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Accumulates the confusion matrix at every threshold.

        Args:
            y_true: Labels; nonzero means positive.
            y_pred: Probabilities in `[0, 1]` (logits with `from_logits`),
                same shape as `y_true`; `(N, L)` when `multi_label`.
            sample_weight: Optional weights broadcastable to `y_true`.
                Defaults to 1.
        """
        y_true, y_pred, sample_weight = self._convert_inputs(y_true, y_pred, sample_weight)
        if not self._built:
            self._build(tuple(y_pred.shape))
        if self._from_logits:
            y_pred = torch.sigmoid(y_pred)
        variables = {
            "tp": self.true_positives,
            "fp": self.false_positives,
            "tn": self.true_negatives,
            "fn": self.false_negatives,
        }
        self._update_converted(
            variables,
            y_true,
            y_pred,
            sample_weight,
            multi_label=self.multi_label,
            label_weights=None if self.multi_label else self.label_weights,
        )

    def result(self) -> torch.Tensor:
        """The area: a 0-d tensor (the weighted mean over labels when `multi_label`)."""
        if not self._built:
            return torch.zeros((), dtype=self.dtype, device=self.device)
        tp, fp = self.true_positives, self.false_positives
        tn, fn = self.true_negatives, self.false_negatives
        if self.curve == "PR" and self.summation_method == "interpolation":
            area = utils.interpolated_pr_auc(tp, fp, fn)
        else:
            area = utils.riemann_auc(tp, fp, tn, fn, self.curve, self.summation_method)
        if not self.multi_label:
            return area
        if self.label_weights is None:
            return area.mean()
        weights = self.label_weights
        return utils.divide_no_nan((area * weights).sum(), weights.sum())

    def get_config(self) -> dict[str, Any]:
        label_weights = self.label_weights
        config = {
            **super().get_config(),
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "multi_label": self.multi_label,
            "num_labels": self.num_labels,
            "label_weights": None if label_weights is None else label_weights.cpu().tolist(),
            "from_logits": self._from_logits,
        }
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config
