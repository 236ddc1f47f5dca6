"""F-scores: the weighted harmonic mean of precision and recall, per class or averaged.

Owns `FBetaScore` and `F1Score` with Keras 3's arguments, names and numbers:
per-class counts of true positives, false positives, false negatives and
support, accumulated on the device and combined in `result()`. State
handling (devices, reset, configs) belongs to `base.Metric`.
"""

import difflib
from typing import Any, Optional

import torch

from torchfit.metrics.base import Metric

__all__ = ["F1Score", "FBetaScore"]

_AVERAGES = (None, "micro", "macro", "weighted")
# Keras's backend epsilon, which keeps the divisions in `result()` finite.
_EPSILON = 1e-7


def _check_average(average) -> None:
    if average in _AVERAGES:
        return
    names = [a for a in _AVERAGES if a is not None]
    close = difflib.get_close_matches(str(average), names, n=3, cutoff=0.4)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        "`average` must be None, 'micro', 'macro' or 'weighted'."
        f" Received: average={average!r}.{hint}"
    )


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class FBetaScore(Metric):
    """F-beta score: `(1 + b^2) * precision * recall / (b^2 * precision + recall)`.

    Works for multi-class (one-hot) and multi-label inputs of shape
    `(batch_size, num_classes)`.

    Args:
        average: None (one score per class), "micro" (pool all counts),
            "macro" (unweighted mean of the class scores) or "weighted"
            (mean weighted by each class's support). Defaults to None.
        beta: Weight of recall relative to precision; must be > 0.
            Defaults to 1.0.
        threshold: Predictions above it count as positive. With None, the
            largest prediction of each row (ties included) counts as
            positive. Must be in `(0, 1]`. Defaults to None.
        name: Log name. Defaults to "fbeta_score".
        dtype: Dtype of the state and result. Defaults to float32.

    Example:
    >>> m = FBetaScore(beta=2.0, threshold=0.5)
    >>> y_true = [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    >>> y_pred = [[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]]
    >>> [round(v, 4) for v in m(y_true, y_pred).tolist()]
    [0.3846, 0.9091, 0.8333]
    """

    def __init__(
        self,
        average: Optional[str] = None,
        beta: float = 1.0,
        threshold: Optional[float] = None,
        name: str = "fbeta_score",
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype)
        self._direction = "up"
        _check_average(average)
        if not _is_number(beta) or beta <= 0:
            raise ValueError(f"`beta` must be a float > 0. Received: beta={beta!r}.")
        if threshold is not None and (not _is_number(threshold) or not 0 < threshold <= 1):
            raise ValueError(
                f"`threshold` must be a float in (0, 1] or None. Received: threshold={threshold!r}."
            )
        self.average = average
        self.beta = float(beta)
        self.threshold = None if threshold is None else float(threshold)
        self.axis = None if average == "micro" else 0
        self._built = False

    def _build(self, y_true_shape, y_pred_shape) -> None:
        if len(y_pred_shape) != 2 or len(y_true_shape) != 2:
            raise ValueError(
                f"{type(self).__name__} expects 2-D inputs (batch_size, num_classes)."
                f" Received: y_true.shape={tuple(y_true_shape)},"
                f" y_pred.shape={tuple(y_pred_shape)}."
            )
        size = () if self.average == "micro" else (y_pred_shape[-1],)
        self.true_positives = self.add_variable(shape=size, name="true_positives")
        self.false_positives = self.add_variable(shape=size, name="false_positives")
        self.false_negatives = self.add_variable(shape=size, name="false_negatives")
        self.intermediate_weights = self.add_variable(shape=size, name="intermediate_weights")
        self._built = True

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Accumulates per-class true positives, false positives, false negatives and support.

        Args:
            y_true: Labels of shape `(batch_size, num_classes)`.
            y_pred: Scores of the same shape.
            sample_weight: Optional per-sample weights of shape
                `(batch_size,)`, or a scalar. Defaults to 1.
        """
        y_pred = self._convert(y_pred, self.dtype)
        y_true = self._convert(y_true, self.dtype)
        if not self._built:
            self._build(y_true.shape, y_pred.shape)
        if y_true.shape != y_pred.shape:
            raise ValueError(
                "`y_true` and `y_pred` must have the same shape."
                f" Received: y_true.shape={tuple(y_true.shape)},"
                f" y_pred.shape={tuple(y_pred.shape)}."
            )
        if self.threshold is None:
            row_max = y_pred.amax(dim=-1, keepdim=True)
            predicted = (y_pred >= row_max) & (y_pred.abs() > 1e-9)
        else:
            predicted = y_pred > self.threshold
        predicted = predicted.to(self.dtype)
        # Rows: tp, fp, fn, support; one weighted reduction for all four.
        cells = torch.stack(
            [predicted * y_true, predicted * (1 - y_true), (1 - predicted) * y_true, y_true]
        )
        if sample_weight is not None:
            sample_weight = self._convert(sample_weight, self.dtype)
            if sample_weight.ndim == 1:
                sample_weight = sample_weight.unsqueeze(1)
            cells = cells * sample_weight
        sums = cells.sum(dim=1) if self.axis == 0 else cells.sum(dim=(1, 2))
        self.true_positives.add_(sums[0])
        self.false_positives.add_(sums[1])
        self.false_negatives.add_(sums[2])
        self.intermediate_weights.add_(sums[3])

    def result(self) -> torch.Tensor:
        """Per-class scores (shape `(num_classes,)`) when `average` is None, else a 0-d tensor."""
        if not self._built:
            return torch.zeros((), dtype=self.dtype, device=self.device)
        tp = self.true_positives
        precision = tp / (tp + self.false_positives + _EPSILON)
        recall = tp / (tp + self.false_negatives + _EPSILON)
        beta_squared = self.beta**2
        harmonic = precision * recall / (beta_squared * precision + recall + _EPSILON)
        score = harmonic * (1 + beta_squared)
        if self.average == "weighted":
            support = self.intermediate_weights
            return (score * (support / (support.sum() + _EPSILON))).sum()
        if self.average is not None:
            return score.mean()
        return score

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "average": self.average,
            "beta": self.beta,
            "threshold": self.threshold,
        }


class F1Score(FBetaScore):
    """F1 score: `2 * precision * recall / (precision + recall)`.

    Args:
        average: None, "micro", "macro" or "weighted", as in `FBetaScore`.
            Defaults to None (one score per class).
        threshold: As in `FBetaScore`. Defaults to None (row-wise argmax).
        name: Log name. Defaults to "f1_score".
        dtype: Dtype of the state and result. Defaults to float32.

    Example:
    >>> m = F1Score(threshold=0.5)
    >>> y_true = [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    >>> y_pred = [[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]]
    >>> [round(v, 4) for v in m(y_true, y_pred).tolist()]
    [0.5, 0.8, 0.6667]
    """

    def __init__(
        self,
        average: Optional[str] = None,
        threshold: Optional[float] = None,
        name: str = "f1_score",
        dtype=None,
    ):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["beta"]
        return config
