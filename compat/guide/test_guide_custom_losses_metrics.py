"""The guide's "Handling losses and metrics that don't fit the standard signature",
ported to torchfit: ActivityRegularizationLayer (add_loss), MetricLoggingLayer
(add_metric), model-level add_loss/add_metric, and LogisticEndpoint trained with
`fit(data_dict)` and no `y`. Keras 3 (torch backend) checks the add_loss numbers;
Keras 3 dropped add_metric, so those logs are checked against their definition.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import pytest
import torch
from torch import nn

import torchfit


def digits_like(seed=0, n=64):
    rng = np.random.default_rng(seed)
    return rng.random((n, 784)).astype("float32"), rng.integers(0, 10, n)


class ActivityRegularizationLayer(torchfit.Layer):
    def forward(self, inputs):
        self.add_loss(torch.sum(inputs) * 0.1)
        return inputs  # Pass-through layer.


class MetricLoggingLayer(torchfit.Layer):
    def forward(self, inputs):
        # The `aggregation` argument defines how to aggregate the per-batch
        # values over each epoch: in this case we simply average them.
        self.add_metric(torch.std(inputs), name="std_of_activation", aggregation="mean")
        return inputs  # Pass-through layer.


def digits_net(middle):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(784, 64), nn.ReLU(), middle, nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)
    )


def compiled(net):
    model = torchfit.Model(net, device="cpu")
    model.compile(
        optimizer=torchfit.optimizers.RMSprop(learning_rate=1e-3),
        loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def test_activity_regularization_layer_raises_the_displayed_loss():
    x, y = digits_like()
    regularized = compiled(digits_net(ActivityRegularizationLayer()))
    plain = compiled(digits_net(nn.Identity()))
    with_penalty = regularized.evaluate(x, y, batch_size=64, verbose=0)
    without = plain.evaluate(x, y, batch_size=64, verbose=0)
    with torch.no_grad():
        penalty = float(
            regularized.module[1](regularized.module[0](torch.as_tensor(x))).sum() * 0.1
        )
    assert with_penalty == pytest.approx(without + penalty, rel=1e-5)
    history = regularized.fit(x, y, batch_size=64, epochs=1, verbose=0)
    assert list(history.history) == ["loss"]
    assert history.history["loss"][0] > without


def test_activity_regularization_matches_keras():
    keras = pytest.importorskip("keras")
    x, y = digits_like()

    class KerasActivityRegularization(keras.layers.Layer):
        def call(self, inputs):
            self.add_loss(keras.ops.sum(inputs) * 0.1)
            return inputs

    inputs = keras.Input(shape=(784,), name="digits")
    h = keras.layers.Dense(64, activation="relu", name="dense_1")(inputs)
    h = KerasActivityRegularization()(h)
    h = keras.layers.Dense(64, activation="relu", name="dense_2")(h)
    outputs = keras.layers.Dense(10, name="predictions")(h)
    keras_model = keras.Model(inputs=inputs, outputs=outputs)
    keras_model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )

    model = compiled(digits_net(ActivityRegularizationLayer()))
    for name, index in (("dense_1", 0), ("dense_2", 3), ("predictions", 5)):
        kernel, bias = (np.asarray(w) for w in keras_model.get_layer(name).get_weights())
        with torch.no_grad():
            model.module[index].weight.copy_(torch.as_tensor(kernel.T))
            model.module[index].bias.copy_(torch.as_tensor(bias))

    assert model.evaluate(x, y, batch_size=32, verbose=0) == pytest.approx(
        keras_model.evaluate(x, y, batch_size=32, verbose=0), rel=1e-4
    )
    ours = model.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=False).history
    theirs = keras_model.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=False).history
    assert sorted(ours) == sorted(theirs) == ["loss"]
    np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=1e-3)


def test_metric_logging_layer_logs_std_of_activation():
    x, y = digits_like()
    model = compiled(digits_net(MetricLoggingLayer()))
    logs = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    with torch.no_grad():
        hidden = model.module[1](model.module[0](torch.as_tensor(x)))
    expected = (float(hidden[:32].std()) + float(hidden[32:].std())) / 2
    assert logs["std_of_activation"] == pytest.approx(expected, rel=1e-5)
    history = model.fit(x, y, batch_size=64, epochs=1, verbose=0, validation_data=(x, y))
    assert sorted(history.history) == [
        "loss",
        "std_of_activation",
        "val_loss",
        "val_std_of_activation",
    ]


class DigitsWithModelLosses(torchfit.Model):
    """The guide's functional `model.add_loss(...)`/`model.add_metric(...)` on the
    activation `x1`, written as a torchfit.Model subclass."""

    def __init__(self):
        super().__init__(device="cpu")
        torch.manual_seed(0)
        self.dense_1 = nn.Linear(784, 64)
        self.dense_2 = nn.Linear(64, 64)
        self.predictions = nn.Linear(64, 10)

    def forward(self, digits):
        x1 = torch.relu(self.dense_1(digits))
        self.add_loss(torch.sum(x1) * 0.1)
        self.add_metric(torch.std(x1), name="std_of_activation", aggregation="mean")
        x2 = torch.relu(self.dense_2(x1))
        return self.predictions(x2)


def test_model_add_loss_and_add_metric():
    x, y = digits_like()
    model = DigitsWithModelLosses()
    model.compile(
        optimizer=torchfit.optimizers.RMSprop(1e-3),
        loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    logs = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
    with torch.no_grad():
        x1 = torch.relu(model.dense_1(torch.as_tensor(x)))
        logits = model.predictions(torch.relu(model.dense_2(x1)))
        cross_entropy = float(nn.functional.cross_entropy(logits, torch.as_tensor(y)))
    assert logs["loss"] == pytest.approx(cross_entropy + float(x1.sum() * 0.1), rel=1e-5)
    assert logs["std_of_activation"] == pytest.approx(float(x1.std()), rel=1e-5)
    history = model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    assert sorted(history.history) == ["loss", "std_of_activation"]


def test_compile_without_loss_when_the_model_adds_its_own():
    x, _ = digits_like()

    class OnlyAddedLoss(DigitsWithModelLosses):
        def forward(self, digits):
            return super().forward(digits).pow(2).mean(dim=1, keepdim=True)

    model = OnlyAddedLoss()
    model.compile(optimizer=torchfit.optimizers.RMSprop(1e-3))  # no loss argument
    history = model.fit(x, batch_size=32, epochs=2, verbose=0)
    assert sorted(history.history) == ["loss", "std_of_activation"]
    assert history.history["loss"][1] < history.history["loss"][0]


class LogisticEndpoint(torchfit.Layer):
    def __init__(self):
        super().__init__()
        self.loss_fn = torchfit.losses.BinaryCrossentropy(from_logits=True)
        self.accuracy_fn = torchfit.metrics.BinaryAccuracy()

    def forward(self, targets, logits, sample_weights=None):
        # Compute the training-time loss value and add it to the layer.
        loss = self.loss_fn(targets, logits, sample_weights)
        self.add_loss(loss)
        # Log accuracy as a metric and add it to the layer.
        acc = self.accuracy_fn(targets, logits, sample_weights)
        self.add_metric(acc, name="accuracy")
        # Return the inference-time prediction tensor (for `.predict()`).
        return torch.softmax(logits, dim=-1)


class EndpointModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(3, 10)
        self.predictions = LogisticEndpoint()

    def forward(self, inputs, targets):
        return self.predictions(targets, self.dense(inputs))


def test_logistic_endpoint_fits_on_a_dict_without_targets():
    torch.manual_seed(0)
    model = torchfit.Model(EndpointModel(), device="cpu")
    model.compile(optimizer="adam")  # No loss argument!
    rng = np.random.default_rng(0)
    data = {
        "inputs": rng.random((3, 3)).astype("float32"),
        "targets": rng.random((3, 10)).astype("float32"),
    }
    with torch.no_grad():
        logits = model.module.dense(torch.as_tensor(data["inputs"]))
        expected = float(
            nn.functional.binary_cross_entropy_with_logits(logits, torch.as_tensor(data["targets"]))
        )
    assert model.evaluate(data, verbose=0, return_dict=True)["loss"] == pytest.approx(
        expected, rel=1e-5
    )
    # The guide (tf.keras 2) printed the metric object's name, `binary_accuracy`;
    # torchfit logs the name given to add_metric.
    history = model.fit(data, verbose=0)
    assert sorted(history.history) == ["accuracy", "loss"]
    predictions = model.predict(data, verbose=0)
    assert predictions.shape == (3, 10)
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-5)
