"""Hinge metrics: `Hinge`, `SquaredHinge` and `CategoricalHinge`.

Owns the per-sample hinge functions as metrics compute them (0/1 labels are
mapped to -1/1 when every label is 0 or 1, decided on the device) and their
metric classes. The differentiable losses belong to `torchfit.losses`.
"""

from typing import Any

import torch

from .base import DTypeLike, Metric, as_tensor
from .reduction_metrics import MeanMetricWrapper, squeeze_or_expand_to_same_rank

__all__ = [
    "CategoricalHinge",
    "Hinge",
    "SquaredHinge",
    "categorical_hinge",
    "hinge",
    "squared_hinge",
]


def _hinge_inputs(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    y_pred = as_tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    y_true = as_tensor(y_true, y_pred.dtype, y_pred.device)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    # Binary 0/1 labels become -1/1; any other labels are used as given. The
    # choice is a tensor, so it costs no host sync.
    is_binary = ((y_true == 0) | (y_true == 1)).all()
    return torch.where(is_binary, 2.0 * y_true - 1.0, y_true), y_pred


def hinge(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`mean(max(1 - y_true * y_pred, 0))` over the last axis; labels -1/1 or 0/1.

    Example:
    >>> hinge([[1.0, -1.0]], [[0.5, -2.0]]).tolist()
    [0.25]
    """
    y_true, y_pred = _hinge_inputs(y_true, y_pred)
    return torch.clamp(1.0 - y_true * y_pred, min=0.0).mean(dim=-1)


def squared_hinge(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`mean(max(1 - y_true * y_pred, 0) ** 2)` over the last axis.

    Example:
    >>> squared_hinge([[1.0, -1.0]], [[0.5, -2.0]]).tolist()
    [0.125]
    """
    y_true, y_pred = _hinge_inputs(y_true, y_pred)
    return torch.square(torch.clamp(1.0 - y_true * y_pred, min=0.0)).mean(dim=-1)


def categorical_hinge(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)` for one-hot labels.

    Example:
    >>> round(categorical_hinge([[0.0, 1.0]], [[0.3, 0.6]]).item(), 4)
    0.7
    """
    y_pred = as_tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    y_true = as_tensor(y_true, y_pred.dtype, y_pred.device)
    positive = torch.sum(y_true * y_pred, dim=-1)
    negative = torch.amax((1.0 - y_true) * y_pred, dim=-1)
    return torch.clamp(negative - positive + 1.0, min=0.0)


class Hinge(MeanMetricWrapper):
    """Mean hinge loss between labels and predictions.

    Example:
    >>> round(float(Hinge()([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])), 4)
    1.3
    """

    def __init__(self, name: str = "hinge", dtype: DTypeLike = None):
        super().__init__(fn=hinge, name=name, dtype=dtype)
        self._direction = "down"

    def get_config(self) -> dict[str, Any]:
        return Metric.get_config(self)


class SquaredHinge(MeanMetricWrapper):
    """Mean squared hinge loss between labels and predictions.

    Example:
    >>> round(float(SquaredHinge()([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])), 2)
    1.86
    """

    def __init__(self, name: str = "squared_hinge", dtype: DTypeLike = None):
        super().__init__(fn=squared_hinge, name=name, dtype=dtype)
        self._direction = "down"

    def get_config(self) -> dict[str, Any]:
        return Metric.get_config(self)


class CategoricalHinge(MeanMetricWrapper):
    """Mean categorical hinge loss between one-hot labels and predictions.

    Example:
    >>> round(float(CategoricalHinge()([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])), 2)
    1.4
    """

    def __init__(self, name: str = "categorical_hinge", dtype: DTypeLike = None):
        super().__init__(fn=categorical_hinge, name=name, dtype=dtype)
        self._direction = "down"

    def get_config(self) -> dict[str, Any]:
        return Metric.get_config(self)
