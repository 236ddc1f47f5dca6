import pytest
import torch

from torchfit.optimizers import Lion


def test_step_is_the_sign_of_the_interpolation():
    w = torch.nn.Parameter(torch.tensor([0.0, 0.0]))
    optimizer = Lion([w], learning_rate=0.1)
    w.grad = torch.tensor([1.0, -1.0])
    optimizer.step()  # m was 0: sign(0.1 * g) = sign(g)
    assert w.tolist() == pytest.approx([-0.1, 0.1])
    assert optimizer.state[w]["momentum"].tolist() == pytest.approx([0.01, -0.01])
    w.grad = torch.tensor([-0.05, 0.0])
    optimizer.step()  # 0.9 * 0.01 + 0.1 * -0.05 = 0.004 > 0
    assert w.tolist() == pytest.approx([-0.2, 0.2])


@pytest.mark.parametrize("beta_1", [0.0, 1.5])
def test_beta_1_range(beta_1):
    with pytest.raises(ValueError, match="beta_1"):
        Lion(beta_1=beta_1)
