"""Intersection-over-union metrics for segmentation and classification.

Owns `IoU`, `MeanIoU`, `BinaryIoU`, `OneHotIoU` and `OneHotMeanIoU` with Keras
3's arguments, names and numbers. Each accumulates a `(num_classes,
num_classes)` confusion matrix (rows: true class, columns: predicted class)
with one scatter-add per batch; out-of-range labels and `ignore_class` are
masked to weight 0, never filtered, so no step waits on the host. State
handling (devices, reset, configs) belongs to `base.Metric`.
"""

import warnings
from collections.abc import Sequence
from typing import Any, Optional

import torch

from torchfit.metrics.base import Metric

__all__ = ["BinaryIoU", "IoU", "MeanIoU", "OneHotIoU", "OneHotMeanIoU"]

# Keras's backend epsilon, which keeps empty classes from dividing by zero.
_EPSILON = 1e-7


class _IoUBase(Metric):
    """Accumulates the weighted confusion matrix that every IoU metric reads.

    The state dtype defaults to int32, as in Keras: float sample weights are
    truncated to integers unless `dtype` is a float type.
    """

    def __init__(
        self,
        num_classes: int,
        name: Optional[str] = None,
        dtype=None,
        ignore_class: Optional[int] = None,
        sparse_y_true: bool = True,
        sparse_y_pred: bool = True,
        axis: int = -1,
    ):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f"`num_classes` must be an int >= 1. Received: num_classes={num_classes!r}."
            )
        super().__init__(name=name, dtype=dtype or "int32")
        self._direction = "up"
        self.num_classes = num_classes
        self.ignore_class = ignore_class
        self.sparse_y_true = sparse_y_true
        self.sparse_y_pred = sparse_y_pred
        self.axis = axis
        self.total_cm = self.add_variable(
            shape=(num_classes, num_classes), name="total_confusion_matrix"
        )

    def _class_ids(self, value, sparse: bool) -> torch.Tensor:
        value = self._convert(value)
        if not sparse:
            value = value.argmax(dim=self.axis)
        return value.to(self.dtype).reshape(-1)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Adds this batch to the confusion matrix.

        Args:
            y_true: Class ids (or one-hot rows when `sparse_y_true=False`).
            y_pred: Class ids (or scores when `sparse_y_pred=False`).
            sample_weight: Optional weights broadcastable to the flattened
                labels. Defaults to 1.
        """
        y_pred = self._class_ids(y_pred, self.sparse_y_pred)
        y_true = self._class_ids(y_true, self.sparse_y_true)
        if y_true.shape != y_pred.shape:
            raise ValueError(
                "`y_true` and `y_pred` must hold the same number of labels."
                f" Received {y_true.numel()} true and {y_pred.numel()} predicted labels."
            )
        in_range = (y_true >= 0) & (y_true < self.num_classes)
        in_range &= (y_pred >= 0) & (y_pred < self.num_classes)
        if self.ignore_class is not None:
            in_range &= y_true != self.ignore_class
        weights = in_range.to(self.dtype)
        if sample_weight is not None:
            sample_weight = self._convert(sample_weight)
            if sample_weight.is_floating_point() and not self.dtype.is_floating_point:
                warnings.warn(
                    f"{type(self).__name__}: float `sample_weight` is truncated to"
                    f" integers because the metric's dtype is {self.dtype}."
                    " Pass integer weights, or `dtype='float32'`.",
                    stacklevel=2,
                )
            sample_weight = sample_weight.to(self.dtype).reshape(-1)
            try:
                weights = weights * sample_weight.expand(y_true.shape)
            except RuntimeError as err:
                raise ValueError(
                    "`sample_weight` must broadcast to the flattened labels."
                    f" Received: sample_weight.shape={tuple(sample_weight.shape)},"
                    f" {y_true.numel()} labels."
                ) from err
        cell = torch.where(in_range, y_true * self.num_classes + y_pred, torch.zeros_like(y_true))
        self.total_cm.view(-1).scatter_add_(0, cell.to(torch.int64), weights)


class IoU(_IoUBase):
    """Mean intersection-over-union over `target_class_ids`.

    For each class, `IoU = tp / (tp + fp + fn)`; classes that never appear
    in `y_true` or `y_pred` are left out of the mean.

    Args:
        num_classes: Number of classes.
        target_class_ids: Classes whose IoU is averaged.
        name: Log name. Defaults to "io_u" (Keras's spelling).
        dtype: Dtype of the confusion matrix. Defaults to int32.
        ignore_class: A true class id to leave out (e.g. a "void" label).
            Defaults to None.
        sparse_y_true: `y_true` holds class ids, not one-hot rows.
            Defaults to True.
        sparse_y_pred: `y_pred` holds class ids, not scores. Defaults to True.
        axis: Class axis of non-sparse inputs. Defaults to -1.

    Example:
    >>> m = IoU(num_classes=2, target_class_ids=[0])
    >>> m.update_state([0, 0, 1, 1], [0, 1, 0, 1])
    >>> round(float(m.result()), 4)
    0.3333
    """

    def __init__(
        self,
        num_classes: int,
        target_class_ids: Sequence[int],
        name: Optional[str] = None,
        dtype=None,
        ignore_class: Optional[int] = None,
        sparse_y_true: bool = True,
        sparse_y_pred: bool = True,
        axis: int = -1,
    ):
        super().__init__(num_classes, name, dtype, ignore_class, sparse_y_true, sparse_y_pred, axis)
        target_class_ids = [int(i) for i in target_class_ids]
        if not target_class_ids:
            raise ValueError("`target_class_ids` must name at least one class. Received: [].")
        out_of_range = [i for i in target_class_ids if not 0 <= i < num_classes]
        if out_of_range:
            raise ValueError(
                f"`target_class_ids` must be in [0, {num_classes})."
                f" Received out-of-range ids: {out_of_range[:5]}."
            )
        self.target_class_ids = target_class_ids
        # A tensor attribute: `Metric.to` moves it along with the state.
        self._target_index = torch.tensor(target_class_ids, dtype=torch.int64)

    def result(self) -> torch.Tensor:
        """The mean IoU over the target classes that occurred: a 0-d float32 tensor."""
        matrix = self.total_cm
        predicted = matrix.sum(dim=0).to(self.dtype)
        actual = matrix.sum(dim=1).to(self.dtype)
        true_positives = torch.diagonal(matrix).to(self.dtype)
        union = (predicted + actual - true_positives)[self._target_index].to(torch.float32)
        true_positives = true_positives[self._target_index].to(torch.float32)
        valid = union > 1e-9
        iou = torch.where(valid, true_positives / (union + _EPSILON), torch.zeros_like(union))
        return iou.sum() / (valid.sum().to(torch.float32) + _EPSILON)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "target_class_ids": self.target_class_ids,
            "ignore_class": self.ignore_class,
            "sparse_y_true": self.sparse_y_true,
            "sparse_y_pred": self.sparse_y_pred,
            "axis": self.axis,
        }


class BinaryIoU(IoU):
    """IoU for binary labels, thresholding `y_pred` into classes 0 and 1.

    Args:
        target_class_ids: Which of classes 0 and 1 to average. Defaults to
            `(0, 1)`.
        threshold: Predictions at or above it are class 1. Defaults to 0.5.
        name: Log name. Defaults to "binary_io_u".
        dtype: Dtype of the confusion matrix. Defaults to int32.

    Example:
    >>> m = BinaryIoU(target_class_ids=[0, 1], threshold=0.3)
    >>> m.update_state([0, 1, 0, 1], [0.1, 0.2, 0.4, 0.7])
    >>> round(float(m.result()), 4)
    0.3333
    """

    def __init__(
        self,
        target_class_ids: Sequence[int] = (0, 1),
        threshold: float = 0.5,
        name: Optional[str] = None,
        dtype=None,
    ):
        super().__init__(num_classes=2, target_class_ids=target_class_ids, name=name, dtype=dtype)
        self.threshold = threshold

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Thresholds `y_pred` and adds the batch to the confusion matrix.

        Args:
            y_true: Binary labels (0 or 1).
            y_pred: Scores; `>= threshold` means class 1.
            sample_weight: Optional weights broadcastable to the flattened
                labels. Defaults to 1.
        """
        y_pred = self._convert(y_pred, torch.float32) >= self.threshold
        y_true = self._convert(y_true, self.dtype)
        super().update_state(y_true, y_pred.to(self.dtype), sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {
            "target_class_ids": self.target_class_ids,
            "threshold": self.threshold,
            "name": self.name,
            "dtype": str(self.dtype).replace("torch.", ""),
        }


class MeanIoU(IoU):
    """IoU averaged over all `num_classes` classes.

    Args: as `IoU`, without `target_class_ids`; name defaults to "mean_io_u".

    Example:
    >>> m = MeanIoU(num_classes=2)
    >>> m.update_state([0, 0, 1, 1], [0, 1, 0, 1])
    >>> round(float(m.result()), 4)
    0.3333
    """

    def __init__(
        self,
        num_classes: int,
        name: Optional[str] = None,
        dtype=None,
        ignore_class: Optional[int] = None,
        sparse_y_true: bool = True,
        sparse_y_pred: bool = True,
        axis: int = -1,
    ):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(
                f"`num_classes` must be an int >= 1. Received: num_classes={num_classes!r}."
            )
        super().__init__(
            num_classes,
            list(range(num_classes)),
            name,
            dtype,
            ignore_class,
            sparse_y_true,
            sparse_y_pred,
            axis,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["target_class_ids"]
        return config


class OneHotIoU(IoU):
    """`IoU` for one-hot `y_true` and score (softmax) `y_pred`.

    Args: as `IoU`, without `sparse_y_true` (always False); `sparse_y_pred`
        defaults to False. Name defaults to "one_hot_io_u".

    Example:
    >>> m = OneHotIoU(num_classes=3, target_class_ids=[0, 2])
    >>> y_true = [[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 0, 0]]
    >>> y_pred = [[0.2, 0.3, 0.5], [0.1, 0.2, 0.7], [0.5, 0.3, 0.1], [0.1, 0.4, 0.5]]
    >>> round(float(m(y_true, y_pred)), 4)
    0.1667
    """

    def __init__(
        self,
        num_classes: int,
        target_class_ids: Sequence[int],
        name: Optional[str] = None,
        dtype=None,
        ignore_class: Optional[int] = None,
        sparse_y_pred: bool = False,
        axis: int = -1,
    ):
        super().__init__(
            num_classes,
            target_class_ids,
            name,
            dtype,
            ignore_class,
            sparse_y_true=False,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["sparse_y_true"]
        return config


class OneHotMeanIoU(MeanIoU):
    """`MeanIoU` for one-hot `y_true` and score (softmax) `y_pred`.

    Args: as `MeanIoU`, without `sparse_y_true` (always False);
        `sparse_y_pred` defaults to False. Name defaults to "one_hot_mean_io_u".

    Example:
    >>> m = OneHotMeanIoU(num_classes=3)
    >>> y_true = [[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 0, 0]]
    >>> y_pred = [[0.2, 0.3, 0.5], [0.1, 0.2, 0.7], [0.5, 0.3, 0.1], [0.1, 0.4, 0.5]]
    >>> round(float(m(y_true, y_pred)), 4)
    0.1111
    """

    def __init__(
        self,
        num_classes: int,
        name: Optional[str] = None,
        dtype=None,
        ignore_class: Optional[int] = None,
        sparse_y_pred: bool = False,
        axis: int = -1,
    ):
        super().__init__(
            num_classes,
            name,
            dtype,
            ignore_class,
            sparse_y_true=False,
            sparse_y_pred=sparse_y_pred,
            axis=axis,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["sparse_y_true"]
        return config
