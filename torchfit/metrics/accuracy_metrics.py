"""Accuracy metrics: how often predictions match labels.

Owns the per-sample match functions (`accuracy`, `binary_accuracy`,
`categorical_accuracy`, `sparse_categorical_accuracy` and the top-k pair) and
their averaging metric classes. Shapes, ties (the first maximum wins) and
dtype casts follow Keras 3 on its torch backend. Choosing among them for the
string "accuracy" belongs to `torchfit.metrics.resolve_accuracy`.
"""

from typing import Any

import torch

from .base import DTypeLike, Metric, as_tensor
from .reduction_metrics import MeanMetricWrapper, _count_increment, squeeze_or_expand_to_same_rank

__all__ = [
    "Accuracy",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "TopKCategoricalAccuracy",
    "accuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "top_k_categorical_accuracy",
]

_FLOATX = torch.float32
# Metric dtypes in which a sum of 0/1 matches is exact, counted as ints or as floats.
_EXACT_SUM_DTYPES = (torch.float32, torch.float64)


def accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Returns 1.0 where `y_true` equals `y_pred` exactly, else 0.0.

    Example:
    >>> accuracy([[1], [2], [3]], [[1], [2], [4]]).tolist()
    [[1.0], [1.0], [0.0]]
    """
    y_pred = as_tensor(y_pred)
    y_true = as_tensor(y_true, y_pred.dtype, y_pred.device)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return (y_true == y_pred).to(_FLOATX)


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> torch.Tensor:
    """Returns 1.0 where `y_pred > threshold` agrees with the 0/1 label.

    Example:
    >>> binary_accuracy([[1.0], [0.0]], [[0.7], [0.6]]).tolist()
    [[1.0], [0.0]]
    """
    y_pred = as_tensor(y_pred)
    y_true = as_tensor(y_true, device=y_pred.device)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    predicted = (y_pred > threshold).to(y_true.dtype)
    return (y_true == predicted).to(_FLOATX)


def categorical_accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Returns 1.0 where the argmax of one-hot `y_true` equals that of `y_pred`.

    Example:
    >>> categorical_accuracy([[0, 0, 1], [0, 1, 0]], [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]).tolist()
    [1.0, 0.0]
    """
    y_pred = as_tensor(y_pred)
    y_true = torch.argmax(as_tensor(y_true, device=y_pred.device), dim=-1)
    original_shape = y_true.shape
    reshape_matches = y_true.ndim == y_pred.ndim
    if reshape_matches:
        y_true = y_true.squeeze(-1)
    matches = (y_true == torch.argmax(y_pred, dim=-1)).to(_FLOATX)
    return matches.reshape(original_shape) if reshape_matches else matches


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> torch.Tensor:
    """Returns 1.0 where the integer label equals the argmax of `y_pred`.

    Example:
    >>> sparse_categorical_accuracy([2, 1], [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]).tolist()
    [1.0, 0.0]
    """
    y_pred = as_tensor(y_pred)
    y_true = as_tensor(y_true, device=y_pred.device)
    predicted = torch.argmax(y_pred, dim=-1)
    if y_true.is_floating_point():
        # Keras compares in y_pred's float dtype; integer labels compare
        # exactly as integers, which saves two casts per step.
        compare_dtype = y_pred.dtype if y_pred.is_floating_point() else _FLOATX
        y_true, predicted = y_true.to(compare_dtype), predicted.to(compare_dtype)
    original_shape = y_true.shape
    reshape_matches = y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1
    if reshape_matches:
        y_true = y_true.squeeze(-1)
    matches = (y_true == predicted).to(_FLOATX)
    if reshape_matches:
        matches = matches.reshape(original_shape)
    if matches.ndim > 1 and matches.shape[-1] == 1:
        matches = matches.squeeze(-1)
    return matches


