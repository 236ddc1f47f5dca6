"""Tests for torchfit.layers: Layer, add_loss, add_metric and the per-forward scope,
alone and through a Model's fit/evaluate/predict."""

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit import layers


class Penalty(torchfit.Layer):
    """Pass-through layer adding `rate * sum(inputs)` as a loss."""

    def __init__(self, rate=0.1):
        super().__init__()
        self.rate = rate

    def forward(self, inputs):
        self.add_loss(inputs.sum() * self.rate)
        return inputs


class StdLogger(torchfit.Layer):
    def __init__(self, aggregation="mean"):
        super().__init__()
        self.aggregation = aggregation

    def forward(self, inputs):
        self.add_metric(inputs.std(), name="std_of_activation", aggregation=self.aggregation)
        return inputs


def data(seed=0, n=16):
    rng = np.random.default_rng(seed)
    return rng.random((n, 4)).astype("float32"), rng.random((n, 1)).astype("float32")


def linear_model(*between, device="cpu"):
    torch.manual_seed(0)
    return torchfit.Model(nn.Sequential(nn.Linear(4, 3), *between, nn.Linear(3, 1)), device=device)


# ----------------------------------------------------------------- the layer


def test_layer_losses_are_those_of_its_last_call():
    layer = Penalty(rate=1.0)
    layer(torch.ones(2, 3))
    assert [float(t) for t in layer.losses] == [6.0]
    layer(torch.ones(1, 2))
    assert [float(t) for t in layer.losses] == [2.0]


def test_layer_losses_include_sublayers():
    class Outer(torchfit.Layer):
        def __init__(self):
            super().__init__()
            self.inner = Penalty(rate=1.0)

        def forward(self, x):
            self.add_loss(torch.tensor(10.0))
            return self.inner(x)

    outer = Outer()
    outer(torch.ones(2))
    assert sorted(float(t) for t in outer.losses) == [2.0, 10.0]


def test_outside_a_model_add_loss_and_add_metric_do_nothing():
    torchfit.add_loss(torch.tensor(1.0))
    torchfit.add_metric(torch.tensor(1.0), name="x")
    with layers.collect() as collection:
        pass
    assert collection.losses == [] and collection.metrics == []


def test_collect_scopes_nest_and_hand_values_outward():
    with layers.collect() as outer:
        torchfit.add_loss(1.0)
        with layers.collect() as inner:
            torchfit.add_loss(2.0)
            torchfit.add_metric(3.0, name="m", aggregation="sum")
        assert inner.losses == [2.0] and inner.metrics == [("m", 3.0, "sum")]
    assert outer.losses == [1.0, 2.0] and outer.metrics == [("m", 3.0, "sum")]


@pytest.mark.parametrize(
    "name, aggregation, match",
    [
        (None, "mean", "name"),
        ("", "mean", "name"),
        ("m", "max", "aggregation"),
    ],
)
def test_add_metric_checks_name_and_aggregation(name, aggregation, match):
    with pytest.raises(ValueError, match=match):
        torchfit.add_metric(1.0, name=name, aggregation=aggregation)
    model = linear_model()
    with pytest.raises(ValueError, match=match):
        model.add_metric(lambda: 1.0, name=name, aggregation=aggregation)


def test_as_loss_tensor_sums_and_casts():
    assert float(layers.as_loss_tensor(torch.tensor([1, 2, 3]), torch.device("cpu"))) == 6.0
    assert float(layers.as_loss_tensor(0.5, torch.device("cpu"))) == 0.5


# ------------------------------------------------------------ add_loss in fit


def expected_mse_plus(model, x, y, extra):
    with torch.no_grad():
        pred = model.module(torch.as_tensor(x))
        return float(((pred - torch.as_tensor(y)) ** 2).mean() + extra(pred))


def test_layer_add_loss_joins_the_total_and_model_losses():
    model = linear_model(Penalty(rate=0.1))
    model.compile(optimizer="sgd", loss="mse")
    x, y = data()

    def penalty(_):
        with torch.no_grad():
            return 0.1 * model.module[0](torch.as_tensor(x)).sum()

    expected = expected_mse_plus(model, x, y, penalty)
    assert model.evaluate(x, y, batch_size=16, verbose=0) == pytest.approx(expected, rel=1e-5)
    assert len(model.losses) == 1
    assert float(model.losses[0]) == pytest.approx(float(penalty(None)), rel=1e-5)


def test_functional_add_loss_in_any_forward_without_compiled_loss():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(4, 1)

        def forward(self, x):
            out = self.dense(x)
            torchfit.add_loss((out**2).mean())
            return out

    torch.manual_seed(0)
    model = torchfit.Model(Net(), device="cpu")
    model.compile(optimizer=torchfit.optimizers.SGD(0.1))  # no loss
    x, _ = data()
    before = model.evaluate(x, batch_size=16, verbose=0)
    history = model.fit(x, batch_size=8, epochs=3, verbose=0)
    assert list(history.history) == ["loss"]
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.evaluate(x, batch_size=16, verbose=0) < before


