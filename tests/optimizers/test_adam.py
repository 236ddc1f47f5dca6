import math

import pytest
import torch

from torchfit.optimizers import Adam


def _step(optimizer, w, grad):
    w.grad = torch.tensor([grad])
    optimizer.step()
    return w.item()


def test_first_step_uses_the_epsilon_hat_form():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    epsilon = 0.1
    # m = 0.1 g, v = 0.001 g^2, alpha = lr sqrt(0.001) / 0.1
    alpha = 0.01 * math.sqrt(1 - 0.999) / (1 - 0.9)
    expected = -alpha * 0.1 * 0.5 / (math.sqrt(0.001 * 0.25) + epsilon)
    assert _step(Adam([w], learning_rate=0.01, epsilon=epsilon), w, 0.5) == pytest.approx(expected)


def test_amsgrad_keeps_the_maximum_velocity():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    optimizer = Adam([w], amsgrad=True)
    _step(optimizer, w, 10.0)
    _step(optimizer, w, 0.0)
    state = optimizer.state[w]
    assert state["velocity_hat"].item() == pytest.approx(0.1)
    assert state["velocity"].item() < state["velocity_hat"].item()


def test_config_round_trip():
    optimizer = Adam(learning_rate=0.02, beta_1=0.8, amsgrad=True, clipnorm=1.0)
    rebuilt = Adam.from_config(optimizer.get_config())
    assert rebuilt.get_config() | {"name": None} == optimizer.get_config() | {"name": None}
