import copy
import math

import pytest
import torch

from torchfit.optimizers import Nadam


def test_first_step_by_hand():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    optimizer = Nadam([w], learning_rate=0.1, epsilon=0.0)
    w.grad = torch.tensor([2.0])
    optimizer.step()
    u1, u2 = 0.9 * (1 - 0.5 * 0.96), 0.9 * (1 - 0.5 * 0.96**2)
    m_hat = u2 * 0.2 / (1 - u1 * u2) + (1 - u1) * 2.0 / (1 - u1)
    v_hat = 0.001 * 4.0 / (1 - 0.999)
    assert w.item() == pytest.approx(-0.1 * m_hat / math.sqrt(v_hat), rel=1e-5)


def test_u_product_is_saved_and_restored():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    optimizer = Nadam([w])
    for _ in range(3):
        w.grad = torch.tensor([1.0])
        optimizer.step()
    state = copy.deepcopy(optimizer.state_dict())
    assert state["torchfit"]["u_product"] == pytest.approx(optimizer._u_product)
    resumed = Nadam([torch.nn.Parameter(torch.tensor([0.0]))])
    resumed.load_state_dict(state)
    assert resumed._u_product == optimizer._u_product
    assert resumed.iterations == 3


def test_u_product_advances_once_per_step_with_several_groups():
    a, b = torch.nn.Parameter(torch.tensor([0.0])), torch.nn.Parameter(torch.tensor([0.0]))
    optimizer = Nadam([{"params": [a]}, {"params": [b]}])
    a.grad, b.grad = torch.tensor([1.0]), torch.tensor([1.0])
    optimizer.step()
    assert optimizer._u_product == pytest.approx(0.9 * (1 - 0.5 * 0.96))
    assert a.item() == b.item()
