"""Tests for torchfit.optimizers._ema: the moving average of the weights."""

import pytest
import torch

from torchfit.optimizers import _ema


@pytest.mark.parametrize(
    ("momentum", "frequency", "match"),
    [
        (1.5, None, "ema_momentum"),
        (-0.1, None, "ema_momentum"),
        (0.9, 0, "ema_overwrite_frequency"),
        (0.9, 1.5, "ema_overwrite_frequency"),
    ],
)
def test_bad_arguments(momentum, frequency, match):
    with pytest.raises(ValueError, match=match):
        _ema.check_arguments(momentum, frequency)


def test_good_arguments():
    _ema.check_arguments(0.0, None)
    _ema.check_arguments(1.0, 3)


def test_first_update_copies_the_weights_then_averages():
    params, averages = [torch.tensor([4.0])], [torch.tensor([100.0])]
    _ema.update(params, averages, momentum=0.75, iterations=0)
    assert averages[0].tolist() == [4.0]
    params[0].fill_(8.0)
    _ema.update(params, averages, momentum=0.75, iterations=1)
    assert averages[0].tolist() == [5.0]  # 0.75 * 4 + 0.25 * 8
    assert params[0].tolist() == [8.0]


def test_overwrite_frequency_copies_the_average_into_the_weights():
    params, averages = [torch.tensor([2.0])], [torch.tensor([0.0])]
    _ema.update(params, averages, momentum=0.5, iterations=1, overwrite_frequency=3)
    assert params[0].tolist() == [2.0]
    _ema.update(params, averages, momentum=0.5, iterations=2, overwrite_frequency=3)
    assert params[0].tolist() == averages[0].tolist() == [1.5]


def test_swap_twice_restores():
    params, averages = [torch.tensor([1.0, 2.0])], [torch.tensor([3.0, 4.0])]
    weights, average = params[0], averages[0]
    _ema.swap(params, averages)
    assert (weights.tolist(), average.tolist()) == ([3.0, 4.0], [1.0, 2.0])
    _ema.swap(params, averages)
    assert (weights.tolist(), average.tolist()) == ([1.0, 2.0], [3.0, 4.0])
    _ema.swap([], [])  # nothing to swap is not an error
