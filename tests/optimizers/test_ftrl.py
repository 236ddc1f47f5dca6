import math

import pytest
import torch

from torchfit.optimizers import Ftrl


def test_first_step_by_hand():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    optimizer = Ftrl([w], learning_rate=0.1, l1_regularization_strength=0.05)
    w.grad = torch.tensor([1.0])
    optimizer.step()
    # n: 0.1 -> 1.1, z = g = 1 (w was 0), w = (clip(z) - z) / (sqrt(1.1) / lr)
    assert w.item() == pytest.approx((0.05 - 1.0) / (math.sqrt(1.1) / 0.1), rel=1e-5)


def test_l1_keeps_small_weights_at_zero():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    optimizer = Ftrl([w], learning_rate=0.1, l1_regularization_strength=1.0)
    w.grad = torch.tensor([0.5])
    optimizer.step()
    assert w.item() == 0.0


@pytest.mark.parametrize(
    "argument",
    [
        {"learning_rate_power": 0.5},
        {"initial_accumulator_value": -1.0},
        {"l1_regularization_strength": -1.0},
        {"l2_regularization_strength": -1.0},
        {"l2_shrinkage_regularization_strength": -1.0},
    ],
)
def test_range_errors_name_the_argument(argument):
    (name,) = argument
    with pytest.raises(ValueError, match=name):
        Ftrl(**argument)
