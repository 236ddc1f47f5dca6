import math

import pytest
import torch

from torchfit.optimizers import Adagrad


def test_accumulator_starts_at_initial_value():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    optimizer = Adagrad([w], learning_rate=0.1)
    w.grad = torch.tensor([1.0])
    optimizer.step()
    assert optimizer.state[w]["accumulator"].item() == pytest.approx(1.1)
    assert w.item() == pytest.approx(-0.1 / math.sqrt(1.1 + 1e-7))


def test_config():
    config = Adagrad(initial_accumulator_value=0.5).get_config()
    assert (config["initial_accumulator_value"], config["epsilon"]) == (0.5, 1e-7)
