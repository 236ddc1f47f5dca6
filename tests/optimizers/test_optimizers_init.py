import pytest
import torch

import torchfit.optimizers as optimizers
from torchfit.optimizers import schedules

NAMES = [
    "sgd",
    "rmsprop",
    "adam",
    "adamw",
    "adagrad",
    "adadelta",
    "adamax",
    "nadam",
    "lion",
    "ftrl",
]


@pytest.mark.parametrize("name", NAMES)
def test_get_from_string_is_case_insensitive(name):
    optimizer = optimizers.get(name.upper())
    assert type(optimizer).__name__.lower() == name
    assert not optimizer.built


def test_get_unknown_id_lists_closest():
    with pytest.raises(ValueError, match="rmsprop"):
        optimizers.get("rmsporp")


def test_get_passes_instances_and_torch_classes_through():
    adam = optimizers.Adam()
    assert optimizers.get(adam) is adam
    torch_sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    assert optimizers.get(torch_sgd) is torch_sgd
    assert optimizers.get(torch.optim.AdamW) is torch.optim.AdamW
    assert optimizers.get(None) is None
    with pytest.raises(ValueError, match="Could not interpret"):
        optimizers.get(3)


@pytest.mark.parametrize("name", NAMES)
def test_serialize_round_trip_keeps_config(name):
    original = optimizers.get(name)
    original.learning_rate = 0.05
    rebuilt = optimizers.deserialize(optimizers.serialize(original))
    assert type(rebuilt) is type(original)
    assert rebuilt.get_config() == original.get_config()


def test_config_with_a_schedule():
    optimizer = optimizers.SGD(learning_rate=schedules.PolynomialDecay(0.1, 10), momentum=0.5)
    config = optimizers.serialize(optimizer)
    assert config["config"]["learning_rate"]["class_name"] == "PolynomialDecay"
    rebuilt = optimizers.get(config)
    assert isinstance(rebuilt._learning_rate, schedules.PolynomialDecay)
    assert rebuilt.momentum == 0.5


@pytest.mark.parametrize("name", NAMES)
def test_every_optimizer_learns_in_a_plain_torch_loop(name):
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    x = torch.randn(32, 2)
    y = x @ torch.tensor([[1.5], [-1.0]])
    kwargs = {
        "adadelta": {"learning_rate": 1.0, "epsilon": 1e-3},
        "ftrl": {"learning_rate": 0.5},
        "sgd": {"learning_rate": 0.1},
        "adagrad": {"learning_rate": 0.3},
    }.get(name, {"learning_rate": 0.05})
    optimizer = type(optimizers.get(name))(model.parameters(), **kwargs)
    first = None
    for _ in range(100):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        first = loss.item() if first is None else first
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.25 * first
