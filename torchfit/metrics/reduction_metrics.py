"""Reducing metrics: `Mean`, `Sum` and `MeanMetricWrapper`.

Owns Keras's sample-weighting rules for metrics (squeeze or expand the weight
to the values' rank, reduce extra trailing dimensions, count the weights) and
the per-step fast path the training loop's loss tracker uses. Every metric that
averages a per-sample function (accuracies, errors, crossentropies) is a
`MeanMetricWrapper` around that function.
"""

from collections.abc import Callable
from typing import Any, Optional

import torch

from torchfit import losses

from .base import DTypeLike, Metric

__all__ = [
    "METRIC_FUNCTIONS",
    "Mean",
    "MeanMetricWrapper",
    "Sum",
    "reduce_to_samplewise_values",
    "squeeze_or_expand_to_same_rank",
]

#: Stateless per-sample metric functions by name, which `MeanMetricWrapper` configs
#: name; `torchfit.metrics` fills it once its modules are loaded.
METRIC_FUNCTIONS: dict[str, Callable[..., Any]] = {}

# The counts' per-step increments (the batch size), made once as CPU scalar tensors in the
# count's dtype: adding one costs ~1 us, adding the Python int ~2.5 us (torch wraps it in a
# tensor at every call), with the same result, on any device, and no copy to the device.
_COUNT_INCREMENTS: dict[tuple, torch.Tensor] = {}
_EXACT_COUNT_DTYPES = (torch.float32, torch.float64)


def _count_increment(count: torch.Tensor, value: Any) -> Any:
    """`value` as a cached CPU scalar when that adds exactly what `value` adds, else `value`."""
    if type(value) is not int or not 0 <= value < 2**24 or count.dtype not in _EXACT_COUNT_DTYPES:
        return value
    key = (value, count.dtype)
    increment = _COUNT_INCREMENTS.get(key)
    if increment is None:
        if len(_COUNT_INCREMENTS) >= 1024:
            _COUNT_INCREMENTS.clear()
        increment = _COUNT_INCREMENTS[key] = torch.tensor(value, dtype=count.dtype)
    return increment


def squeeze_or_expand_to_same_rank(
    x1: torch.Tensor, x2: torch.Tensor, expand_rank_1: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Drops or adds a trailing unit dimension when the ranks differ by one.

    When one tensor has an extra trailing dimension of size 1, it is squeezed,
    except that a rank-1 partner is expanded instead (if `expand_rank_1`).
    """
    rank1, rank2 = x1.ndim, x2.ndim
    if rank1 == rank2 + 1 and x1.shape[-1] == 1:
        if rank2 == 1 and expand_rank_1:
            x2 = x2.unsqueeze(-1)
        else:
            x1 = x1.squeeze(-1)
    elif rank2 == rank1 + 1 and x2.shape[-1] == 1:
        if rank1 == 1 and expand_rank_1:
            x1 = x1.unsqueeze(-1)
        else:
            x2 = x2.squeeze(-1)
    return x1, x2


def reduce_to_samplewise_values(
    values: torch.Tensor,
    sample_weight: Optional[torch.Tensor],
    reduce_fn: Callable[..., torch.Tensor],
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Weights `values` and reduces them to one value per sample.

    Dimensions of `values` beyond the weight's rank are reduced with
    `reduce_fn` before weighting; the weighted values, then the weight itself,
    are reduced over every dimension but the first.

    Args:
        values: Values of any shape, already in the metric's dtype.
        sample_weight: `None`, or a tensor broadcastable to `values` once
            ranks are matched.
        reduce_fn: `torch.mean` or `torch.sum`, called with `dim=`.

    Returns:
        `(values, sample_weight)`, both of rank 0 or 1.
    """
    if sample_weight is not None:
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        weight_ndim = sample_weight.ndim
        if values.ndim > weight_ndim:
            values = reduce_fn(values, dim=tuple(range(weight_ndim, values.ndim)))
        # Broadcasting changes nothing in the product, but it makes the count
        # below the number of weighted entries, as Keras counts them.
        sample_weight = sample_weight.expand(values.shape)
        values = values * sample_weight
        if weight_ndim > 1:
            sample_weight = reduce_fn(sample_weight, dim=tuple(range(1, weight_ndim)))
    if values.ndim > 1:
        values = reduce_fn(values, dim=tuple(range(1, values.ndim)))
    return values, sample_weight


class Sum(Metric):
    """Computes the (weighted) sum of the given values.

    Args:
        name: Name of the metric. Defaults to "sum".
        dtype: Dtype of the state and result. Defaults to `torch.float32`.

    Example:
    >>> m = Sum()
    >>> m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    >>> float(m.result())
    4.0
    """

    def __init__(self, name: str = "sum", dtype: DTypeLike = None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), name="total")

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        """Adds the (weighted) values to the total.

        Args:
            values: Tensor, array or number of any shape.
            sample_weight: Optional weight, broadcastable to `values` after the
                ranks are matched. May be a Python number.
        """
        values = self._convert(values, self._dtype)
        if sample_weight is not None:
            sample_weight = self._convert(sample_weight, self._dtype)
        values, _ = reduce_to_samplewise_values(values, sample_weight, torch.sum)
        self.total.add_(values.sum())

    def result(self) -> torch.Tensor:
        return self.total.clone()


