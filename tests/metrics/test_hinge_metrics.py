import pytest
import torch

from torchfit import metrics


def test_hinge_maps_binary_labels_to_plus_minus_one():
    zero_one = metrics.hinge([[1.0, 0.0]], [[0.5, -2.0]])
    plus_minus = metrics.hinge([[1.0, -1.0]], [[0.5, -2.0]])
    assert zero_one.tolist() == plus_minus.tolist() == [0.25]


def test_hinge_keeps_non_binary_labels():
    assert metrics.hinge([[2.0]], [[0.25]]).tolist() == [0.5]


def test_squared_hinge_value():
    assert metrics.squared_hinge([[1.0, -1.0]], [[0.5, -2.0]]).tolist() == [0.125]


def test_categorical_hinge_value():
    value = metrics.categorical_hinge([[0.0, 1.0, 0.0]], [[0.3, 0.6, 0.1]])
    assert float(value) == pytest.approx(0.7)


@pytest.mark.parametrize("cls", [metrics.Hinge, metrics.SquaredHinge, metrics.CategoricalHinge])
def test_hinge_metrics_weighted_average_and_config(cls):
    metric = cls()
    metric.update_state(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]]), sample_weight=2.0)
    unweighted = cls()(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]]))
    assert float(metric.result()) == pytest.approx(float(unweighted))
    assert cls.from_config(metric.get_config()).name == metric.name
    assert metric._direction == "down"


@pytest.mark.parametrize(
    "cls, fn",
    [
        (metrics.Hinge, metrics.hinge),
        (metrics.SquaredHinge, metrics.squared_hinge),
        (metrics.CategoricalHinge, metrics.categorical_hinge),
    ],
)
def test_hinge_metrics_weight_each_sample(cls, fn):
    # Unequal weights summing to 4 over 2 samples: ignoring them, or dividing by the
    # batch size, gives another number.
    y_true = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y_pred = torch.tensor([[0.5, 0.5], [0.75, -0.5]])
    metric = cls()
    metric.update_state(y_true, y_pred, sample_weight=torch.tensor([1.0, 3.0]))
    per_sample = fn(y_true, y_pred)
    assert float(metric.result()) == pytest.approx(float(per_sample[0] + 3 * per_sample[1]) / 4)
    assert float(per_sample[0]) != pytest.approx(float(per_sample[1]))
