"""Correlation metrics: `PearsonCorrelation` and `ConcordanceCorrelation`.

Owns the per-sample correlation functions (computed along `axis` within each
sample, population statistics, as Keras does) and their averaging metric
classes.
"""

from typing import Any

import torch

from .base import DTypeLike, Metric, as_tensor
from .reduction_metrics import MeanMetricWrapper, squeeze_or_expand_to_same_rank

__all__ = [
    "ConcordanceCorrelation",
    "PearsonCorrelation",
    "concordance_correlation",
    "pearson_correlation",
]

EPSILON = 1e-7


def _float_pair(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    y_pred = as_tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    y_true = as_tensor(y_true, y_pred.dtype, y_pred.device)
    return squeeze_or_expand_to_same_rank(y_true, y_pred)


def pearson_correlation(y_true: Any, y_pred: Any, axis: int = -1) -> torch.Tensor:
    """Pearson correlation of `y_true` and `y_pred` along `axis`.

    Example:
    >>> round(pearson_correlation([[1.0, 2.0, 3.0]], [[2.0, 4.0, 7.0]]).item(), 4)
    0.9934
    """
    y_true, y_pred = _float_pair(y_true, y_pred)
    true_centered = y_true - y_true.mean(dim=axis, keepdim=True)
    pred_centered = y_pred - y_pred.mean(dim=axis, keepdim=True)
    true_centered = true_centered / true_centered.std(dim=axis, keepdim=True, correction=0)
    pred_centered = pred_centered / pred_centered.std(dim=axis, keepdim=True, correction=0)
    return torch.mean(true_centered * pred_centered, dim=axis)


def concordance_correlation(y_true: Any, y_pred: Any, axis: int = -1) -> torch.Tensor:
    """Lin's concordance correlation of `y_true` and `y_pred` along `axis`, as Keras computes it.

    Example:
    >>> round(concordance_correlation([[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]]).item(), 4)
    1.0
    """
    y_true, y_pred = _float_pair(y_true, y_pred)
    true_mean = y_true.mean(dim=axis, keepdim=True)
    pred_mean = y_pred.mean(dim=axis, keepdim=True)
    true_var = torch.var(y_true - true_mean, dim=axis, keepdim=True, correction=0)
    pred_var = torch.var(y_pred - pred_mean, dim=axis, keepdim=True, correction=0)
    # Keras centres y_true on the *prediction* mean here; kept for parity.
    covariance = (y_true - pred_mean) * (y_pred - pred_mean)
    norm = true_var + pred_var + torch.square(true_mean - pred_mean)
    return torch.mean(2 * covariance / (norm + EPSILON), dim=axis)


class PearsonCorrelation(MeanMetricWrapper):
    """Mean per-sample Pearson correlation along `axis`.

    Args:
        name: Defaults to "pearson_correlation".
        dtype: Dtype of the state and result. Defaults to `torch.float32`.
        axis: Axis along which each correlation is computed. Defaults to -1.

    Example:
    >>> round(float(PearsonCorrelation()([[1.0, 2.0, 3.0]], [[2.0, 4.0, 7.0]])), 4)
    0.9934
    """

    def __init__(self, name: str = "pearson_correlation", dtype: DTypeLike = None, axis: int = -1):
        super().__init__(fn=pearson_correlation, name=name, dtype=dtype, axis=axis)
        self.axis = axis
        self._direction = "up"

    def get_config(self) -> dict[str, Any]:
        return {**Metric.get_config(self), "axis": self.axis}


class ConcordanceCorrelation(MeanMetricWrapper):
    """Mean per-sample concordance correlation along `axis`.

    Args:
        name: Defaults to "concordance_correlation".
        dtype: Dtype of the state and result. Defaults to `torch.float32`.
        axis: Axis along which each correlation is computed. Defaults to -1.

    Example:
    >>> round(float(ConcordanceCorrelation()([[1.0, 2.0, 3.0]], [[1.0, 2.0, 3.0]])), 4)
    1.0
    """

    def __init__(
        self, name: str = "concordance_correlation", dtype: DTypeLike = None, axis: int = -1
    ):
        super().__init__(fn=concordance_correlation, name=name, dtype=dtype, axis=axis)
        self.axis = axis
        self._direction = "up"

    def get_config(self) -> dict[str, Any]:
        return {**Metric.get_config(self), "axis": self.axis}
