"""Real fits for the callback tests: a model whose bias shows the learning rate, and
monitored values the test scripts.

`bias_fit` trains `Linear(1, 1)` on zeros against a target of 100 with MAE and plain
SGD: the gradient of the bias is -1 at every step, so each step adds exactly the
learning rate to the bias, and the bias after an epoch tells which rates the epoch used.
"""

import numpy as np
import pytest
import torch

import torchfit


class _Scripted(torchfit.callbacks.Callback):
    """Writes `values[epoch]` into the epoch logs as `key`, for the callbacks after it."""

    def __init__(self, values, key):
        super().__init__()
        self.values, self.key = values, key

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


class _Snapshots(torchfit.callbacks.Callback):
    """Copies of the weights at every epoch end."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


@pytest.fixture
def scripted():
    """`scripted(values, key="score")`: a callback logging `values[epoch]` as `key`."""
    return lambda values, key="score": _Scripted(values, key)


@pytest.fixture
def bias_fit():
    """`bias_fit(callbacks, epochs, learning_rate=1.0, optimizer=None, **fit_kwargs)`.

    Runs a real fit of 2 steps per epoch, with a snapshot callback first, and returns
    `(model, history, snapshots)`; `snapshots.weights[e]` is `[weight, bias]` after
    epoch `e`.
    """

    def fit(callbacks, epochs, learning_rate=1.0, optimizer=None, **fit_kwargs):
        module = torch.nn.Linear(1, 1)
        with torch.no_grad():
            module.weight.zero_()
            module.bias.zero_()
        model = torchfit.Model(module, device="cpu")
        optimizer = optimizer or torchfit.optimizers.SGD(learning_rate=learning_rate)
        model.compile(optimizer=optimizer, loss="mae")
        snapshots = _Snapshots()
        x = np.zeros((8, 1), "float32")
        y = np.full((8, 1), 100.0, "float32")
        history = model.fit(
            x,
            y,
            batch_size=4,
            epochs=epochs,
            verbose=0,
            shuffle=False,
            callbacks=[snapshots, *callbacks],
            **fit_kwargs,
        )
        return model, history, snapshots

    return fit


@pytest.fixture
def bias_steps():
    """`bias_steps(snapshots)`: the learning rate each epoch used (bias gain / 2 steps)."""

    def steps(snapshots):
        biases = [0.0] + [float(weights[1][0]) for weights in snapshots.weights]
        return [(after - before) / 2 for before, after in zip(biases, biases[1:])]

    return steps
