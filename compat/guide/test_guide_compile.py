"""Guide: "The compile() method: specifying a loss, metrics, and an optimizer",
with "Many built-in optimizers, losses, and metrics are available", "Custom
losses" and "Custom metrics", ported to torchfit.

The MNIST-sized fits (50,000 samples at batch 64: 782 steps) run on random
data of MNIST's shapes with teacher-assigned labels.
"""

import numpy as np
import pytest
import torch
from guide_support import (
    final_lines,
    get_compiled_model,
    get_uncompiled_model,
    log_keys,
    mnist_like,
)
from torch import nn

import torchfit


@pytest.fixture(scope="module")
def mnist():
    x_train, y_train = mnist_like(50000, seed=0)
    return x_train, y_train


def test_compile_with_objects(mnist):
    x_train, y_train = mnist
    model = get_uncompiled_model()
    model.compile(
        optimizer=torchfit.optimizers.RMSprop(learning_rate=1e-3),
        loss=torchfit.losses.SparseCategoricalCrossentropy(),
        metrics=[torchfit.metrics.SparseCategoricalAccuracy()],
    )
    assert isinstance(model.optimizer, torchfit.optimizers.RMSprop)
    assert model.optimizer.learning_rate == pytest.approx(1e-3)
    history = model.fit(x_train[:640], y_train[:640], batch_size=64, verbose=0)
    assert list(history.history) == ["loss", "sparse_categorical_accuracy"]
    assert model.metrics_names == ["loss", "sparse_categorical_accuracy"]


def test_compile_with_string_ids_gives_the_same_training(mnist):
    x_train, y_train = mnist
    x, y = x_train[:640], y_train[:640]
    torch.manual_seed(0)
    by_object = get_uncompiled_model()
    by_object.compile(
        optimizer=torchfit.optimizers.RMSprop(learning_rate=1e-3),
        loss=torchfit.losses.SparseCategoricalCrossentropy(),
        metrics=[torchfit.metrics.SparseCategoricalAccuracy()],
    )
    torch.manual_seed(0)
    by_string = get_compiled_model()
    first = by_object.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0).history
    second = by_string.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0).history
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_allclose(first[key], second[key], rtol=1e-6)


@pytest.mark.parametrize(
    "optimizer",
    [
        torchfit.optimizers.SGD(),
        torchfit.optimizers.SGD(momentum=0.9),
        torchfit.optimizers.RMSprop(),
        torchfit.optimizers.Adam(),
    ],
)
def test_builtin_optimizers(mnist, optimizer):
    x_train, y_train = mnist
    model = get_uncompiled_model()
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    history = model.fit(x_train[:640], y_train[:640], batch_size=64, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.optimizer.iterations == 10


@pytest.mark.parametrize(
    "loss, name",
    [
        (torchfit.losses.MeanSquaredError(), "mean_squared_error"),
        (torchfit.losses.KLDivergence(), "kl_divergence"),
        (torchfit.losses.CosineSimilarity(), "cosine_similarity"),
    ],
)
def test_builtin_losses(mnist, loss, name):
    x_train, y_train = mnist
    model = get_uncompiled_model()
    model.compile(optimizer="adam", loss=loss)
    y_one_hot = torchfit.utils.to_categorical(y_train[:640], num_classes=10)
    history = model.fit(x_train[:640], y_one_hot, batch_size=64, verbose=0)
    assert loss.name == name
    assert list(history.history) == ["loss"]


def test_builtin_metrics(mnist):
    x_train, y_train = mnist
    # AUC, Precision and Recall on a binary task: "is the digit a 5?"
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 1), nn.Sigmoid())
    model = torchfit.Model(net, device="cpu")
    model.compile(
        optimizer="adam",
        loss="binary_crossentropy",
        metrics=[torchfit.metrics.AUC(), torchfit.metrics.Precision(), torchfit.metrics.Recall()],
    )
    is_five = (y_train[:1280] == 5).astype("float32")[:, None]
    history = model.fit(x_train[:1280], is_five, batch_size=64, epochs=2, verbose=0)
    assert list(history.history) == ["auc", "loss", "precision", "recall"]
    assert all(
        0.0 <= value <= 1.0
        for key in ("auc", "precision", "recall")
        for value in history.history[key]
    )


# ------------------------------------------------------------- custom losses
def custom_mean_squared_error(y_true, y_pred):
    return torch.mean(torch.square(y_true - y_pred))


def test_custom_loss_function(mnist, capsys):
    x_train, y_train = mnist
    torch.manual_seed(0)
    model = get_uncompiled_model()
    model.compile(optimizer=torchfit.optimizers.Adam(), loss=custom_mean_squared_error)

    # We need to one-hot encode the labels to use MSE
    y_train_one_hot = torch.nn.functional.one_hot(
        torch.from_numpy(y_train).long(), num_classes=10
    ).float()
    history = model.fit(x_train, y_train_one_hot, batch_size=64, epochs=1, verbose=1)
    (line,) = final_lines(capsys.readouterr().out)
    assert (line["step"], line["target"]) == ("782", "782")
    assert log_keys(line) == ["loss"]
    assert isinstance(history, torchfit.callbacks.History)
    assert list(history.history) == ["loss"]
    # An MSE on one-hot targets starts near 0.09 and falls.
    assert 0.0 < history.history["loss"][0] < 0.09


