"""Keras 3's regression, hinge, segmentation, similarity and sequence losses.

Owns the formulas and classes of `MeanSquaredError`, `MeanAbsoluteError`,
`MeanAbsolutePercentageError`, `MeanSquaredLogarithmicError`,
`CosineSimilarity`, `Huber`, `LogCosh`, `Hinge`, `SquaredHinge`,
`CategoricalHinge`, `Dice`, `Tversky`, `Circle` and `CTC`, with their
function forms. Cross-entropies, KL divergence and Poisson live in
probabilistic.py; weighting and reduction live in loss.py.

Each function returns unreduced losses, reducing the last axis as Keras does.
The classes whose per-sample mean equals an overall mean also take a one-op
fast path (`F.mse_loss`, ...) when called without weights.
"""

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from torchfit.losses.loss import (
    LossFunctionWrapper,
    as_tensor,
    squeeze_or_expand_to_same_rank,
)
from torchfit.losses.targets import SAME_SHAPE

EPSILON = 1e-7  # Keras's backend.epsilon()
_LOG_2 = math.log(2.0)


def _pair(y_true: Any, y_pred: Any) -> tuple[Tensor, Tensor]:
    """Returns `(y_true, y_pred)` as tensors, y_true in y_pred's dtype and device."""
    y_pred = as_tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.float()
    return as_tensor(y_true, device=y_pred.device, dtype=y_pred.dtype), y_pred


def _same_rank_pair(y_true: Any, y_pred: Any) -> tuple[Tensor, Tensor]:
    y_true, y_pred = _pair(y_true, y_pred)
    return squeeze_or_expand_to_same_rank(y_true, y_pred)


# ---------------------------------------------------------------- regression


def mean_squared_error(y_true: Any, y_pred: Any) -> Tensor:
    """`mean((y_true - y_pred) ** 2, axis=-1)`."""
    y_true, y_pred = _same_rank_pair(y_true, y_pred)
    return (y_true - y_pred).square().mean(dim=-1)


def mean_absolute_error(y_true: Any, y_pred: Any) -> Tensor:
    """`mean(abs(y_true - y_pred), axis=-1)`."""
    y_true, y_pred = _same_rank_pair(y_true, y_pred)
    return (y_true - y_pred).abs().mean(dim=-1)


def mean_absolute_percentage_error(y_true: Any, y_pred: Any) -> Tensor:
    """`100 * mean(abs((y_true - y_pred) / max(abs(y_true), 1e-7)), axis=-1)`."""
    y_true, y_pred = _same_rank_pair(y_true, y_pred)
    diff = ((y_true - y_pred) / y_true.abs().clamp_min(EPSILON)).abs()
    return 100.0 * diff.mean(dim=-1)


def mean_squared_logarithmic_error(y_true: Any, y_pred: Any) -> Tensor:
    """`mean((log(max(y_pred, 1e-7) + 1) - log(max(y_true, 1e-7) + 1)) ** 2, axis=-1)`."""
    y_true, y_pred = _same_rank_pair(y_true, y_pred)
    first_log = torch.log(y_pred.clamp_min(EPSILON) + 1.0)
    second_log = torch.log(y_true.clamp_min(EPSILON) + 1.0)
    return (first_log - second_log).square().mean(dim=-1)


def _l2_normalize(x: Tensor, axis) -> Tensor:
    # Keras multiplies by rsqrt(sum of squares), capped at 1 / epsilon.
    inverse_norm = torch.rsqrt(x.square().sum(dim=axis, keepdim=True)).clamp_max(1.0 / EPSILON)
    return x * inverse_norm


def cosine_similarity(y_true: Any, y_pred: Any, axis: int = -1) -> Tensor:
    """Negative cosine similarity along `axis`: -1 is best, 0 orthogonal."""
    y_true, y_pred = _same_rank_pair(y_true, y_pred)
    return -(_l2_normalize(y_true, axis) * _l2_normalize(y_pred, axis)).sum(dim=axis)


