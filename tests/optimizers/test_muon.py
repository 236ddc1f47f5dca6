import warnings

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit.optimizers import Muon


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)  # a torch name without "embedding"
        self.token_Embedding = nn.Embedding(10, 4)
        self.conv = nn.Conv1d(4, 4, 3)
        self.hidden = nn.Linear(4, 6)
        self.head = nn.Linear(6, 3)


def _fallback(optimizer, module):
    return sorted(name for name, p in module.named_parameters() if "velocity" in optimizer.state[p])


def _one_step(optimizer, module):
    for p in module.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()


@pytest.mark.parametrize(
    "kwargs, fallback",
    [
        ({}, ["conv.bias", "conv.weight", "head.bias", "hidden.bias", "token_Embedding.weight"]),
        ({"exclude_layers": [r"^head\."]},
         ["conv.bias", "conv.weight", "head.bias", "head.weight", "hidden.bias",
          "token_Embedding.weight"]),
        # exclude_layers is a case-sensitive re.search, as in Keras.
        ({"exclude_embeddings": False, "exclude_layers": ["embed"]},
         ["conv.bias", "conv.weight", "embed.weight", "head.bias", "hidden.bias"]),
        ({"exclude_embeddings": False}, ["conv.bias", "conv.weight", "head.bias", "hidden.bias"]),
    ],
)  # fmt: skip
def test_fallback_goes_by_rank_embedding_name_and_exclude_layers(kwargs, fallback):
    net = _Net()
    optimizer = Muon(net.named_parameters(), **kwargs)
    _one_step(optimizer, net)
    assert _fallback(optimizer, net) == fallback


def test_unnamed_parameters_warn_that_embeddings_cannot_be_told_apart():
    net = _Net()
    with pytest.warns(UserWarning, match="named_parameters"):
        Muon(net.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Muon(net.parameters(), exclude_embeddings=False)
        Muon([torch.nn.Parameter(torch.zeros(3))])  # no matrix: nothing to tell apart


def test_only_unnamed_matrices_make_the_warning():
    with pytest.warns(UserWarning, match="named_parameters"):
        Muon(nn.Linear(3, 2).parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Muon(nn.Conv1d(2, 2, 3).parameters())  # 3-D and 1-D only: all take the fallback


def test_exclude_layers_needs_names():
    with pytest.raises(ValueError, match="named_parameters"):
        Muon(_Net().parameters(), exclude_layers=["head"])


def test_exclude_layers_must_be_a_list_of_strings_and_is_copied():
    with pytest.raises(TypeError, match="exclude_layers"):
        Muon(exclude_layers="head")
    patterns = ("head",)
    optimizer = Muon(exclude_layers=patterns)
    assert optimizer.get_config()["exclude_layers"] == ["head"]
    patterns = ["head"]
    optimizer = Muon(exclude_layers=patterns)
    patterns.append("hidden")
    assert optimizer.exclude_layers == ["head"]


def _quintic(sigma, steps=5, a=3.4445, b=-4.7750, c=2.0315):
    for _ in range(steps):
        sigma = a * sigma + b * sigma**3 + c * sigma**5
    return sigma


@pytest.mark.parametrize("nesterov", [True, False])
def test_two_muon_steps_on_a_row_by_hand(nesterov):
    # A 1 x 4 matrix has one singular value: Newton-Schulz maps d to
    # quintic^5(|d| / (|d| + 1e-7)) * d / |d|, and the update is scaled by
    # lr * sqrt(max(1, 4)) * rms_rate = 0.1 * 2 * 0.2.
    w = nn.Parameter(torch.zeros(1, 4))
    optimizer = Muon([("w", w)], learning_rate=0.1, weight_decay=None, nesterov=nesterov)
    g1, g2 = np.array([1.0, 0.0, 0.0, 0.0]), np.array([0.0, 2.0, 0.0, 0.0])
    m1 = g1
    m2 = 0.95 * m1 + g2
    directions = [g1 + 0.95 * m1, g2 + 0.95 * m2] if nesterov else [m1, m2]
    expected = np.zeros(4)
    for grad, d in zip((g1, g2), directions):
        w.grad = torch.tensor(grad[None], dtype=torch.float32)
        optimizer.step()
        norm = np.linalg.norm(d)
        expected -= 0.1 * 2 * 0.2 * _quintic(norm / (norm + 1e-7)) * d / norm
        np.testing.assert_allclose(w.detach().numpy()[0], expected, rtol=1e-5, atol=1e-7)


def test_fallback_is_keras_adam_at_the_adam_learning_rate():
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=3) for _ in range(3)]
    w = nn.Parameter(torch.tensor([0.5, -1.0, 2.0]))
    optimizer = Muon([("w", w)], learning_rate=0.2, adam_lr_ratio=0.5, adam_weight_decay=None,
                     adam_beta_1=0.8, adam_beta_2=0.9, epsilon=1e-3)  # fmt: skip
    expected, m, v = np.array([0.5, -1.0, 2.0]), np.zeros(3), np.zeros(3)
    for t, g in enumerate(grads, start=1):
        w.grad = torch.tensor(g, dtype=torch.float32)
        optimizer.step()
        m = m + (g - m) * 0.2
        v = v + (g**2 - v) * 0.1
        alpha = 0.1 * np.sqrt(1 - 0.9**t) / (1 - 0.8**t)
        expected = expected - m * alpha / (np.sqrt(v) + 1e-3)
        np.testing.assert_allclose(w.detach().numpy(), expected, rtol=1e-5, atol=1e-7)