def test_model_add_loss_callable_is_evaluated_each_step():
    model = linear_model()
    weight = model.module[0].weight
    model.add_loss(lambda: weight.abs().sum())
    model.compile(optimizer="sgd", loss="mse")
    x, y = data()
    expected = expected_mse_plus(model, x, y, lambda _: weight.abs().sum())
    assert model.evaluate(x, y, batch_size=16, verbose=0) == pytest.approx(expected, rel=1e-5)
    assert float(model.losses[0].detach()) == pytest.approx(float(weight.detach().abs().sum()))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    # The callable reads the trained weight, not the value at add_loss time.
    assert float(model.losses[0].detach()) == pytest.approx(float(weight.detach().abs().sum()))


def test_model_add_loss_tensor_joins_the_running_forward():
    class Net(torchfit.Model):
        def __init__(self):
            super().__init__(device="cpu")
            self.dense = nn.Linear(4, 1)

        def forward(self, x):
            hidden = self.dense(x)
            self.add_loss(hidden.abs().mean())
            return hidden

    model = Net()
    model.compile(optimizer="sgd", loss="mse")
    x, y = data()
    with torch.no_grad():
        pred = model.dense(torch.as_tensor(x))
        expected = float(((pred - torch.as_tensor(y)) ** 2).mean() + pred.abs().mean())
    assert model.evaluate(x, y, batch_size=16, verbose=0) == pytest.approx(expected, rel=1e-5)


def test_no_loss_and_no_added_loss_is_a_clear_error():
    model = linear_model()
    model.compile(optimizer="sgd")
    x, y = data()
    with pytest.raises(ValueError, match="add_loss"):
        model.fit(x, y, verbose=0)


def test_added_losses_do_not_leak_between_steps_modes_or_models():
    model = linear_model(Penalty(rate=1.0))
    other = linear_model()
    model.compile(optimizer="sgd", loss="mse")
    other.compile(optimizer="sgd", loss="mse")
    x, y = data()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert len(model.losses) == 1  # one forward's worth, not one per step
    other_expected = expected_mse_plus(other, x, y, lambda _: 0.0)
    assert other.evaluate(x, y, batch_size=16, verbose=0) == pytest.approx(other_expected, rel=1e-5)
    assert other.losses == []
    model.predict(x, verbose=0)
    assert len(model.losses) == 1
    # Two evaluations in a row give the same loss: nothing accumulates.
    first = model.evaluate(x, y, batch_size=4, verbose=0)
    assert model.evaluate(x, y, batch_size=4, verbose=0) == pytest.approx(first)


def test_train_on_batch_includes_added_losses():
    model = linear_model(Penalty(rate=1.0))
    model.compile(optimizer=torchfit.optimizers.SGD(0.0), loss="mse")
    x, y = data()
    penalty = lambda _: model.module[0](torch.as_tensor(x)).sum()  # noqa: E731
    expected = expected_mse_plus(model, x, y, penalty)
    assert model.train_on_batch(x, y) == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------- add_metric in fit


def test_layer_add_metric_is_logged_in_train_and_validation():
    model = linear_model(StdLogger())
    model.compile(optimizer="sgd", loss="mse")
    x, y = data()
    history = model.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), verbose=0)
    assert sorted(history.history) == [
        "loss",
        "std_of_activation",
        "val_loss",
        "val_std_of_activation",
    ]
    logs = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    with torch.no_grad():
        hidden = model.module[0](torch.as_tensor(x))
        expected = (float(hidden[:8].std()) + float(hidden[8:].std())) / 2
    assert logs["std_of_activation"] == pytest.approx(expected, rel=1e-5)
    assert history.history["val_std_of_activation"][-1] == pytest.approx(expected, rel=1e-5)


def test_add_metric_sum_aggregation_adds_over_the_epoch():
    model = linear_model(StdLogger(aggregation="sum"))
    model.compile(optimizer="sgd", loss="mse")
    x, y = data()
    logs = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    with torch.no_grad():
        hidden = model.module[0](torch.as_tensor(x))
        expected = sum(float(hidden[i : i + 4].std()) for i in range(0, 16, 4))
    assert logs["std_of_activation"] == pytest.approx(expected, rel=1e-5)
    # A second run starts from zero again.
    again = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    assert again["std_of_activation"] == pytest.approx(expected, rel=1e-5)


def test_functional_and_model_add_metric():
    class Net(torchfit.Model):
        def __init__(self):
            super().__init__(device="cpu")
            self.dense = nn.Linear(4, 1)

        def forward(self, x):
            out = self.dense(x)
            torchfit.add_metric(out.mean(), name="mean_out")
            return out

    model = Net()
    model.add_metric(lambda: model.dense.weight.abs().sum(), name="weight_norm", aggregation="mean")
    model.compile(optimizer="sgd", loss="mse")
    x, y = data()
    history = model.fit(x, y, batch_size=8, epochs=1, validation_data=(x, y), verbose=0)
    assert sorted(history.history) == [
        "loss",
        "mean_out",
        "val_loss",
        "val_mean_out",
        "val_weight_norm",
        "weight_norm",
    ]
    assert history.history["val_weight_norm"][0] == pytest.approx(
        float(model.dense.weight.detach().abs().sum())
    )
    assert model.metrics_names == ["loss", "mean_out", "weight_norm"]


def test_added_metrics_are_not_tracked_outside_fit_and_evaluate():
    model = linear_model(StdLogger())
    model.compile(optimizer="sgd", loss="mse")
    x, y = data()
    model.predict(x, verbose=0)
    model(torch.as_tensor(x))
    assert model.metrics_names == ["loss"]
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert sorted(logs) == ["loss", "std_of_activation"]