class Mean(Metric):
    """Computes the (weighted) mean of the given values.

    `result()` is `total / count`, or 0 before any update. A scalar tensor with
    a Python-number weight (the loss tracker's call, every step) costs two
    in-place additions.

    Args:
        name: Name of the metric. Defaults to "mean".
        dtype: Dtype of the state and result. Defaults to `torch.float32`.

    Example:
    >>> m = Mean()
    >>> m.update_state([1, 3, 5, 7])
    >>> float(m.result())
    4.0
    >>> m.reset_state()
    >>> m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    >>> float(m.result())
    2.0
    """

    def __init__(self, name: str = "mean", dtype: DTypeLike = None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), name="total")
        self.count = self.add_variable(shape=(), name="count")

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        """Adds the (weighted) values to the total and their weights to the count.

        Args:
            values: Tensor, array or number of any shape. Dimensions beyond the
                weight's rank are averaged first.
            sample_weight: Optional weight, broadcastable to `values` after the
                ranks are matched. May be a Python number. Defaults to 1 per
                sample.
        """
        if (
            isinstance(values, torch.Tensor)
            and values.ndim == 0
            and values.device == self._device
            and (sample_weight is None or isinstance(sample_weight, (int, float)))
        ):
            weight = 1 if sample_weight is None else sample_weight
            self.total.add_(values.detach(), alpha=weight)
            self.count.add_(_count_increment(self.count, weight))
            return
        values = self._convert(values, self._dtype)
        if sample_weight is not None:
            sample_weight = self._convert(sample_weight, self._dtype)
        self._accumulate(values, sample_weight)

    def _accumulate(self, values: torch.Tensor, sample_weight: Optional[torch.Tensor]) -> None:
        values, sample_weight = reduce_to_samplewise_values(values, sample_weight, torch.mean)
        self.total.add_(values.sum())
        if sample_weight is not None:
            self.count.add_(sample_weight.sum())
        else:
            count = self.count
            count.add_(_count_increment(count, values.shape[0] if values.ndim >= 1 else 1))

    def result(self) -> torch.Tensor:
        count = self.count
        return torch.where(count == 0, torch.zeros_like(count), self.total / count)


class MeanMetricWrapper(Mean):
    """Averages a per-sample function `fn(y_true, y_pred, **kwargs)` over samples.

    Args:
        fn: Function returning one value per sample (or per element: trailing
            dimensions are averaged). It receives detached tensors on the
            metric's device.
        name: Name of the metric. Defaults to the snake_case of the class name.
        dtype: Dtype of the state and result. Defaults to `torch.float32`.
        **kwargs: Keyword arguments passed on to `fn`.

    Example:
    >>> def squared(y_true, y_pred):
    ...     return (y_true - y_pred) ** 2
    >>> m = MeanMetricWrapper(squared, name="squared")
    >>> float(m([0.0, 1.0], [1.0, 1.0]))
    0.5
    """

    def __init__(
        self,
        fn: Callable[..., torch.Tensor],
        name: Optional[str] = None,
        dtype: DTypeLike = None,
        **kwargs: Any,
    ):
        if not callable(fn):
            raise TypeError(
                "`fn` must be a callable `fn(y_true, y_pred)`."
                f" Received: fn of type {type(fn).__name__}."
            )
        super().__init__(name=name, dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs
        if _is_loss(fn):
            self._direction = "down"

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Evaluates `fn` on the batch and adds its (weighted) values.

        Args:
            y_true: Targets: tensor, array or nested list.
            y_pred: Predictions, same kinds.
            sample_weight: Optional per-sample (or broadcastable) weight, or a
                Python number.
        """
        y_pred = self._convert(y_pred)
        y_true = self._convert(y_true)
        values = self._fn(y_true, y_pred, **self._fn_kwargs)
        # A function may mark entries to leave out (sparse crossentropy's
        # `ignore_class`) with a `_keras_mask` attribute, as Keras does. Keras
        # applies that mask only to a given sample_weight: unweighted, masked
        # entries count as zeros in the average. Kept for parity.
        mask = getattr(values, "_keras_mask", None)
        if not isinstance(values, torch.Tensor) or values.dtype != self._dtype:
            values = self._convert(values, self._dtype)
        if sample_weight is not None:
            sample_weight = self._convert(sample_weight, self._dtype)
            if mask is not None:
                mask, sample_weight = squeeze_or_expand_to_same_rank(
                    mask.to(self._dtype), sample_weight
                )
                sample_weight = sample_weight * mask
        self._accumulate(values, sample_weight)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        fn_name = getattr(self._fn, "__name__", None)
        config["fn"] = fn_name if _registered_function(fn_name) is self._fn else self._fn
        config.update(self._fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "MeanMetricWrapper":
        config = dict(config)
        if isinstance(config.get("fn"), str):
            name = config["fn"]
            fn = _registered_function(name)
            if fn is None:
                raise ValueError(f"`fn` names no torchfit metric function. Received: fn={name!r}.")
            config["fn"] = fn
        return cls(**config)


def _registered_function(name: Optional[str]) -> Optional[Callable[..., Any]]:
    return METRIC_FUNCTIONS.get(name) if name else None


def _is_loss(fn: Any) -> bool:
    if isinstance(fn, losses.Loss):
        return True
    return getattr(fn, "__module__", "").startswith("torchfit.losses")
