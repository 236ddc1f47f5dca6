"""Regression metrics: errors, cosine similarity, log-cosh and R².

Owns the per-sample regression functions as metrics compute them (the same
formulas as Keras's losses of those names: epsilon 1e-7, trailing-axis mean)
and their metric classes, plus `RootMeanSquaredError` and `R2Score`, which
keep their own state. The losses package owns differentiable, reduced losses.
"""

import math
from typing import Any, Optional

import torch

from .base import DTypeLike, Metric, as_tensor
from .reduction_metrics import Mean, MeanMetricWrapper, squeeze_or_expand_to_same_rank

__all__ = [
    "CosineSimilarity",
    "LogCoshError",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "R2Score",
    "RootMeanSquaredError",
    "cosine_similarity",
    "huber",
    "log_cosh",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
    "mean_squared_logarithmic_error",
]

EPSILON = 1e-7


def _prepare(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Converts to float tensors of y_pred's dtype with matched ranks."""
    y_pred = as_tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    y_true = as_tensor(y_true, y_pred.dtype, y_pred.device)
    return squeeze_or_expand_to_same_rank(y_true, y_pred)


def mean_squared_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Mean of `(y_true - y_pred) ** 2` over the last axis.

    Example:
    >>> mean_squared_error([[0.0, 1.0]], [[1.0, 1.0]]).tolist()
    [0.5]
    """
    y_true, y_pred = _prepare(y_true, y_pred)
    return torch.square(y_true - y_pred).mean(dim=-1)


def mean_absolute_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Mean of `|y_true - y_pred|` over the last axis.

    Example:
    >>> mean_absolute_error([[0.0, 1.0]], [[1.0, 1.0]]).tolist()
    [0.5]
    """
    y_true, y_pred = _prepare(y_true, y_pred)
    return torch.abs(y_true - y_pred).mean(dim=-1)


def mean_absolute_percentage_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`100 * mean(|(y_true - y_pred) / max(|y_true|, 1e-7)|)` over the last axis.

    Example:
    >>> mean_absolute_percentage_error([[2.0, 4.0]], [[1.0, 4.0]]).tolist()
    [25.0]
    """
    y_true, y_pred = _prepare(y_true, y_pred)
    diff = torch.abs((y_true - y_pred) / torch.clamp(torch.abs(y_true), min=EPSILON))
    return 100.0 * diff.mean(dim=-1)


def mean_squared_logarithmic_error(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Mean of `(log(max(y_pred, 1e-7) + 1) - log(max(y_true, 1e-7) + 1)) ** 2`.

    Example:
    >>> round(mean_squared_logarithmic_error([[0.0]], [[math.e - 1]]).item(), 4)
    1.0
    """
    y_true, y_pred = _prepare(y_true, y_pred)
    first_log = torch.log(torch.clamp(y_pred, min=EPSILON) + 1.0)
    second_log = torch.log(torch.clamp(y_true, min=EPSILON) + 1.0)
    return torch.square(first_log - second_log).mean(dim=-1)


def cosine_similarity(y_true: Any, y_pred: Any, axis: int = -1) -> torch.Tensor:
    """Cosine of the angle between `y_true` and `y_pred` along `axis`.

    Each side is L2-normalized as `x * min(rsqrt(sum(x**2)), 1e7)`, so zero
    vectors give 0 rather than NaN.

    Example:
    >>> cosine_similarity([[0.0, 1.0]], [[1.0, 1.0]]).tolist()  # doctest: +ELLIPSIS
    [0.7071...]
    """
    y_true, y_pred = _prepare(y_true, y_pred)
    return torch.sum(_l2_normalize(y_true, axis) * _l2_normalize(y_pred, axis), dim=axis)


def _l2_normalize(x: torch.Tensor, axis: int) -> torch.Tensor:
    if x.ndim == 0:
        x = x.unsqueeze(0)
    square_sum = torch.sum(torch.square(x), dim=axis, keepdim=True)
    return x * torch.clamp(torch.rsqrt(square_sum), max=1.0 / EPSILON)


def log_cosh(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Mean of `log(cosh(y_pred - y_true))` over the last axis, computed stably.

    Example:
    >>> round(log_cosh([[0.0]], [[1.0]]).item(), 4)
    0.4338
    """
    y_true, y_pred = _prepare(y_true, y_pred)
    x = y_pred - y_true
    return (x + torch.nn.functional.softplus(-2.0 * x) - math.log(2.0)).mean(dim=-1)


def huber(y_true: Any, y_pred: Any, delta: float = 1.0) -> torch.Tensor:
    """Mean over the last axis of `0.5 e^2` where `|e| <= delta`, else `delta |e| - 0.5 delta^2`.

    `e = y_pred - y_true`. Keras 3 exports this as `keras.metrics.huber` (the
    loss function) without a metric class or string id, so wrap it to track
    it: `MeanMetricWrapper(huber, delta=2.0)`.

    Example:
    >>> values = huber([[0.0, 1.0], [0.0, 0.0]], [[0.6, 0.4], [0.4, 3.0]])
    >>> [round(v, 4) for v in values.tolist()]
    [0.18, 1.29]
    """
    y_true, y_pred = _prepare(y_true, y_pred)
    error = y_pred - y_true
    abs_error = torch.abs(error)
    delta = torch.as_tensor(delta, dtype=y_pred.dtype, device=y_pred.device)
    quadratic = 0.5 * torch.square(error)
    linear = delta * abs_error - 0.5 * torch.square(delta)
    return torch.where(abs_error <= delta, quadratic, linear).mean(dim=-1)


class _ErrorMetric(MeanMetricWrapper):
    """A `MeanMetricWrapper` of a fixed function whose config is name and dtype."""

    def get_config(self) -> dict[str, Any]:
        return Metric.get_config(self)


class MeanSquaredError(_ErrorMetric):
    """Mean of the squared error.

    Example:
    >>> float(MeanSquaredError()([[0, 1], [0, 0]], [[1, 1], [0, 0]]))
    0.25
    """

    def __init__(self, name: str = "mean_squared_error", dtype: DTypeLike = None):
        super().__init__(fn=mean_squared_error, name=name, dtype=dtype)
        self._direction = "down"


class MeanAbsoluteError(_ErrorMetric):
    """Mean of the absolute error.

    Example:
    >>> float(MeanAbsoluteError()([[0, 1], [0, 0]], [[1, 1], [0, 0]]))
    0.25
    """

    def __init__(self, name: str = "mean_absolute_error", dtype: DTypeLike = None):
        super().__init__(fn=mean_absolute_error, name=name, dtype=dtype)
        self._direction = "down"


class MeanAbsolutePercentageError(_ErrorMetric):
    """Mean of the absolute percentage error.

    Example:
    >>> float(MeanAbsolutePercentageError()([[2.0, 4.0]], [[1.0, 4.0]]))
    25.0
    """

    def __init__(self, name: str = "mean_absolute_percentage_error", dtype: DTypeLike = None):
        super().__init__(fn=mean_absolute_percentage_error, name=name, dtype=dtype)
        self._direction = "down"


class MeanSquaredLogarithmicError(_ErrorMetric):
    """Mean of the squared logarithmic error.

    Example:
    >>> float(MeanSquaredLogarithmicError()([[0.0, 0.0]], [[0.0, 0.0]]))
    0.0
    """

    def __init__(self, name: str = "mean_squared_logarithmic_error", dtype: DTypeLike = None):
        super().__init__(fn=mean_squared_logarithmic_error, name=name, dtype=dtype)
        self._direction = "down"


class LogCoshError(_ErrorMetric):
    """Mean of the log-cosh error. Its name is "logcosh", as in Keras.

    Example:
    >>> float(LogCoshError()([[0.0, 0.0]], [[0.0, 0.0]]))
    0.0
    """

    def __init__(self, name: str = "logcosh", dtype: DTypeLike = None):
        super().__init__(fn=log_cosh, name=name, dtype=dtype)
        self._direction = "down"


class CosineSimilarity(MeanMetricWrapper):
    """Mean cosine similarity between labels and predictions.

    Args:
        name: Defaults to "cosine_similarity".
        dtype: Dtype of the state and result. Defaults to `torch.float32`.
        axis: The axis along which the similarity is computed. Defaults to -1.

    Example:
    >>> round(float(CosineSimilarity()([[0.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [1.0, 1.0]])), 4)
    0.5
    """

    def __init__(self, name: str = "cosine_similarity", dtype: DTypeLike = None, axis: int = -1):
        super().__init__(fn=cosine_similarity, name=name, dtype=dtype, axis=axis)
        self.axis = axis
        self._direction = "up"

    def get_config(self) -> dict[str, Any]:
        return {**Metric.get_config(self), "axis": self.axis}


class RootMeanSquaredError(Mean):
    """Square root of the (weighted) mean squared error.

    Example:
    >>> float(RootMeanSquaredError()([[0, 1], [0, 0]], [[1, 1], [0, 0]]))
    0.5
    """

    def __init__(self, name: str = "root_mean_squared_error", dtype: DTypeLike = None):
        super().__init__(name=name, dtype=dtype)
        self._direction = "down"

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Adds the batch's squared errors, weighted like `Mean.update_state`."""
        y_true = self._convert(y_true, self._dtype)
        y_pred = self._convert(y_pred, self._dtype)
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        if sample_weight is not None:
            sample_weight = self._convert(sample_weight, self._dtype)
        self._accumulate(torch.square(y_pred - y_true), sample_weight)

    def result(self) -> torch.Tensor:
        return torch.sqrt(super().result())


class R2Score(Metric):
    """Coefficient of determination, optionally adjusted for regressors.

    Inputs are 2-D, `(batch_size, output_dim)`; state is per output column and
    is created on the first update.

    Args:
        class_aggregation: How per-column scores combine: "uniform_average",
            "variance_weighted_average", or None (the vector of scores).
            Defaults to "uniform_average".
        num_regressors: Number of independent regressors; above 0 gives the
            adjusted R², `1 - (1 - R²) * (n - 1) / (n - num_regressors - 1)`.
            As in Keras, `n` counts every entry seen (rows x outputs,
            zero-weighted ones included), and the plain score is returned
            while `n - 1 <= num_regressors`. Defaults to 0.
        name: Defaults to "r2_score".
        dtype: Dtype of the state and result. Defaults to `torch.float32`.

    Example:
    >>> m = R2Score()
    >>> round(float(m([[1.0], [4.0], [3.0]], [[2.0], [4.0], [4.0]])), 4)
    0.5714
    """

    _AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")

    def __init__(
        self,
        class_aggregation: Optional[str] = "uniform_average",
        num_regressors: int = 0,
        name: str = "r2_score",
        dtype: DTypeLike = None,
    ):
        super().__init__(name=name, dtype=dtype)
        self._direction = "up"
        if class_aggregation not in self._AGGREGATIONS:
            raise ValueError(
                f"`class_aggregation` must be one of {self._AGGREGATIONS}."
                f" Received: class_aggregation={class_aggregation!r}."
            )
        if num_regressors < 0:
            raise ValueError(
                f"`num_regressors` must be >= 0. Received: num_regressors={num_regressors}."
            )
        self.class_aggregation = class_aggregation
        self.num_regressors = num_regressors
        self.num_samples = self.add_variable(shape=(), name="num_samples")
        self._built = False

    def _build(self, y_true_shape: torch.Size, y_pred_shape: torch.Size) -> None:
        if len(y_pred_shape) != 2 or len(y_true_shape) != 2:
            raise ValueError(
                "R2Score expects 2-D inputs of shape (batch_size, output_dim)."
                f" Received: y_true.shape={tuple(y_true_shape)},"
                f" y_pred.shape={tuple(y_pred_shape)}."
            )
        num_classes = y_pred_shape[-1]
        self.squared_sum = self.add_variable(shape=(num_classes,), name="squared_sum")
        self.sum = self.add_variable(shape=(num_classes,), name="sum")
        self.total_mse = self.add_variable(shape=(num_classes,), name="residual")
        self.count = self.add_variable(shape=(num_classes,), name="count")
        self._built = True

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Adds the batch's weighted sums, squared sums and squared residuals.

        Args:
            y_true: Targets of shape `(batch_size, output_dim)`.
            y_pred: Predictions of the same shape.
            sample_weight: Optional weight per sample `(batch_size,)`, per
                entry, or a number. Defaults to 1.
        """
        y_true = self._convert(y_true, self._dtype)
        y_pred = self._convert(y_pred, self._dtype)
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        if not self._built:
            self._build(y_true.shape, y_pred.shape)
        weight = self._convert(1.0 if sample_weight is None else sample_weight, self._dtype)
        if weight.ndim == 1:
            weight = weight.unsqueeze(1)
        weight = weight.expand(y_true.shape)
        weighted_y_true = y_true * weight
        self.sum.add_(weighted_y_true.sum(dim=0))
        self.squared_sum.add_((y_true * weighted_y_true).sum(dim=0))
        self.total_mse.add_((torch.square(y_true - y_pred) * weight).sum(dim=0))
        self.count.add_(weight.sum(dim=0))
        self.num_samples.add_(y_true.numel())

    def result(self) -> torch.Tensor:
        if not self._built:
            return torch.zeros((), dtype=self._dtype, device=self._device)
        mean = self.sum / self.count
        total = self.squared_sum - self.sum * mean
        raw_scores = 1 - self.total_mse / total
        raw_scores = torch.where(torch.isinf(raw_scores), torch.zeros_like(raw_scores), raw_scores)
        if self.class_aggregation == "uniform_average":
            score = raw_scores.mean()
        elif self.class_aggregation == "variance_weighted_average":
            score = (total * raw_scores).sum() / total.sum()
        else:
            score = raw_scores
        if self.num_regressors == 0:
            return score
        # Adjusted R² needs more samples than regressors + 1; otherwise Keras
        # falls back to the plain score (chosen on device: no host sync).
        n = self.num_samples
        p = float(self.num_regressors)
        adjusted = 1.0 - (1.0 - score) * (n - 1.0) / (n - p - 1.0)
        return torch.where(n - 1.0 > p, adjusted, score)

    def reset_state(self) -> None:
        for variable in self.variables:
            variable.zero_()

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "class_aggregation": self.class_aggregation,
            "num_regressors": self.num_regressors,
        }
