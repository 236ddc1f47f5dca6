"""Keras 3's probabilistic losses: cross-entropies, focal losses, KL divergence, Poisson.

Owns the formulas and classes of `BinaryCrossentropy`,
`BinaryFocalCrossentropy`, `CategoricalCrossentropy`,
`CategoricalFocalCrossentropy`, `SparseCategoricalCrossentropy`,
`KLDivergence`, `Poisson` and `CategoricalGeneralizedCrossEntropy`, with their
function forms. Probabilities are clipped to [1e-7, 1 - 1e-7] as Keras does.
Weighting and reduction live in loss.py.

The cross-entropy classes take a fused torch kernel (`F.cross_entropy`,
`F.binary_cross_entropy_with_logits`) when called without sample weights
under a mean reduction: the loss runs every step, and the fused call is both
faster and equal to Keras's result.
"""

import warnings
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from torchfit.losses.loss import LossFunctionWrapper, as_tensor, squeeze_or_expand_to_same_rank
from torchfit.losses.losses import EPSILON, _pair
from torchfit.losses.targets import SAME_SHAPE, ClassIndices

_MEAN_REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight")


def _check_axis(axis) -> None:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise ValueError(
            f"`axis` must be of type `int`. Received: axis={axis!r} of type {type(axis).__name__}."
        )


def _check_same_shape(y_true: Tensor, y_pred: Tensor) -> None:
    if y_true.shape != y_pred.shape:
        raise ValueError(
            "`y_true` and `y_pred` must have the same shape."
            f" Received: y_true.shape={tuple(y_true.shape)}, y_pred.shape={tuple(y_pred.shape)}."
        )


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 takes no device type
        return torch.is_autocast_enabled()


def _binary_crossentropy_elements(y_true: Tensor, y_pred: Tensor, from_logits: bool) -> Tensor:
    """Element-wise binary cross-entropy, probabilities clipped to [1e-7, 1 - 1e-7]."""
    if from_logits:
        return F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    y_pred = y_pred.clamp(EPSILON, 1.0 - EPSILON)
    if _autocast_enabled(y_pred.device.type):
        # F.binary_cross_entropy refuses to run under autocast.
        return -(y_true * torch.log(y_pred) + (1.0 - y_true) * torch.log1p(-y_pred))
    return F.binary_cross_entropy(y_pred, y_true, reduction="none")


def _smooth_binary(y_true: Tensor, label_smoothing: float) -> Tensor:
    return y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing if label_smoothing else y_true


def _smooth_categorical(y_true: Tensor, label_smoothing: float) -> Tensor:
    # Keras divides by the size of the last axis whatever `axis` is.
    if not label_smoothing:
        return y_true
    return y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[-1]


def _warn_single_class(loss_name: str, y_pred: Tensor) -> None:
    if y_pred.dim() > 0 and y_pred.shape[-1] == 1:
        warnings.warn(
            f"In loss {loss_name}, expected y_pred.shape to be (batch_size, num_classes)"
            f" with num_classes > 1. Received: y_pred.shape={tuple(y_pred.shape)}."
            " Consider using 'binary_crossentropy' if you only have 2 classes.",
            SyntaxWarning,
            stacklevel=3,
        )


def _normalized_probabilities(y_pred: Tensor, axis: int) -> Tensor:
    """Rescales probabilities to sum to 1 along `axis`, then clips them."""
    return (y_pred / y_pred.sum(dim=axis, keepdim=True)).clamp(EPSILON, 1.0 - EPSILON)


# ------------------------------------------------------------------ functions