class CustomMSE(torchfit.losses.Loss):
    def __init__(self, regularization_factor=0.1, name="custom_mse"):
        super().__init__(name=name)
        self.regularization_factor = regularization_factor

    def call(self, y_true, y_pred):
        mse = torch.mean(torch.square(y_true - y_pred))
        reg = torch.mean(torch.square(0.5 - y_pred))
        return mse + reg * self.regularization_factor


def test_custom_loss_subclass(mnist, capsys):
    x_train, y_train = mnist
    x_train, y_train = x_train[:6400], y_train[:6400]
    torch.manual_seed(0)
    model = get_uncompiled_model()
    model.compile(optimizer=torchfit.optimizers.Adam(), loss=CustomMSE())

    y_train_one_hot = torchfit.utils.to_categorical(y_train, num_classes=10)
    model.fit(x_train, y_train_one_hot, batch_size=64, epochs=1, verbose=1)
    (line,) = final_lines(capsys.readouterr().out)
    assert (line["step"], line["target"]) == ("100", "100")
    assert log_keys(line) == ["loss"]

    # The loss is the MSE plus the regularization term, as the subclass says.
    predictions = torch.from_numpy(model.predict(x_train[:256], verbose=0))
    targets = torch.from_numpy(y_train_one_hot[:256])
    expected = ((targets - predictions) ** 2).mean() + 0.1 * ((0.5 - predictions) ** 2).mean()
    got = model.evaluate(x_train[:256], y_train_one_hot[:256], batch_size=256, verbose=0)
    assert got == pytest.approx(float(expected), rel=1e-5)
    stronger = CustomMSE(regularization_factor=1.0)
    assert float(stronger(targets, predictions)) > got
    assert CustomMSE().name == "custom_mse"


# ------------------------------------------------------------ custom metrics
class CategoricalTruePositives(torchfit.metrics.Metric):
    def __init__(self, name="categorical_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_weight(name="ctp", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = torch.argmax(y_pred, dim=1).reshape(-1, 1)
        values = torch.as_tensor(y_true).reshape(-1, 1).to(torch.int32) == y_pred.to(torch.int32)
        values = values.to(torch.float32)
        if sample_weight is not None:
            sample_weight = torch.as_tensor(sample_weight, dtype=torch.float32).reshape(-1, 1)
            values = values * sample_weight
        self.true_positives.add_(values.sum())

    def result(self):
        return self.true_positives

    def reset_states(self):
        # The state of the metric will be reset at the start of each epoch.
        self.true_positives.fill_(0.0)


def test_custom_metric(mnist, capsys):
    x_train, y_train = mnist
    x_train, y_train = x_train[:3200], y_train[:3200]
    torch.manual_seed(0)
    model = get_uncompiled_model()
    model.compile(
        optimizer=torchfit.optimizers.RMSprop(learning_rate=1e-3),
        loss=torchfit.losses.SparseCategoricalCrossentropy(),
        metrics=[CategoricalTruePositives()],
    )
    history = model.fit(x_train, y_train, batch_size=64, epochs=3, verbose=1)
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("Epoch")] == [
        "Epoch 1/3",
        "Epoch 2/3",
        "Epoch 3/3",
    ]
    finished = final_lines(out)
    assert [(line["step"], line["target"]) for line in finished] == [("50", "50")] * 3
    assert all(log_keys(line) == ["categorical_true_positives", "loss"] for line in finished)

    counts = history.history["categorical_true_positives"]
    # Reset at each epoch: a count of this epoch's samples, never more than 3,200.
    assert all(0 < count <= 3200 for count in counts)
    assert counts[2] > counts[0]

    # The count is the number of correctly classified samples.
    logs = model.evaluate(x_train, y_train, batch_size=64, verbose=0, return_dict=True)
    predicted = model.predict(x_train, verbose=0).argmax(axis=1)
    assert logs["categorical_true_positives"] == float((predicted == y_train).sum())


def test_custom_metric_is_stateful_and_resettable():
    metric = CategoricalTruePositives()
    y_pred = torch.eye(10)[[1, 2, 3]]
    assert float(metric(torch.tensor([1.0, 2.0, 0.0]), y_pred)) == 2.0
    metric.update_state(
        torch.tensor([1.0, 2.0, 3.0]), y_pred, sample_weight=torch.tensor([1.0, 0.5, 0.0])
    )
    assert float(metric.result()) == 3.5
    variable = metric.true_positives
    metric.reset_state()
    assert float(metric.result()) == 0.0 and metric.true_positives is variable
    metric.update_state(torch.tensor([1.0]), y_pred[:1])
    metric.reset_states()
    assert float(metric.result()) == 0.0
