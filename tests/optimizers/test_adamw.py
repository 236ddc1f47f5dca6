import pytest
import torch

from torchfit.optimizers import Adam, AdamW


def test_defaults_to_keras_weight_decay():
    assert AdamW().weight_decay == 0.004


def test_weight_decay_none_is_an_error():
    with pytest.raises(ValueError, match="weight_decay"):
        AdamW(weight_decay=None)


def test_equals_adam_with_weight_decay():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(4))
    b = torch.nn.Parameter(a.detach().clone())
    adamw = AdamW([a], learning_rate=0.1, weight_decay=0.3)
    adam = Adam([b], learning_rate=0.1, weight_decay=0.3)
    for _ in range(3):
        grad = torch.randn(4)
        a.grad, b.grad = grad, grad.clone()
        adamw.step()
        adam.step()
    torch.testing.assert_close(a, b)


def test_decay_shrinks_weights_with_zero_gradient():
    w = torch.nn.Parameter(torch.tensor([2.0]))
    w.grad = torch.tensor([0.0])
    AdamW([w], learning_rate=0.5, weight_decay=0.1).step()
    assert w.item() == pytest.approx(2.0 * (1 - 0.05))