def test_each_kind_of_parameter_gets_its_own_weight_decay():
    # Zero gradients: neither rule moves the weights, so only the decay does.
    matrix, vector = nn.Parameter(torch.ones(2, 3)), nn.Parameter(torch.ones(3))
    optimizer = Muon([("m", matrix), ("v", vector)], learning_rate=0.1, weight_decay=0.5,
                     adam_weight_decay=0.2)  # fmt: skip
    matrix.grad, vector.grad = torch.zeros(2, 3), torch.zeros(3)
    optimizer.step()
    torch.testing.assert_close(matrix.detach(), torch.full((2, 3), 0.95))
    torch.testing.assert_close(vector.detach(), torch.full((3,), 0.98))
    optimizer = Muon([("m", matrix), ("v", vector)], learning_rate=0.1, weight_decay=None,
                     adam_weight_decay=0.2)  # fmt: skip
    optimizer.exclude_from_weight_decay(var_names=["v"])
    optimizer.step()
    torch.testing.assert_close(matrix.detach(), torch.full((2, 3), 0.95))
    torch.testing.assert_close(vector.detach(), torch.full((3,), 0.98))


def test_newton_schulz_orthogonalizes_and_is_transpose_symmetric():
    torch.manual_seed(0)
    x = torch.randn(8, 5) @ torch.diag(torch.tensor([10.0, 3.0, 1.0, 0.5, 0.2]))
    assert torch.linalg.svdvals(x).max() / torch.linalg.svdvals(x).min() > 20
    orthogonal = Muon().zeropower_via_newtonschulz5(x, 5)
    singular_values = torch.linalg.svdvals(orthogonal)
    assert singular_values.min() > 0.5 and singular_values.max() < 1.3  # all near 1
    transposed = Muon().zeropower_via_newtonschulz5(x.T, 5)
    torch.testing.assert_close(transposed, orthogonal.T, rtol=0, atol=0)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        Muon().zeropower_via_newtonschulz5(torch.ones(3), 5)


def test_muon_update_is_scaled_by_rms_rate_and_the_larger_side():
    w = nn.Parameter(torch.zeros(4, 9))
    grad = torch.randn(4, 9, generator=torch.Generator().manual_seed(1))
    steps = []
    for rms_rate in (None, 0.2):
        w.data.zero_()
        optimizer = Muon([("w", w)], learning_rate=0.1, rms_rate=rms_rate, weight_decay=None)
        w.grad = grad.clone()
        optimizer.step()
        steps.append(w.detach().clone())
    torch.testing.assert_close(steps[1], steps[0] * 3.0 * 0.2)  # sqrt(max(4, 9)) = 3


def test_compile_builds_muon_with_the_module_names():
    net = nn.Sequential()
    net.add_module("embedding", nn.Embedding(6, 4))
    net.add_module("flatten", nn.Flatten())
    net.add_module("hidden", nn.Linear(8, 5))
    net.add_module("output", nn.Linear(5, 1))
    model = torchfit.Model(net, device="cpu")
    optimizer = Muon(learning_rate=0.01, exclude_layers=["output"])
    model.compile(optimizer=optimizer, loss="mse")
    x = np.random.default_rng(0).integers(0, 6, size=(16, 2))
    model.fit(x, np.zeros((16, 1), "float32"), batch_size=8, verbose=0)
    assert optimizer.iterations == 2
    assert _fallback(optimizer, net) == [
        "embedding.weight",
        "hidden.bias",
        "output.bias",
        "output.weight",
    ]


def test_config_has_keras_keys_and_round_trips():
    optimizer = Muon(exclude_layers=["head"], rms_rate=None, adam_lr_ratio=0.1)
    config = optimizer.get_config()
    assert config["exclude_layers"] == ["head"] and config["rms_rate"] is None
    assert config["weight_decay"] == 0.004 and config["adam_weight_decay"] == 0.004
    assert Muon.from_config(config).get_config() == config
    assert type(torchfit.optimizers.get("muon")) is Muon