def _in_top_k(targets: torch.Tensor, predictions: torch.Tensor, k: int) -> torch.Tensor:
    # A target is in the top k when its score reaches the k-th largest score,
    # so ties at the boundary count as hits (as in Keras's torch backend).
    k = min(int(k), predictions.shape[-1])
    kth_largest = torch.topk(predictions, k, dim=-1).values[:, -1:]
    target_scores = torch.take_along_dim(predictions, targets.long()[:, None], dim=-1)
    return (target_scores >= kth_largest).squeeze(-1)


def top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> torch.Tensor:
    """Returns 1.0 where the one-hot target's class is among the `k` top scores.

    Example:
    >>> y_pred = [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]
    >>> top_k_categorical_accuracy([[0, 0, 1], [0, 1, 0]], y_pred, k=1).tolist()
    [1.0, 0.0]
    """
    y_pred = as_tensor(y_pred)
    y_true = torch.argmax(as_tensor(y_true, device=y_pred.device), dim=-1)
    return _top_k_matches(y_true, y_pred, k, from_sorted_ids=False)


def sparse_top_k_categorical_accuracy(
    y_true: Any, y_pred: Any, k: int = 5, from_sorted_ids: bool = False
) -> torch.Tensor:
    """Returns 1.0 where the integer label is among the `k` top scores.

    Args:
        y_true: Integer labels.
        y_pred: Scores, or (with `from_sorted_ids=True`) class ids sorted by
            decreasing score, of which the first `k` are compared.
        k: How many top entries count as a hit. Defaults to 5.
        from_sorted_ids: Whether `y_pred` already holds sorted ids.
            Defaults to False.

    Example:
    >>> sparse_top_k_categorical_accuracy([2, 1], [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]], k=1).tolist()
    [1.0, 0.0]
    """
    y_pred = as_tensor(y_pred)
    label_dtype = y_pred.dtype if from_sorted_ids else torch.int64
    y_true = as_tensor(y_true, label_dtype, y_pred.device)
    return _top_k_matches(y_true, y_pred, k, from_sorted_ids)


def _top_k_matches(
    y_true: torch.Tensor, y_pred: torch.Tensor, k: int, from_sorted_ids: bool
) -> torch.Tensor:
    original_shape = y_true.shape
    if y_pred.ndim > 2:
        y_pred = y_pred.reshape(-1, y_pred.shape[-1])
    reshape_matches = y_true.ndim > 1
    if reshape_matches:
        y_true = y_true.reshape(-1)
    if from_sorted_ids:
        matches = (y_true[:, None] == y_pred[:, :k]).any(dim=1)
    else:
        matches = _in_top_k(y_true, y_pred, k)
    matches = matches.to(_FLOATX)
    return matches.reshape(original_shape) if reshape_matches else matches


class Accuracy(MeanMetricWrapper):
    """How often `y_pred` equals `y_true` exactly.

    Args:
        name: Defaults to "accuracy".
        dtype: Dtype of the state and result. Defaults to `torch.float32`.

    Example:
    >>> m = Accuracy()
    >>> float(m([[1], [2], [3], [4]], [[0], [2], [3], [4]]))
    0.75
    """

    def __init__(self, name: str = "accuracy", dtype: DTypeLike = None):
        super().__init__(fn=accuracy, name=name, dtype=dtype)
        self._direction = "up"

    def get_config(self) -> dict[str, Any]:
        return Metric.get_config(self)