def huber(y_true: Any, y_pred: Any, delta: float = 1.0) -> Tensor:
    """Mean over the last axis of `0.5 e^2` if `|e| <= delta` else `delta (|e| - 0.5 delta)`."""
    y_true, y_pred = _same_rank_pair(y_true, y_pred)
    return F.huber_loss(y_pred, y_true, reduction="none", delta=float(delta)).mean(dim=-1)


def log_cosh(y_true: Any, y_pred: Any) -> Tensor:
    """`mean(log(cosh(y_pred - y_true)), axis=-1)`, computed without overflow."""
    y_true, y_pred = _same_rank_pair(y_true, y_pred)
    error = y_pred - y_true
    return (error + F.softplus(error * -2.0) - _LOG_2).mean(dim=-1)


# --------------------------------------------------------------------- hinge


def _hinge_labels(y_true: Tensor) -> Tensor:
    """Maps {0, 1} labels to {-1, 1}; labels that are not all 0/1 pass unchanged.

    Keras decides with a data-dependent `cond`; a `where` on the 0-d test
    keeps the decision on the device.
    """
    is_binary = ((y_true == 0) | (y_true == 1)).all()
    return torch.where(is_binary, 2.0 * y_true - 1.0, y_true)


def hinge(y_true: Any, y_pred: Any) -> Tensor:
    """`mean(max(1 - y_true * y_pred, 0), axis=-1)`; y_true in {-1, 1} or {0, 1}."""
    y_true, y_pred = _pair(y_true, y_pred)
    return (1.0 - _hinge_labels(y_true) * y_pred).clamp_min(0.0).mean(dim=-1)


def squared_hinge(y_true: Any, y_pred: Any) -> Tensor:
    """`mean(max(1 - y_true * y_pred, 0) ** 2, axis=-1)`."""
    y_true, y_pred = _pair(y_true, y_pred)
    return (1.0 - _hinge_labels(y_true) * y_pred).clamp_min(0.0).square().mean(dim=-1)


def categorical_hinge(y_true: Any, y_pred: Any) -> Tensor:
    """`max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)` over the last axis."""
    y_true, y_pred = _pair(y_true, y_pred)
    positive = (y_true * y_pred).sum(dim=-1)
    negative = ((1.0 - y_true) * y_pred).amax(dim=-1)
    return (negative - positive + 1.0).clamp_min(0.0)


# -------------------------------------------------------------- segmentation


def _sum(x: Tensor, axis) -> Tensor:
    return x.sum() if axis is None else x.sum(dim=axis)


def dice(y_true: Any, y_pred: Any, axis=None) -> Tensor:
    """`1 - 2 sum(y_true y_pred) / (sum(y_true) + sum(y_pred) + 1e-7)` over `axis`."""
    y_true, y_pred = _pair(y_true, y_pred)
    intersection = _sum(y_true * y_pred, axis)
    return 1.0 - 2.0 * intersection / (_sum(y_true, axis) + _sum(y_pred, axis) + EPSILON)


