import pytest
import torch

from torchfit.optimizers import SGD


def _run(optimizer, w, grads):
    for grad in grads:
        w.grad = torch.tensor([grad])
        optimizer.step()
    return w.item()


def test_plain_step():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    assert _run(SGD([w], learning_rate=0.1), w, [2.0]) == pytest.approx(0.8)


def test_momentum_keeps_lr_inside_the_velocity():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    # v1 = -0.1; w = -0.1; v2 = 0.9 * -0.1 - 0.1 = -0.19; w = -0.29
    assert _run(SGD([w], learning_rate=0.1, momentum=0.9), w, [1.0, 1.0]) == pytest.approx(-0.29)


def test_nesterov():
    w = torch.nn.Parameter(torch.tensor([0.0]))
    # step 1: v = -0.1, w += 0.9 * v - 0.1 = -0.19
    # step 2: v = -0.19, w += 0.9 * -0.19 - 0.1 = -0.271 -> -0.461
    assert _run(
        SGD([w], learning_rate=0.1, momentum=0.9, nesterov=True), w, [1.0, 1.0]
    ) == pytest.approx(-0.461)


def test_momentum_range():
    with pytest.raises(ValueError, match="momentum"):
        SGD(momentum=1.5)


def test_config():
    config = SGD(momentum=0.5, nesterov=True).get_config()
    assert (config["learning_rate"], config["momentum"], config["nesterov"]) == (0.01, 0.5, True)