def binary_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> Tensor:
    """Binary cross-entropy, averaged over `axis`.

    Args:
        y_true: Targets in [0, 1], shaped like y_pred.
        y_pred: Probabilities, or logits when `from_logits`.
        from_logits: Whether y_pred are logits. Defaults to False.
        label_smoothing: Moves targets towards 0.5 by this fraction. Defaults to 0.
        axis: Axis to average over. Defaults to -1.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    _check_same_shape(y_true, y_pred)
    y_true = _smooth_binary(y_true, label_smoothing)
    return _binary_crossentropy_elements(y_true, y_pred, from_logits).mean(dim=axis)


def binary_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    apply_class_balancing: bool = False,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> Tensor:
    """Binary cross-entropy scaled by `(1 - p_t) ** gamma`, averaged over `axis`.

    With `apply_class_balancing`, positives are also weighted by `alpha` and
    negatives by `1 - alpha`.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    _check_same_shape(y_true, y_pred)
    y_true = _smooth_binary(y_true, label_smoothing)
    if from_logits:
        y_pred = torch.sigmoid(y_pred)
    bce = _binary_crossentropy_elements(y_true, y_pred, from_logits=False)
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    focal_bce = (1.0 - p_t).pow(gamma) * bce
    if apply_class_balancing:
        focal_bce = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal_bce
    return focal_bce.mean(dim=axis)


def categorical_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> Tensor:
    """Cross-entropy between one-hot (or soft) targets and class probabilities.

    Args:
        y_true: One-hot or probability targets, shaped like y_pred.
        y_pred: Probabilities (rescaled to sum to 1 along `axis`), or logits
            when `from_logits`.
        from_logits: Whether y_pred are logits. Defaults to False.
        label_smoothing: Mixes targets with the uniform distribution. Defaults to 0.
        axis: The class axis. Defaults to -1.
    """
    _check_axis(axis)
    y_true, y_pred = _pair(y_true, y_pred)
    _warn_single_class("categorical_crossentropy", y_pred)
    _check_same_shape(y_true, y_pred)
    y_true = _smooth_categorical(y_true, label_smoothing)
    if from_logits:
        log_probabilities = F.log_softmax(y_pred, dim=axis)
    else:
        log_probabilities = torch.log(_normalized_probabilities(y_pred, axis))
    return -(y_true * log_probabilities).sum(dim=axis)


def categorical_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> Tensor:
    """Categorical cross-entropy with each class term scaled by `alpha (1 - p) ** gamma`."""
    _check_axis(axis)
    y_true, y_pred = _pair(y_true, y_pred)
    _warn_single_class("categorical_focal_crossentropy", y_pred)
    _check_same_shape(y_true, y_pred)
    y_true = _smooth_categorical(y_true, label_smoothing)
    if from_logits:
        y_pred = torch.softmax(y_pred, dim=axis)
    probabilities = _normalized_probabilities(y_pred, axis)
    cross_entropy = -y_true * torch.log(probabilities)
    weighting = (1.0 - probabilities).pow(gamma) * alpha
    return (weighting * cross_entropy).sum(dim=axis)


def _sparse_targets(y_true: Any, y_pred: Tensor, axis: int) -> Tensor:
    """Class indices shaped as y_pred without its class axis."""
    y_true = as_tensor(y_true, device=y_pred.device, dtype=torch.long)
    if y_pred.dim() < 1:
        raise ValueError(
            f"`y_pred` must be at least rank 1. Received: y_pred.shape={tuple(y_pred.shape)}."
        )
    if y_true.dim() == y_pred.dim() and y_true.shape[axis] == 1:
        y_true = y_true.squeeze(axis)
    expected = list(y_pred.shape)
    del expected[axis]
    if list(y_true.shape) != expected:
        raise ValueError(
            "`y_true` must hold class indices shaped like `y_pred` without its class axis."
            f" Received: y_true.shape={tuple(y_true.shape)}, y_pred.shape={tuple(y_pred.shape)}."
        )
    return y_true


def _sparse_crossentropy(
    y_true: Tensor, y_pred: Tensor, from_logits: bool, axis: int, reduction: str = "none"
) -> Tensor:
    """Runs torch's fused kernels with the class axis moved to position 1."""
    if y_pred.dim() == 1:
        y_pred, y_true = y_pred.unsqueeze(0), y_true.unsqueeze(0)
        result = _sparse_crossentropy(y_true, y_pred, from_logits, 1, reduction)
        return result.squeeze(0) if reduction == "none" else result
    class_axis = axis % y_pred.dim()
    if class_axis != 1:
        y_pred = y_pred.movedim(class_axis, 1)
    if from_logits:
        return F.cross_entropy(y_pred, y_true, reduction=reduction)
    return F.nll_loss(torch.log(_normalized_probabilities(y_pred, 1)), y_true, reduction=reduction)


