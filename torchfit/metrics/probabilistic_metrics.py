"""Probabilistic metrics: KL divergence, Poisson and the crossentropies.

Owns the per-sample functions as metrics compute them (Keras's formulas:
probabilities clipped to [1e-7, 1 - 1e-7], labels smoothed before use,
`ignore_class` entries masked out of the average) and their metric classes.
The differentiable, reduced losses of the same names belong to
`torchfit.losses`.
"""

from typing import Any, Optional

import torch
import torch.nn.functional as F

from .base import DTypeLike, Metric, as_tensor
from .reduction_metrics import MeanMetricWrapper, squeeze_or_expand_to_same_rank

__all__ = [
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "KLDivergence",
    "Poisson",
    "SparseCategoricalCrossentropy",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "kl_divergence",
    "poisson",
    "sparse_categorical_crossentropy",
]

EPSILON = 1e-7


def _float_pair(y_true: Any, y_pred: Any) -> tuple[torch.Tensor, torch.Tensor]:
    y_pred = as_tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    return as_tensor(y_true, y_pred.dtype, y_pred.device), y_pred


def kl_divergence(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`sum(y_true * log(y_true / y_pred))` over the last axis, both clipped to [1e-7, 1].

    Example:
    >>> kl_divergence([[0.5, 0.5]], [[0.5, 0.5]]).tolist()
    [0.0]
    """
    y_true, y_pred = _float_pair(y_true, y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    y_true = torch.clamp(y_true, EPSILON, 1.0)
    y_pred = torch.clamp(y_pred, EPSILON, 1.0)
    return torch.sum(y_true * torch.log(y_true / y_pred), dim=-1)


def poisson(y_true: Any, y_pred: Any) -> torch.Tensor:
    """`mean(y_pred - y_true * log(y_pred + 1e-7))` over the last axis.

    Example:
    >>> poisson([[0.0]], [[1.0]]).tolist()
    [1.0]
    """
    y_true, y_pred = _float_pair(y_true, y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return torch.mean(y_pred - y_true * torch.log(y_pred + EPSILON), dim=-1)


def binary_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Binary crossentropy averaged over `axis`.

    Labels of shape `(N,)` with predictions of shape `(N, 1)` (or the reverse)
    are matched first.

    Example:
    >>> round(binary_crossentropy([[1.0]], [[0.5]]).item(), 4)
    0.6931
    """
    y_true, y_pred = _float_pair(y_true, y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        losses = F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    else:
        y_pred = torch.clamp(y_pred, EPSILON, 1.0 - EPSILON)
        losses = F.binary_cross_entropy(y_pred, y_true, reduction="none")
    return losses.mean(dim=axis)


def categorical_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Crossentropy between one-hot (or soft) labels and class scores along `axis`.

    Probabilities are renormalized to sum to 1 and clipped to
    [1e-7, 1 - 1e-7]; logits go through `log_softmax`.

    Example:
    >>> round(categorical_crossentropy([[0.0, 1.0]], [[0.5, 0.5]]).item(), 4)
    0.6931
    """
    if isinstance(axis, bool):
        raise TypeError(f"`axis` must be an int. Received: axis={axis!r}.")
    y_true, y_pred = _float_pair(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            "`y_true` and `y_pred` must have the same shape for categorical"
            f" crossentropy. Received: y_true.shape={tuple(y_true.shape)},"
            f" y_pred.shape={tuple(y_pred.shape)}. Use sparse_categorical_crossentropy"
            " for integer labels."
        )
    if label_smoothing:
        num_classes = y_true.shape[-1]
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / num_classes
    return -torch.sum(y_true * _log_probabilities(y_pred, from_logits, axis), dim=axis)


def binary_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    apply_class_balancing: bool = False,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Binary crossentropy scaled by the focal factor `(1 - p_t) ** gamma`, averaged over `axis`.

    `p_t` is `y_pred` for a target of 1 and `1 - y_pred` for a target of 0
    (after label smoothing; logits go through a sigmoid first). With
    `apply_class_balancing`, targets of 1 are weighted by `alpha` and targets
    of 0 by `1 - alpha`. Keras 3 exports this as
    `keras.metrics.binary_focal_crossentropy` without a metric class or
    string id: wrap it, `MeanMetricWrapper(binary_focal_crossentropy, gamma=3.0)`.

    Example:
    >>> binary_focal_crossentropy([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]).tolist()
    ... # doctest: +ELLIPSIS
    [0.32..., 0.20...]
    """
    y_true, y_pred = _float_pair(y_true, y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        y_pred = torch.sigmoid(y_pred)
    clipped = torch.clamp(y_pred, EPSILON, 1.0 - EPSILON)
    bce = F.binary_cross_entropy(clipped, y_true, reduction="none")
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    focal_bce = torch.pow(1.0 - p_t, gamma) * bce
    if apply_class_balancing:
        focal_bce = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal_bce
    return focal_bce.mean(dim=axis)


def categorical_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    alpha: Any = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> torch.Tensor:
    """Categorical crossentropy with each class term weighted by `alpha (1 - p) ** gamma`.

    Probabilities are renormalized to sum to 1 along `axis` and clipped to
    [1e-7, 1 - 1e-7]; logits go through a softmax first. `alpha` is a number
    or one weight per class. Keras 3 exports this as
    `keras.metrics.categorical_focal_crossentropy` without a metric class or
    string id: wrap it, `MeanMetricWrapper(categorical_focal_crossentropy)`.

    Example:
    >>> categorical_focal_crossentropy(
    ...     [[0, 1, 0], [0, 0, 1]], [[0.05, 0.9, 0.05], [0.1, 0.85, 0.05]]
    ... ).tolist()  # doctest: +ELLIPSIS
    [0.00026..., 0.67...]
    """
    if isinstance(axis, bool):
        raise ValueError(f"`axis` must be of type `int`. Received: axis={axis!r}.")
    y_true, y_pred = _float_pair(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            "`y_true` and `y_pred` must have the same shape for categorical focal"
            f" crossentropy. Received: y_true.shape={tuple(y_true.shape)},"
            f" y_pred.shape={tuple(y_pred.shape)}. One-hot encode integer labels."
        )
    if label_smoothing:
        num_classes = y_true.shape[-1]
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / num_classes
    if from_logits:
        y_pred = torch.softmax(y_pred, dim=axis)
    output = y_pred / torch.sum(y_pred, dim=axis, keepdim=True)
    output = torch.clamp(output, EPSILON, 1.0 - EPSILON)
    if not isinstance(alpha, (int, float)):
        alpha = torch.as_tensor(alpha, dtype=y_pred.dtype, device=y_pred.device)
    weighting = torch.pow(1.0 - output, gamma) * alpha
    return torch.sum(weighting * (-y_true * torch.log(output)), dim=axis)


def _log_probabilities(y_pred: torch.Tensor, from_logits: bool, axis: int) -> torch.Tensor:
    if from_logits:
        return F.log_softmax(y_pred, dim=axis)
    y_pred = y_pred / torch.sum(y_pred, dim=axis, keepdim=True)
    return torch.log(torch.clamp(y_pred, EPSILON, 1.0 - EPSILON))


def sparse_categorical_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    ignore_class: Optional[int] = None,
    axis: int = -1,
) -> torch.Tensor:
    """Crossentropy between integer labels and class scores along `axis`.

    With `ignore_class`, entries with that label get a loss of 0 and carry a
    `_keras_mask` attribute that `MeanMetricWrapper` uses to leave them out of
    the average.

    Example:
    >>> round(sparse_categorical_crossentropy([1], [[0.5, 0.5]]).item(), 4)
    0.6931
    """
    y_pred = as_tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    y_true = as_tensor(y_true, device=y_pred.device)
    if y_true.ndim == y_pred.ndim and y_true.shape[axis] == 1:
        y_true = y_true.squeeze(axis)
    class_axis = axis % y_pred.ndim
    valid_mask = None
    if ignore_class is not None:
        valid_mask = y_true != ignore_class
        y_true = torch.where(valid_mask, y_true, torch.zeros_like(y_true))
        y_pred = torch.where(valid_mask.unsqueeze(class_axis), y_pred, torch.zeros_like(y_pred))
    target = y_true.long()
    if y_pred.ndim == 1:
        scores, target = y_pred.unsqueeze(0), target.unsqueeze(0)
    else:
        scores = y_pred.movedim(class_axis, 1) if class_axis != 1 else y_pred
    if from_logits:
        result = F.cross_entropy(scores, target, reduction="none")
    else:
        result = F.nll_loss(_log_probabilities(scores, False, 1), target, reduction="none")
    if y_pred.ndim == 1:
        result = result.squeeze(0)
    if valid_mask is not None:
        result = torch.where(valid_mask, result, torch.zeros_like(result))
        result._keras_mask = valid_mask
    return result


class KLDivergence(MeanMetricWrapper):
    """Mean Kullback-Leibler divergence between `y_true` and `y_pred`.

    Example:
    >>> round(float(KLDivergence()([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])), 4)
    0.4581
    """

    def __init__(self, name: str = "kl_divergence", dtype: DTypeLike = None):
        super().__init__(fn=kl_divergence, name=name, dtype=dtype)
        self._direction = "down"

    def get_config(self) -> dict[str, Any]:
        return Metric.get_config(self)


class Poisson(MeanMetricWrapper):
    """Mean Poisson deviance term `y_pred - y_true * log(y_pred)`.

    Example:
    >>> round(float(Poisson()([[0, 1], [0, 0]], [[1, 1], [0, 0]])), 4)
    0.5
    """

    def __init__(self, name: str = "poisson", dtype: DTypeLike = None):
        super().__init__(fn=poisson, name=name, dtype=dtype)
        self._direction = "down"

    def get_config(self) -> dict[str, Any]:
        return Metric.get_config(self)


class BinaryCrossentropy(MeanMetricWrapper):
    """Mean binary crossentropy.

    Args:
        name: Defaults to "binary_crossentropy".
        dtype: Dtype of the state and result. Defaults to `torch.float32`.
        from_logits: Whether `y_pred` holds logits. Defaults to False.
        label_smoothing: Squeezes labels towards 0.5 by this much. Defaults to 0.

    Example:
    >>> round(float(BinaryCrossentropy()([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])), 4)
    0.8149
    """

    def __init__(
        self,
        name: str = "binary_crossentropy",
        dtype: DTypeLike = None,
        from_logits: bool = False,
        label_smoothing: float = 0,
    ):
        super().__init__(
            fn=binary_crossentropy,
            name=name,
            dtype=dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
        )
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self._direction = "down"

    def get_config(self) -> dict[str, Any]:
        return {
            **Metric.get_config(self),
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
        }


class CategoricalCrossentropy(MeanMetricWrapper):
    """Mean crossentropy between one-hot labels and predicted distributions.

    Args:
        name: Defaults to "categorical_crossentropy".
        dtype: Dtype of the state and result. Defaults to `torch.float32`.
        from_logits: Whether `y_pred` holds logits. Defaults to False.
        label_smoothing: Mixes labels with the uniform distribution by this
            much. Defaults to 0.
        axis: The class axis. Defaults to -1.

    Example:
    >>> y_pred = [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
    >>> round(float(CategoricalCrossentropy()([[0, 1, 0], [0, 0, 1]], y_pred)), 4)
    1.1769
    """

    def __init__(
        self,
        name: str = "categorical_crossentropy",
        dtype: DTypeLike = None,
        from_logits: bool = False,
        label_smoothing: float = 0,
        axis: int = -1,
    ):
        super().__init__(
            fn=categorical_crossentropy,
            name=name,
            dtype=dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis
        self._direction = "down"

    def get_config(self) -> dict[str, Any]:
        return {
            **Metric.get_config(self),
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "axis": self.axis,
        }


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    """Mean crossentropy between integer labels and predicted distributions.

    Args:
        name: Defaults to "sparse_categorical_crossentropy".
        dtype: Dtype of the state and result. Defaults to `torch.float32`.
        from_logits: Whether `y_pred` holds logits. Defaults to False.
        ignore_class: A label to leave out of the average (e.g. padding).
            Defaults to None.
        axis: The class axis. Defaults to -1.

    Example:
    >>> round(float(SparseCategoricalCrossentropy()([1, 2], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]])), 4)
    1.1769
    """

    def __init__(
        self,
        name: str = "sparse_categorical_crossentropy",
        dtype: DTypeLike = None,
        from_logits: bool = False,
        ignore_class: Optional[int] = None,
        axis: int = -1,
    ):
        super().__init__(
            fn=sparse_categorical_crossentropy,
            name=name,
            dtype=dtype,
            from_logits=from_logits,
            ignore_class=ignore_class,
            axis=axis,
        )
        self.from_logits = from_logits
        self.ignore_class = ignore_class
        self.axis = axis
        self._direction = "down"

    def get_config(self) -> dict[str, Any]:
        return {
            **Metric.get_config(self),
            "from_logits": self.from_logits,
            "ignore_class": self.ignore_class,
            "axis": self.axis,
        }