def tversky(y_true: Any, y_pred: Any, alpha: float = 0.5, beta: float = 0.5, axis=None) -> Tensor:
    """`1 - TP / (TP + alpha A + beta B + 1e-7)`, with soft counts over `axis`.

    As in Keras, `A = sum((1 - y_pred) * y_true)` (Keras calls it false
    positives; it counts missed positives) and `B = sum(y_pred * (1 - y_true))`.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    intersection = _sum(y_true * y_pred, axis)
    missed = _sum((1.0 - y_pred) * y_true, axis)
    spurious = _sum(y_pred * (1.0 - y_true), axis)
    denominator = intersection + missed * alpha + spurious * beta + EPSILON
    return 1.0 - intersection / denominator


# ---------------------------------------------------------------- similarity


def _circle_and_mask(
    y_true,
    y_pred,
    ref_labels=None,
    ref_embeddings=None,
    remove_diagonal=True,
    gamma=80.0,
    margin=0.4,
):
    y_pred = as_tensor(y_pred)
    y_true = as_tensor(y_true, device=y_pred.device, dtype=torch.long)
    ref_embeddings = (
        y_pred
        if ref_embeddings is None
        else as_tensor(ref_embeddings, device=y_pred.device, dtype=y_pred.dtype)
    )
    ref_labels = (
        y_true
        if ref_labels is None
        else as_tensor(ref_labels, device=y_pred.device, dtype=torch.long)
    )

    distances = (1.0 - y_pred @ ref_embeddings.T).clamp_min(0.0)
    positive_mask = y_true.reshape(-1, 1) == ref_labels.reshape(1, -1)
    negative_mask = ~positive_mask
    if remove_diagonal:
        eye = torch.eye(
            positive_mask.shape[0], positive_mask.shape[1], dtype=torch.bool, device=y_pred.device
        )
        positive_mask = positive_mask & ~eye
    positive_weights = ((margin + distances) * positive_mask).clamp_min(0.0)
    negative_weights = ((1.0 + margin - distances) * negative_mask).clamp_min(0.0)
    positive_logits = -gamma * positive_weights * (margin - distances)
    negative_logits = gamma * negative_weights * ((1.0 - margin) - distances)
    minus_inf = torch.tensor(float("-inf"), dtype=distances.dtype, device=distances.device)
    positive_loss = torch.logsumexp(torch.where(positive_mask, positive_logits, minus_inf), dim=1)
    negative_loss = torch.logsumexp(torch.where(negative_mask, negative_logits, minus_inf), dim=1)
    losses = F.softplus(positive_loss + negative_loss)
    return losses, losses > 0


def circle(
    y_true: Any,
    y_pred: Any,
    ref_labels=None,
    ref_embeddings=None,
    remove_diagonal: bool = True,
    gamma: float = 80.0,
    margin: float = 0.4,
) -> Tensor:
    """Circle loss of L2-normalized embeddings `y_pred` with integer labels `y_true`.

    Pairs with the same label are pulled together and the others pushed apart,
    each pair weighted by how far it is from its optimum. Compares against
    `ref_embeddings`/`ref_labels` when given, else within the batch.
    """
    return _circle_and_mask(
        y_true, y_pred, ref_labels, ref_embeddings, remove_diagonal, gamma, margin
    )[0]


# ------------------------------------------------------------------ sequence


def ctc(y_true: Any, y_pred: Any) -> Tensor:
    """Connectionist temporal classification loss per sample.

    Args:
        y_true: Integer labels `(batch, max_label_length)`, padded with 0 (the blank).
        y_pred: Logits `(batch, time, num_classes)`.
    """
    y_pred = as_tensor(y_pred)
    y_true = as_tensor(y_true, device=y_pred.device, dtype=torch.long)
    if y_true.dim() != 2:
        raise ValueError(
            "`y_true` must be integer labels of shape (batch_size, max_length)."
            f" Received: y_true.shape={tuple(y_true.shape)}."
        )
    if y_pred.dim() != 3:
        raise ValueError(
            "`y_pred` must be logits of shape (batch_size, max_length, num_classes)."
            f" Received: y_pred.shape={tuple(y_pred.shape)}."
        )
    if y_pred.dtype not in (torch.float32, torch.float64):
        y_pred = y_pred.float()
    batch_size, time_steps = y_pred.shape[0], y_pred.shape[1]
    input_lengths = torch.full((batch_size,), time_steps, dtype=torch.long, device=y_pred.device)
    target_lengths = (y_true != 0).sum(dim=-1)
    log_probs = F.log_softmax(y_pred.transpose(0, 1), dim=-1)
    return F.ctc_loss(log_probs, y_true, input_lengths, target_lengths, blank=0, reduction="none")


# ------------------------------------------------------------------- classes


class _MeanFastPath:
    """Mixin: without weights, the mean reductions equal one torch mean-op call.

    Applies when y_true and y_pred have the same shape after rank matching:
    then the mean over the last axis followed by the mean over the batch is
    the mean over all elements.
    """

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is None and self.reduction in (
            "sum_over_batch_size",
            "mean",
            "mean_with_sample_weight",
        ):
            y_true, y_pred = self._convert_inputs(y_true, y_pred)
            y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
            if y_true.shape == y_pred.shape and y_pred.dim() > 0 and y_pred.numel() > 0:
                return self._fast(y_true, y_pred)
        return super().__call__(y_true, y_pred, sample_weight)


class MeanSquaredError(_MeanFastPath, LossFunctionWrapper):
    """Mean of squares of errors between labels and predictions.

    Args:
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"mean_squared_error"`.
        dtype: See `Loss`. Defaults to `None`.

    Example:
        >>> float(MeanSquaredError()(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]])))
        0.5
    """

    target_rule = SAME_SHAPE

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, reduction=reduction, dtype=dtype)

    def _fast(self, y_true, y_pred):
        return F.mse_loss(y_pred, y_true)


class MeanAbsoluteError(_MeanFastPath, LossFunctionWrapper):
    """Mean of absolute errors between labels and predictions.

    Args:
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"mean_absolute_error"`.
        dtype: See `Loss`. Defaults to `None`.
    """

    target_rule = SAME_SHAPE

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name=name, reduction=reduction, dtype=dtype)

    def _fast(self, y_true, y_pred):
        return F.l1_loss(y_pred, y_true)


class MeanAbsolutePercentageError(LossFunctionWrapper):
    """`100 * mean(abs((y_true - y_pred) / y_true))`, the divisor at least 1e-7.

    Args:
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"mean_absolute_percentage_error"`.
        dtype: See `Loss`. Defaults to `None`.
    """

    target_rule = SAME_SHAPE

    def __init__(
        self, reduction="sum_over_batch_size", name="mean_absolute_percentage_error", dtype=None
    ):
        super().__init__(
            mean_absolute_percentage_error, name=name, reduction=reduction, dtype=dtype
        )


class MeanSquaredLogarithmicError(LossFunctionWrapper):
    """Mean squared error of `log(x + 1)`, inputs floored at 1e-7.

    Args:
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"mean_squared_logarithmic_error"`.
        dtype: See `Loss`. Defaults to `None`.
    """

    target_rule = SAME_SHAPE

    def __init__(
        self, reduction="sum_over_batch_size", name="mean_squared_logarithmic_error", dtype=None
    ):
        super().__init__(
            mean_squared_logarithmic_error, name=name, reduction=reduction, dtype=dtype
        )


class CosineSimilarity(LossFunctionWrapper):
    """Negative cosine similarity between labels and predictions.

    Args:
        axis: Axis along which the similarity is computed. Defaults to -1.
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"cosine_similarity"`.
        dtype: See `Loss`. Defaults to `None`.
    """

    target_rule = SAME_SHAPE

    def __init__(
        self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity", dtype=None
    ):
        super().__init__(cosine_similarity, name=name, reduction=reduction, dtype=dtype, axis=axis)
        self.axis = axis


class Huber(_MeanFastPath, LossFunctionWrapper):
    """Huber loss: quadratic for errors up to `delta`, linear beyond.

    Args:
        delta: Where the loss turns from quadratic to linear. Defaults to 1.0.
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"huber_loss"`.
        dtype: See `Loss`. Defaults to `None`.
    """

    target_rule = SAME_SHAPE

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss", dtype=None):
        super().__init__(huber, name=name, reduction=reduction, dtype=dtype, delta=delta)
        self.delta = delta

    def _fast(self, y_true, y_pred):
        return F.huber_loss(y_pred, y_true, delta=float(self.delta))


class LogCosh(LossFunctionWrapper):
    """Logarithm of the hyperbolic cosine of the prediction error.

    Args:
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"log_cosh"`.
        dtype: See `Loss`. Defaults to `None`.
    """

    target_rule = SAME_SHAPE

    def __init__(self, reduction="sum_over_batch_size", name="log_cosh", dtype=None):
        super().__init__(log_cosh, name=name, reduction=reduction, dtype=dtype)


class Hinge(LossFunctionWrapper):
    """`max(1 - y_true * y_pred, 0)`; {0, 1} labels are mapped to {-1, 1}.

    Args:
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"hinge"`.
        dtype: See `Loss`. Defaults to `None`.
    """

    target_rule = SAME_SHAPE

    def __init__(self, reduction="sum_over_batch_size", name="hinge", dtype=None):
        super().__init__(hinge, name=name, reduction=reduction, dtype=dtype)


class SquaredHinge(LossFunctionWrapper):
    """`max(1 - y_true * y_pred, 0) ** 2`; {0, 1} labels are mapped to {-1, 1}.

    Args:
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"squared_hinge"`.
        dtype: See `Loss`. Defaults to `None`.
    """

    target_rule = SAME_SHAPE

    def __init__(self, reduction="sum_over_batch_size", name="squared_hinge", dtype=None):
        super().__init__(squared_hinge, name=name, reduction=reduction, dtype=dtype)


class CategoricalHinge(LossFunctionWrapper):
    """`max(neg - pos + 1, 0)`, `pos = sum(y_true * y_pred)`, `neg = max((1 - y_true) * y_pred)`.

    Args:
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"categorical_hinge"`.
        dtype: See `Loss`. Defaults to `None`.
    """

    target_rule = SAME_SHAPE

    def __init__(self, reduction="sum_over_batch_size", name="categorical_hinge", dtype=None):
        super().__init__(categorical_hinge, name=name, reduction=reduction, dtype=dtype)


class Dice(LossFunctionWrapper):
    """Dice loss `1 - 2|A∩B| / (|A| + |B|)` with soft counts.

    Args:
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"dice"`.
        axis: Axes to sum over; `None` sums everything into one value. Defaults to None.
        dtype: See `Loss`. Defaults to `None`.
    """

    target_rule = SAME_SHAPE

    def __init__(self, reduction="sum_over_batch_size", name="dice", axis=None, dtype=None):
        super().__init__(dice, name=name, reduction=reduction, dtype=dtype, axis=axis)
        self.axis = axis


class Tversky(LossFunctionWrapper):
    """Tversky loss: Dice with the two kinds of error weighted by `alpha` and `beta`.

    Keras's convention is kept: `alpha` weighs `sum((1 - y_pred) * y_true)`
    and `beta` weighs `sum(y_pred * (1 - y_true))`.

    Args:
        alpha: Weight of `sum((1 - y_pred) * y_true)`. Defaults to 0.5.
        beta: Weight of `sum(y_pred * (1 - y_true))`. Defaults to 0.5.
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"tversky"`.
        axis: Axes to sum over; `None` sums everything. Defaults to None.
        dtype: See `Loss`. Defaults to `None`.
    """

    target_rule = SAME_SHAPE

    def __init__(
        self,
        alpha=0.5,
        beta=0.5,
        reduction="sum_over_batch_size",
        name="tversky",
        axis=None,
        dtype=None,
    ):
        super().__init__(
            tversky, name=name, reduction=reduction, dtype=dtype, alpha=alpha, beta=beta, axis=axis
        )
        self.alpha, self.beta, self.axis = alpha, beta, axis


class Circle(LossFunctionWrapper):
    """Circle loss for metric learning on L2-normalized embeddings.

    Only samples with a positive loss count in the mean reductions, as Keras
    masks the zero ones.

    Args:
        gamma: Scale factor. Defaults to 80.0.
        margin: Relaxation margin. Defaults to 0.4.
        remove_diagonal: Whether a sample is not its own positive pair. Defaults to True.
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"circle"`.
        dtype: See `Loss`. Defaults to `None`.
    """

    _integer_targets = True

    def __init__(
        self,
        gamma=80.0,
        margin=0.4,
        remove_diagonal=True,
        reduction="sum_over_batch_size",
        name="circle",
        dtype=None,
    ):
        super().__init__(
            circle,
            name=name,
            reduction=reduction,
            dtype=dtype,
            gamma=gamma,
            margin=margin,
            remove_diagonal=remove_diagonal,
        )
        self.gamma, self.margin, self.remove_diagonal = gamma, margin, remove_diagonal

    def _call_with_mask(self, y_true, y_pred):
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return _circle_and_mask(
            y_true, y_pred, None, None, self.remove_diagonal, self.gamma, self.margin
        )


class CTC(LossFunctionWrapper):
    """Connectionist temporal classification loss; 0 is the blank and the padding.

    Args:
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `"ctc"`.
        dtype: See `Loss`. Defaults to `None`.
    """

    _integer_targets = True

    def __init__(self, reduction="sum_over_batch_size", name="ctc", dtype=None):
        super().__init__(ctc, name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return ctc(y_true, y_pred)