def _sparse_crossentropy_and_mask(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    y_pred = as_tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.float()
    y_true = _sparse_targets(y_true, y_pred, axis)
    if ignore_class is None:
        return _sparse_crossentropy(y_true, y_pred, from_logits, axis), None
    valid = y_true != ignore_class
    result = _sparse_crossentropy(y_true.masked_fill(~valid, 0), y_pred, from_logits, axis)
    return torch.where(valid, result, torch.zeros_like(result)), valid


def sparse_categorical_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    ignore_class: Optional[int] = None,
    axis: int = -1,
) -> Tensor:
    """Cross-entropy between integer class labels and class probabilities.

    Args:
        y_true: Class indices shaped like y_pred without the class axis (a
            trailing axis of size 1 is squeezed).
        y_pred: Probabilities, or logits when `from_logits`.
        from_logits: Whether y_pred are logits. Defaults to False.
        ignore_class: Label whose entries get a zero loss. Defaults to None.
        axis: The class axis. Defaults to -1.
    """
    return _sparse_crossentropy_and_mask(y_true, y_pred, from_logits, ignore_class, axis)[0]


def kl_divergence(y_true: Any, y_pred: Any) -> Tensor:
    """`sum(y_true * log(y_true / y_pred), axis=-1)`, both clipped to [1e-7, 1]."""
    y_true, y_pred = _pair(y_true, y_pred)
    y_true = y_true.clamp(EPSILON, 1.0)
    y_pred = y_pred.clamp(EPSILON, 1.0)
    return (y_true * torch.log(y_true / y_pred)).sum(dim=-1)


def poisson(y_true: Any, y_pred: Any) -> Tensor:
    """`mean(y_pred - y_true * log(y_pred + 1e-7), axis=-1)`."""
    y_true, y_pred = _pair(y_true, y_pred)
    return (y_pred - y_true * torch.log(y_pred + EPSILON)).mean(dim=-1)


def categorical_generalized_cross_entropy(y_true: Any, y_pred: Any, q: float) -> Tensor:
    """`(1 - p ** q) / q`, p the probability given to the true class (noise-robust)."""
    y_pred = as_tensor(y_pred)
    y_true = as_tensor(y_true, device=y_pred.device, dtype=torch.long)
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    p = y_pred.gather(-1, y_true.unsqueeze(-1)).squeeze(-1)
    return (1.0 - p.pow(q)) / q


# -------------------------------------------------------------------- classes


def _fast_path_open(loss, sample_weight) -> bool:
    return sample_weight is None and loss.reduction in _MEAN_REDUCTIONS


class BinaryCrossentropy(LossFunctionWrapper):
    """Cross-entropy between binary labels and predicted probabilities (or logits).

    Args:
        from_logits: Whether y_pred are logits. Defaults to False.
        label_smoothing: Moves targets towards 0.5 by this fraction. Defaults to 0.
        axis: Axis to average over. Defaults to -1.
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"binary_crossentropy"`.
        dtype: See `Loss`. Defaults to `None`.

    Example:
        >>> loss = BinaryCrossentropy()
        >>> round(float(loss(torch.tensor([[0.0], [1.0]]), torch.tensor([[0.5], [0.5]]))), 4)
        0.6931
    """

    target_rule = SAME_SHAPE

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="binary_crossentropy",
        dtype=None,
    ):
        super().__init__(
            binary_crossentropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )
        self.from_logits, self.label_smoothing, self.axis = from_logits, label_smoothing, axis

    def __call__(self, y_true, y_pred, sample_weight=None):
        if _fast_path_open(self, sample_weight):
            y_true, y_pred = self._convert_inputs(y_true, y_pred)
            y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
            if (
                y_true.shape == y_pred.shape
                and y_pred.dim() > 0
                and y_pred.numel() > 0
                and self.axis % y_pred.dim() == y_pred.dim() - 1
            ):
                y_true = _smooth_binary(y_true, self.label_smoothing)
                if self.from_logits:
                    return F.binary_cross_entropy_with_logits(y_pred, y_true)
                return _binary_crossentropy_elements(y_true, y_pred, False).mean()
        return super().__call__(y_true, y_pred, sample_weight)


