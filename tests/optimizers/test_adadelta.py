import math

import pytest
import torch

from torchfit.optimizers import Adadelta


def test_first_step_by_hand():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    optimizer = Adadelta([w], learning_rate=1.0, rho=0.5, epsilon=0.01)
    w.grad = torch.tensor([2.0])
    optimizer.step()
    squared_grad = 0.5 * 4.0
    delta = -math.sqrt(0.01) / math.sqrt(squared_grad + 0.01) * 2.0
    assert w.item() == pytest.approx(delta)
    assert optimizer.state[w]["accumulated_delta_var"].item() == pytest.approx(0.5 * delta**2)


def test_keras_defaults():
    optimizer = Adadelta()
    assert (optimizer.learning_rate, optimizer.rho, optimizer.epsilon) == (0.001, 0.95, 1e-7)
