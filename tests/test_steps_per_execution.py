"""`steps_per_execution=N`: batch hooks once per N steps with Keras's indices, same training."""

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit.callbacks import Callback


class BatchRecorder(Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch", epoch))

    def on_train_batch_begin(self, batch, logs=None):
        self.events.append(("begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(("end", batch))

    def on_test_batch_begin(self, batch, logs=None):
        self.events.append(("test_begin", batch))

    def on_test_batch_end(self, batch, logs=None):
        self.events.append(("test_end", batch))

    def on_predict_batch_begin(self, batch, logs=None):
        self.events.append(("predict_begin", batch))

    def on_predict_batch_end(self, batch, logs=None):
        self.events.append(("predict_end", batch))


def _model(steps_per_execution=1, learning_rate=0.05):
    torch.manual_seed(0)
    model = torchfit.Model(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)), device="cpu")
    model.compile(
        optimizer=torchfit.optimizers.SGD(learning_rate=learning_rate),
        loss="mse",
        metrics=["mae"],
        steps_per_execution=steps_per_execution,
    )
    return model


def _data(n, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.rand(n, 3).astype("float32")
    return x, x.sum(axis=1, keepdims=True) - 1.0


def _groups(num_batches, per_execution):
    """Keras's hook indices: each group begins at its first step and ends at its last."""
    events = []
    for start in range(0, num_batches, per_execution):
        events += [("begin", start), ("end", min(start + per_execution, num_batches) - 1)]
    return events


@pytest.mark.parametrize(
    "num_batches, per_execution", [(6, 1), (6, 2), (6, 3), (5, 2), (7, 3), (2, 5)]
)
def test_batch_hooks_run_once_per_group_with_first_and_last_step(num_batches, per_execution):
    recorder = BatchRecorder()
    x, y = _data(num_batches * 2)
    _model(per_execution).fit(x, y, batch_size=2, epochs=2, callbacks=[recorder], verbose=0)
    expected = _groups(num_batches, per_execution)
    assert recorder.events == [("epoch", 0)] + expected + [("epoch", 1)] + expected


def test_every_step_of_a_group_trains():
    # With lr=0 the loss is fixed, so the epoch loss counts every step, including
    # the ones that no hook saw; the batch-end logs hold the group's running mean.
    seen = []

    class Peek(Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(logs["loss"])

    x, y = _data(10)
    model = _model(3, learning_rate=0.0)
    history = model.fit(x, y, batch_size=2, shuffle=False, callbacks=[Peek()], verbose=0)
    with torch.no_grad():
        full = float(((model.module(torch.from_numpy(x)) - torch.from_numpy(y)) ** 2).mean())
        first_six = float(
            ((model.module(torch.from_numpy(x[:6])) - torch.from_numpy(y[:6])) ** 2).mean()
        )
    assert history.history["loss"][0] == pytest.approx(full, rel=1e-5)
    assert seen[0] == pytest.approx(first_six, rel=1e-5)
    assert seen[-1] == pytest.approx(full, rel=1e-5)
    assert model.optimizer.iterations == 5


@pytest.mark.parametrize("per_execution", [2, 3, 4])
def test_training_matches_one_step_per_execution(per_execution):
    x, y = _data(22, seed=per_execution)
    reference = _model(1)
    reference_history = reference.fit(
        x, y, batch_size=4, epochs=3, shuffle=False, verbose=0
    ).history
    grouped = _model(per_execution)
    history = grouped.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0).history
    for key in reference_history:
        np.testing.assert_allclose(history[key], reference_history[key], rtol=1e-6)
    for a, b in zip(grouped.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_stop_training_at_a_group_end_stops_after_that_group():
    class StopAfterFirstGroup(BatchRecorder):
        def on_train_batch_end(self, batch, logs=None):
            super().on_train_batch_end(batch, logs)
            self.model.stop_training = True

    recorder = StopAfterFirstGroup()
    x, y = _data(12)
    model = _model(2)
    model.fit(x, y, batch_size=2, epochs=3, callbacks=[recorder], verbose=0)
    assert recorder.events == [("epoch", 0), ("begin", 0), ("end", 1)]
    assert model.optimizer.iterations == 2


@pytest.mark.parametrize("value", [0, -1, 1.5, "2", None])
def test_invalid_steps_per_execution_raises_value_error_naming_it(value):
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    with pytest.raises(ValueError, match="steps_per_execution"):
        model.compile(loss="mse", steps_per_execution=value)


def test_bool_steps_per_execution_is_rejected():
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    with pytest.raises(ValueError, match="steps_per_execution"):
        model.compile(loss="mse", steps_per_execution=True)


def test_evaluate_and_predict_hooks_are_grouped_too():
    # Keras 3 groups test and predict batch hooks by steps_per_execution as well.
    recorder = BatchRecorder()
    x, y = _data(10)
    model = _model(2)
    model.evaluate(x, y, batch_size=2, callbacks=[recorder], verbose=0)
    model.predict(x, batch_size=2, callbacks=[recorder], verbose=0)
    assert recorder.events == [
        ("test_begin", 0),
        ("test_end", 1),
        ("test_begin", 2),
        ("test_end", 3),
        ("test_begin", 4),
        ("test_end", 4),
        ("predict_begin", 0),
        ("predict_end", 1),
        ("predict_begin", 2),
        ("predict_end", 3),
        ("predict_begin", 4),
        ("predict_end", 4),
    ]