class BinaryFocalCrossentropy(LossFunctionWrapper):
    """Binary cross-entropy down-weighting easy examples by `(1 - p_t) ** gamma`.

    Args:
        apply_class_balancing: Weight positives by `alpha`, negatives by
            `1 - alpha`. Defaults to False.
        alpha: Class-balancing weight. Defaults to 0.25.
        gamma: Focusing parameter. Defaults to 2.0.
        from_logits: Whether y_pred are logits. Defaults to False.
        label_smoothing: Moves targets towards 0.5 by this fraction. Defaults to 0.
        axis: Axis to average over. Defaults to -1.
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"binary_focal_crossentropy"`.
        dtype: See `Loss`. Defaults to `None`.
    """

    target_rule = SAME_SHAPE

    def __init__(
        self,
        apply_class_balancing=False,
        alpha=0.25,
        gamma=2.0,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="binary_focal_crossentropy",
        dtype=None,
    ):
        super().__init__(
            binary_focal_crossentropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            apply_class_balancing=apply_class_balancing,
            alpha=alpha,
            gamma=gamma,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )
        self.apply_class_balancing, self.alpha, self.gamma = apply_class_balancing, alpha, gamma
        self.from_logits, self.label_smoothing, self.axis = from_logits, label_smoothing, axis


class CategoricalCrossentropy(LossFunctionWrapper):
    """Cross-entropy between one-hot (or soft) labels and predicted class probabilities.

    Args:
        from_logits: Whether y_pred are logits. Defaults to False.
        label_smoothing: Mixes targets with the uniform distribution. Defaults to 0.
        axis: The class axis. Defaults to -1.
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"categorical_crossentropy"`.
        dtype: See `Loss`. Defaults to `None`.
    """

    target_rule = SAME_SHAPE

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="categorical_crossentropy",
        dtype=None,
    ):
        _check_axis(axis)
        super().__init__(
            categorical_crossentropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )
        self.from_logits, self.label_smoothing, self.axis = from_logits, label_smoothing, axis

    def __call__(self, y_true, y_pred, sample_weight=None):
        if self.from_logits and _fast_path_open(self, sample_weight):
            y_true, y_pred = self._convert_inputs(y_true, y_pred)
            y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
            if (
                y_true.shape == y_pred.shape
                and y_pred.dim() > 1
                and y_pred.shape[-1] > 1
                and self.axis % y_pred.dim() == y_pred.dim() - 1
            ):
                classes = y_pred.shape[-1]
                # torch smooths soft targets exactly as Keras: t (1 - s) + s / C.
                return F.cross_entropy(
                    y_pred.reshape(-1, classes),
                    y_true.reshape(-1, classes),
                    label_smoothing=float(self.label_smoothing),
                )
        return super().__call__(y_true, y_pred, sample_weight)


