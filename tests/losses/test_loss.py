"""Tests for torchfit/losses/loss.py: the Loss base, reductions, weights, adapters."""

import numpy as np
import pytest
import torch
from torch import nn

from torchfit.losses import (
    Loss,
    LossFunctionWrapper,
    TorchLoss,
    reduce_weighted_values,
    squeeze_or_expand_to_same_rank,
)


class CustomMSE(Loss):
    """The guide's custom loss, written against torch."""

    def __init__(self, regularization_factor=0.1, name="custom_mse"):
        super().__init__(name=name)
        self.regularization_factor = regularization_factor

    def call(self, y_true, y_pred):
        mse = torch.mean(torch.square(y_true - y_pred), dim=-1)
        reg = torch.mean(torch.square(0.5 - y_pred), dim=-1)
        return mse + reg * self.regularization_factor


class AbsoluteError(Loss):
    def call(self, y_true, y_pred):
        return (y_true - y_pred).abs()


VALUES = torch.tensor([1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize(
    "reduction,expected",
    [("sum_over_batch_size", 2.5), ("mean", 2.5), ("sum", 10.0), ("mean_with_sample_weight", 2.5)],
)
def test_reductions_without_weights(reduction, expected):
    assert reduce_weighted_values(VALUES, reduction=reduction).item() == pytest.approx(expected)


@pytest.mark.parametrize("reduction", ["none", None])
def test_no_reduction_returns_weighted_values(reduction):
    out = reduce_weighted_values(VALUES, sample_weight=[1.0, 0.0, 1.0, 2.0], reduction=reduction)
    assert out.tolist() == [1.0, 0.0, 3.0, 8.0]


def test_sum_over_batch_size_divides_by_count_not_weight_sum():
    weights = torch.tensor([1.0, 0.0, 1.0, 2.0])
    assert reduce_weighted_values(VALUES, weights).item() == pytest.approx(12.0 / 4)
    assert reduce_weighted_values(
        VALUES, weights, reduction="mean_with_sample_weight"
    ).item() == pytest.approx(12.0 / 4.0)
    weights = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert reduce_weighted_values(
        VALUES, weights, reduction="mean_with_sample_weight"
    ).item() == pytest.approx(1.0)


def test_mean_with_zero_weights_is_zero_with_finite_gradient():
    values = VALUES.clone().requires_grad_()
    out = reduce_weighted_values(values, torch.zeros(4), reduction="mean_with_sample_weight")
    out.backward()
    assert out.item() == 0.0
    assert torch.isfinite(values.grad).all()


def test_python_number_weight_scales_and_is_the_mean_divisor():
    assert reduce_weighted_values(VALUES, 2).item() == pytest.approx(5.0)
    # Keras divides by sum(sample_weight), which for a scalar is the scalar.
    assert reduce_weighted_values(
        VALUES, 2.0, reduction="mean_with_sample_weight"
    ).item() == pytest.approx(10.0)
    assert reduce_weighted_values(VALUES, 0.0, reduction="mean_with_sample_weight").item() == 0.0


def test_mask_makes_mean_over_valid_entries():
    mask = torch.tensor([True, False, True, False])
    values = VALUES * mask
    assert reduce_weighted_values(values, mask=mask).item() == pytest.approx(2.0)
    assert reduce_weighted_values(values, mask=mask, reduction="sum").item() == pytest.approx(4.0)
    none_valid = torch.zeros(4, dtype=torch.bool)
    assert reduce_weighted_values(torch.zeros(4), mask=none_valid).item() == 0.0


def test_scalar_and_empty_values_are_not_reduced():
    assert reduce_weighted_values(torch.tensor(3.0), reduction="sum").item() == 3.0
    assert reduce_weighted_values(torch.zeros(0)).shape == (0,)


def test_invalid_reduction_is_a_value_error():
    with pytest.raises(ValueError, match="reduction"):
        reduce_weighted_values(VALUES, reduction="avg")
    with pytest.raises(ValueError, match="reduction"):
        AbsoluteError(reduction="avg")


def test_squeeze_or_expand_to_same_rank():
    a, b = squeeze_or_expand_to_same_rank(torch.zeros(3, 1), torch.zeros(3))
    assert a.shape == (3, 1) and b.shape == (3, 1)
    a, b = squeeze_or_expand_to_same_rank(torch.zeros(3, 4, 1), torch.zeros(3, 4))
    assert a.shape == (3, 4) and b.shape == (3, 4)
    a, b = squeeze_or_expand_to_same_rank(torch.zeros(3, 4), torch.zeros(3))
    assert a.shape == (3, 4) and b.shape == (3,)


def test_guide_custom_loss_subclass():
    loss = CustomMSE()
    assert loss.name == "custom_mse" and loss.reduction == "sum_over_batch_size"
    y_true, y_pred = torch.ones(2, 1), torch.zeros(2, 1, requires_grad=True)
    value = loss(y_true, y_pred)
    value.backward()
    assert value.item() == pytest.approx(1.0 + 0.1 * 0.25)
    assert y_pred.grad is not None


def test_default_name_is_snake_case_of_class():
    assert AbsoluteError().name == "absolute_error"
    assert AbsoluteError(name="l1").name == "l1"


def test_numpy_inputs_and_y_true_cast_to_y_pred():
    loss = AbsoluteError()
    out = loss(np.array([1, 2]), torch.tensor([0.0, 0.0], dtype=torch.float64))
    assert out.dtype == torch.float64 and out.item() == pytest.approx(1.5)
    out = loss(np.array([1.0, 2.0]), np.array([0.0, 0.0]))
    assert out.dtype == torch.float32


def test_half_precision_predictions_are_computed_in_float32():
    out = AbsoluteError()(torch.ones(2), torch.zeros(2, dtype=torch.float16))
    assert out.dtype == torch.float32


def test_dtype_argument():
    loss = AbsoluteError(dtype="float64")
    assert loss.dtype == torch.float64
    assert loss(torch.ones(2), torch.zeros(2)).dtype == torch.float64
    with pytest.raises(ValueError, match="dtype"):
        AbsoluteError(dtype="int8")


def test_sample_weight_array_and_per_element_weight():
    loss = AbsoluteError()
    y_true, y_pred = torch.ones(2, 3), torch.zeros(2, 3)
    assert loss(y_true, y_pred, sample_weight=np.array([[1.0], [0.0]])).item() == pytest.approx(0.5)
    assert loss(y_true, y_pred, sample_weight=torch.ones(2, 3) * 2).item() == pytest.approx(2.0)


def test_config_round_trip():
    loss = CustomMSE(name="mine")
    assert loss.get_config() == {"name": "mine", "reduction": "sum_over_batch_size"}
    rebuilt = AbsoluteError.from_config({"name": "x", "reduction": "sum"})
    assert rebuilt.name == "x" and rebuilt.reduction == "sum"


def test_call_is_abstract():
    with pytest.raises(NotImplementedError):
        Loss()(torch.ones(1), torch.ones(1))


def test_function_wrapper_matches_ranks_and_is_named_after_fn():
    def squared(y_true, y_pred):
        assert y_true.shape == y_pred.shape
        return (y_true - y_pred).square().mean(dim=-1)

    loss = LossFunctionWrapper(squared)
    assert loss.name == "squared"
    assert loss(torch.tensor([1.0, 3.0]), torch.zeros(2, 1)).item() == pytest.approx(5.0)
    assert loss.get_config()["fn"] == "squared"
    with pytest.raises(TypeError, match="fn"):
        LossFunctionWrapper(3)


def test_function_wrapper_passes_kwargs():
    loss = LossFunctionWrapper(lambda t, p, scale: (t - p).abs() * scale, name="scaled", scale=3.0)
    assert loss(torch.ones(2), torch.zeros(2)).item() == pytest.approx(3.0)


def test_torch_loss_calls_module_in_torch_order():
    calls = []

    class Recorder(nn.Module):
        def forward(self, input, target):
            calls.append((input.clone(), target.clone()))
            return (input - target).abs().mean()

    y_true, y_pred = torch.tensor([1.0, 2.0]), torch.tensor([5.0, 5.0])
    out = TorchLoss(Recorder())(y_true, y_pred)
    assert out.item() == pytest.approx(3.5)
    assert torch.equal(calls[0][0], y_pred) and torch.equal(calls[0][1], y_true)


def test_torch_loss_name_and_default_reduction():
    loss = TorchLoss(nn.CrossEntropyLoss())
    assert loss.name == "cross_entropy_loss"
    logits, labels = torch.randn(4, 3), torch.tensor([0, 2, 1, 1])
    assert torch.allclose(loss(labels, logits), nn.functional.cross_entropy(logits, labels))
    assert torch.allclose(loss(labels.numpy(), logits), nn.functional.cross_entropy(logits, labels))


def test_torch_loss_sample_weight_uses_keras_weighting():
    loss = TorchLoss(nn.CrossEntropyLoss())
    logits, labels = torch.randn(4, 3), torch.tensor([0, 2, 1, 1])
    weights = torch.tensor([1.0, 0.0, 2.0, 1.0])
    per_sample = nn.functional.cross_entropy(logits, labels, reduction="none")
    assert torch.allclose(
        loss(labels, logits, sample_weight=weights), (per_sample * weights).sum() / 4
    )
    assert loss.module.reduction == "mean"  # the user's module is untouched


@pytest.mark.parametrize("weights", [[0.5, 0.0, 3.0, 1.5], [0.25, 0.25, 0.0, 0.5]])
def test_torch_loss_sample_weight_divides_by_batch_size_not_weight_sum(weights):
    # Weights summing to 5 and to 1 (not 4): Keras's sum_over_batch_size divides by the
    # 4 samples; dividing by the weight sum (torch's weighted "mean") gives another number.
    loss = TorchLoss(nn.CrossEntropyLoss())
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 2, 1, 1])
    weights = torch.tensor(weights)
    weighted = nn.functional.cross_entropy(logits, labels, reduction="none") * weights
    result = loss(labels, logits, sample_weight=weights)
    assert torch.allclose(result, weighted.sum() / 4)
    assert not torch.allclose(result, weighted.sum() / weights.sum())


def test_torch_loss_casts_float_targets_and_rejects_non_modules():
    loss = TorchLoss(nn.MSELoss())
    assert loss(np.array([1.0, 3.0]), torch.zeros(2)).dtype == torch.float32
    with pytest.raises(TypeError, match="module"):
        TorchLoss(lambda a, b: a)


def test_torch_loss_config_round_trip():
    loss = TorchLoss(nn.CrossEntropyLoss(label_smoothing=0.1, ignore_index=3))
    config = loss.get_config()
    rebuilt = TorchLoss.from_config(config)
    assert rebuilt.module.label_smoothing == 0.1 and rebuilt.module.ignore_index == 3
    config["module"] = "os.system"
    with pytest.raises(ValueError, match="torch.nn"):
        TorchLoss.from_config(config)
