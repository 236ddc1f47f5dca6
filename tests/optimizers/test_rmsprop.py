import math

import pytest
import torch

from torchfit.optimizers import RMSprop


def _step(optimizer, w, grad):
    w.grad = torch.tensor([grad])
    optimizer.step()
    return w.item()


def test_keras_defaults():
    optimizer = RMSprop()
    assert (optimizer.learning_rate, optimizer.rho, optimizer.epsilon) == (0.001, 0.9, 1e-7)


def test_epsilon_is_inside_the_square_root():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    # v = 0.1 * 0.01 = 0.001; step = 0.1 * 0.1 / sqrt(0.001 + 0.01)
    got = _step(RMSprop([w], learning_rate=0.1, epsilon=0.01), w, 0.1)
    assert got == pytest.approx(-0.01 / math.sqrt(0.011))


def test_centered():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    # v = 0.1 * 4 = 0.4, a = 0.1 * 2 = 0.2, denominator = sqrt(0.4 - 0.04)
    got = _step(RMSprop([w], learning_rate=0.1, epsilon=0.0, centered=True), w, 2.0)
    assert got == pytest.approx(-0.2 / math.sqrt(0.36))


def test_momentum_accumulates_the_lr_scaled_increment():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    optimizer = RMSprop([w], learning_rate=0.1, epsilon=0.0, momentum=0.5)
    first = 0.1 * 1.0 / math.sqrt(0.1)
    second = 0.1 * 1.0 / math.sqrt(0.19)
    _step(optimizer, w, 1.0)
    assert _step(optimizer, w, 1.0) == pytest.approx(-(first + 0.5 * first + second))


def test_state_slots():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    optimizer = RMSprop([w], momentum=0.9, centered=True)
    _step(optimizer, w, 1.0)
    assert set(optimizer.state[w]) == {"velocity", "momentum", "average_gradient"}