class CategoricalFocalCrossentropy(LossFunctionWrapper):
    """Categorical cross-entropy down-weighting easy examples by `alpha (1 - p) ** gamma`.

    Args:
        alpha: Weighting factor. Defaults to 0.25.
        gamma: Focusing parameter. Defaults to 2.0.
        from_logits: Whether y_pred are logits. Defaults to False.
        label_smoothing: Mixes targets with the uniform distribution. Defaults to 0.
        axis: The class axis. Defaults to -1.
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"categorical_focal_crossentropy"`.
        dtype: See `Loss`. Defaults to `None`.
    """

    target_rule = SAME_SHAPE

    def __init__(
        self,
        alpha=0.25,
        gamma=2.0,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="categorical_focal_crossentropy",
        dtype=None,
    ):
        _check_axis(axis)
        super().__init__(
            categorical_focal_crossentropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            alpha=alpha,
            gamma=gamma,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )
        self.alpha, self.gamma = alpha, gamma
        self.from_logits, self.label_smoothing, self.axis = from_logits, label_smoothing, axis


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Cross-entropy between integer labels and predicted class probabilities (or logits).

    Without sample weights, `ignore_class` or a `"none"` reduction, the call is
    one `F.cross_entropy` (logits) or `F.nll_loss` (probabilities).

    Args:
        from_logits: Whether y_pred are logits. Defaults to False.
        ignore_class: Label to ignore (e.g. padding): such entries have zero
            loss and do not count in the mean reductions. Defaults to None.
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        axis: The class axis. Defaults to -1.
        name: Defaults to `"sparse_categorical_crossentropy"`.
        dtype: See `Loss`. Defaults to `None`.

    Example:
        >>> loss = SparseCategoricalCrossentropy(from_logits=True)
        >>> round(float(loss(torch.tensor([0, 1]), torch.zeros(2, 2))), 4)
        0.6931
    """

    _integer_targets = True

    def __init__(
        self,
        from_logits=False,
        ignore_class=None,
        reduction="sum_over_batch_size",
        axis=-1,
        name="sparse_categorical_crossentropy",
        dtype=None,
    ):
        super().__init__(
            sparse_categorical_crossentropy,
            name=name,
            reduction=reduction,
            dtype=dtype,
            from_logits=from_logits,
            ignore_class=ignore_class,
            axis=axis,
        )
        self.from_logits, self.ignore_class, self.axis = from_logits, ignore_class, axis

    @property
    def target_rule(self) -> ClassIndices:
        """Class indices along `axis`; `ignore_class` may appear anywhere."""
        return ClassIndices(self.axis, self.ignore_class)

    def __call__(self, y_true, y_pred, sample_weight=None):
        fused = self.reduction in _MEAN_REDUCTIONS or self.reduction == "sum"
        if sample_weight is None and self.ignore_class is None and fused:
            y_true, y_pred = self._convert_inputs(y_true, y_pred)
            y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
            if y_pred.dim() > 1 and y_pred.numel() > 0:
                y_true = _sparse_targets(y_true, y_pred, self.axis)
                reduction = "sum" if self.reduction == "sum" else "mean"
                return _sparse_crossentropy(y_true, y_pred, self.from_logits, self.axis, reduction)
        return super().__call__(y_true, y_pred, sample_weight)

    def _call_with_mask(self, y_true, y_pred):
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return _sparse_crossentropy_and_mask(
            y_true, y_pred, self.from_logits, self.ignore_class, self.axis
        )


class KLDivergence(LossFunctionWrapper):
    """Kullback-Leibler divergence `sum(y_true * log(y_true / y_pred))`.

    Args:
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"kl_divergence"`.
        dtype: See `Loss`. Defaults to `None`.
    """

    target_rule = SAME_SHAPE

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(kl_divergence, name=name, reduction=reduction, dtype=dtype)


class Poisson(LossFunctionWrapper):
    """Poisson loss `mean(y_pred - y_true * log(y_pred))`.

    Args:
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"poisson"`.
        dtype: See `Loss`. Defaults to `None`.
    """

    target_rule = SAME_SHAPE

    def __init__(self, reduction="sum_over_batch_size", name="poisson", dtype=None):
        super().__init__(poisson, name=name, reduction=reduction, dtype=dtype)


class CategoricalGeneralizedCrossEntropy(LossFunctionWrapper):
    """Generalized cross-entropy `(1 - p ** q) / q` for training with noisy labels.

    `q` near 0 behaves like cross-entropy, `q` near 1 like mean absolute error.

    Args:
        q: In (0, 1). Defaults to 0.5.
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"categorical_generalized_cross_entropy"`.
        dtype: See `Loss`. Defaults to `None`.
    """

    _integer_targets = True
    target_rule = ClassIndices()

    def __init__(
        self,
        q=0.5,
        reduction="sum_over_batch_size",
        name="categorical_generalized_cross_entropy",
        dtype=None,
    ):
        if not 0 < q < 1:
            raise ValueError(f"`q` must be in the interval (0, 1). Received: q={q!r}.")
        super().__init__(
            categorical_generalized_cross_entropy, name=name, reduction=reduction, dtype=dtype, q=q
        )
        self.q = q