class BinaryAccuracy(MeanMetricWrapper):
    """How often `y_pred > threshold` agrees with binary labels.

    Args:
        name: Defaults to "binary_accuracy".
        dtype: Dtype of the state and result. Defaults to `torch.float32`.
        threshold: Probability above which a prediction counts as 1.
            Defaults to 0.5.

    Example:
    >>> m = BinaryAccuracy()
    >>> float(m([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]]))
    0.75
    """

    def __init__(
        self, name: str = "binary_accuracy", dtype: DTypeLike = None, threshold: float = 0.5
    ):
        super().__init__(fn=binary_accuracy, name=name, dtype=dtype, threshold=threshold)
        self.threshold = threshold
        self._direction = "up"

    def get_config(self) -> dict[str, Any]:
        return {**Metric.get_config(self), "threshold": self.threshold}


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the argmax of `y_pred` matches the one-hot `y_true`.

    Example:
    >>> m = CategoricalAccuracy()
    >>> float(m([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]]))
    0.5
    """

    def __init__(self, name: str = "categorical_accuracy", dtype: DTypeLike = None):
        super().__init__(fn=categorical_accuracy, name=name, dtype=dtype)
        self._direction = "up"

    def get_config(self) -> dict[str, Any]:
        return Metric.get_config(self)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the argmax of `y_pred` matches the integer `y_true`.

    Example:
    >>> m = SparseCategoricalAccuracy()
    >>> float(m([[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]]))
    0.5
    """

    def __init__(self, name: str = "sparse_categorical_accuracy", dtype: DTypeLike = None):
        super().__init__(fn=sparse_categorical_accuracy, name=name, dtype=dtype)
        self._direction = "up"

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Adds the batch's matches (see `MeanMetricWrapper.update_state`).

        Unweighted integer labels `(N,)` for scores `(N, C)` (every step of a
        classifier's fit) add the count of matches without the float cast of
        each match: the same sums in a float32 or float64 state, ~3 us less.
        """
        if sample_weight is None and self._dtype in _EXACT_SUM_DTYPES:
            y_pred, y_true = self._convert(y_pred), self._convert(y_true)
            if (
                y_true.ndim == 1
                and y_pred.ndim == 2
                and not (y_true.is_floating_point() or y_true.is_complex())
            ):
                count = self.count
                self.total.add_((y_true == torch.argmax(y_pred, dim=-1)).sum())
                count.add_(_count_increment(count, y_true.shape[0]))
                return
        super().update_state(y_true, y_pred, sample_weight)

    def get_config(self) -> dict[str, Any]:
        return Metric.get_config(self)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot target is among the `k` highest scores.

    Args:
        k: Number of top entries that count. Defaults to 5.
        name: Defaults to "top_k_categorical_accuracy".
        dtype: Dtype of the state and result. Defaults to `torch.float32`.

    Example:
    >>> m = TopKCategoricalAccuracy(k=1)
    >>> float(m([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]]))
    0.5
    """

    def __init__(
        self, k: int = 5, name: str = "top_k_categorical_accuracy", dtype: DTypeLike = None
    ):
        super().__init__(fn=top_k_categorical_accuracy, name=name, dtype=dtype, k=k)
        self.k = k
        self._direction = "up"

    def get_config(self) -> dict[str, Any]:
        return {**Metric.get_config(self), "k": self.k}


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the integer target is among the `k` highest scores.

    Args:
        k: Number of top entries that count. Defaults to 5.
        name: Defaults to "sparse_top_k_categorical_accuracy".
        dtype: Dtype of the state and result. Defaults to `torch.float32`.
        from_sorted_ids: Whether `y_pred` holds class ids sorted by score
            rather than scores. Defaults to False.

    Example:
    >>> m = SparseTopKCategoricalAccuracy(k=1)
    >>> float(m([2, 1], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]]))
    0.5
    """

    def __init__(
        self,
        k: int = 5,
        name: str = "sparse_top_k_categorical_accuracy",
        dtype: DTypeLike = None,
        from_sorted_ids: bool = False,
    ):
        super().__init__(
            fn=sparse_top_k_categorical_accuracy,
            name=name,
            dtype=dtype,
            k=k,
            from_sorted_ids=from_sorted_ids,
        )
        self.k = k
        self.from_sorted_ids = from_sorted_ids
        self._direction = "up"

    def get_config(self) -> dict[str, Any]:
        config = {**Metric.get_config(self), "k": self.k}
        if self.from_sorted_ids:
            config["from_sorted_ids"] = True
        return config
