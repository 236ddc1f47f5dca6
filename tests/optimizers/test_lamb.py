import pytest
import torch

import torchfit
from torchfit.optimizers import Lamb


def _step(weights, grads, **kwargs):
    params = [torch.nn.Parameter(torch.tensor(w)) for w in weights]
    optimizer = Lamb(params, **kwargs)
    for param, grad in zip(params, grads):
        param.grad = torch.tensor(grad)
    optimizer.step()
    return [p.detach() for p in params]


def test_each_parameter_moves_by_lr_times_its_own_norm():
    # At the first step u = g / (|g| + eps) elementwise; the trust ratio
    # ||w|| / ||u|| rescales it to a step of length lr * ||w|| per parameter.
    small, large = _step([[0.3, 0.4], [30.0, 40.0]], [[1.0, 1.0], [1.0, 1.0]], learning_rate=0.1)
    assert torch.linalg.norm(small - torch.tensor([0.3, 0.4])).item() == pytest.approx(
        0.05, rel=1e-5
    )
    assert torch.linalg.norm(large - torch.tensor([30.0, 40.0])).item() == pytest.approx(
        5.0, rel=1e-5
    )


def test_zero_weights_take_the_plain_step():
    (w,) = _step([[0.0, 0.0]], [[2.0, -0.5]], learning_rate=0.1)
    torch.testing.assert_close(w, torch.tensor([-0.1, 0.1]), rtol=1e-5, atol=1e-7)


def test_a_zero_update_leaves_nonzero_weights_alone():
    # ||u|| = 0: the ratio is 1 (not ||w|| / 0), so nothing moves and nothing is NaN.
    w, v = _step([[3.0, 4.0], [1.0]], [[0.0, 0.0], [1.0]], learning_rate=0.1)
    assert w.tolist() == [3.0, 4.0]
    assert v.tolist() == pytest.approx([0.9], rel=1e-5)


def test_epsilon_is_added_to_the_bias_corrected_root():
    # m_hat = g and sqrt(v_hat) = |g| at the first step: with epsilon = 1 the
    # direction is g / (|g| + 1) = (0.5, 2/3), not Adam's g / (sqrt(v) + eps).
    (w,) = _step([[3.0, 4.0]], [[1.0, 2.0]], learning_rate=0.1, epsilon=1.0)
    direction = torch.tensor([0.5, 2.0 / 3.0])
    expected = torch.tensor([3.0, 4.0]) - 0.1 * 5.0 * direction / torch.linalg.norm(direction)
    torch.testing.assert_close(w, expected, rtol=1e-6, atol=1e-7)


def test_lamb_has_no_string_id_as_in_keras_but_deserializes():
    with pytest.raises(ValueError, match="Lamb has no string id"):
        torchfit.optimizers.get("lamb")
    config = torchfit.optimizers.serialize(Lamb(beta_1=0.8))
    assert config["registered_name"] is None
    rebuilt = torchfit.optimizers.deserialize(config)
    assert type(rebuilt) is Lamb and rebuilt.beta_1 == 0.8
