import pytest
import torch

from torchfit.optimizers import Adamax


def test_two_steps_by_hand():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    optimizer = Adamax([w], learning_rate=0.1, epsilon=0.0)
    w.grad = torch.tensor([2.0])
    optimizer.step()
    assert w.item() == pytest.approx(-0.1)
    w.grad = torch.tensor([1.0])
    optimizer.step()
    m, u = 0.9 * 0.2 + 0.1, max(0.999 * 2.0, 1.0)
    assert w.item() == pytest.approx(-0.1 - 0.1 * m / ((1 - 0.81) * u))
