"""What the guide ports (and tests of the guide's models) share: MNIST-shaped
data, the digits, the guide's MLP and its image + time-series model, and
readers for the progress bar lines a fit prints off a terminal."""

import re

import numpy as np
import torch
from torch import nn

import torchfit


def mnist_like(num_samples, seed):
    """x: (N, 784) float32 in [0, 1]; y: float32 labels 0..9.

    Each sample is its class's fixed random "prototype" image blended with
    noise, so a model learns the labels about as readily as MNIST digits.
    """
    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(1234).random((10, 784), dtype=np.float32)
    y = rng.integers(0, 10, num_samples)
    x = 0.3 * prototypes[y] + 0.7 * rng.random((num_samples, 784), dtype=np.float32)
    return x, y.astype("float32")


def get_uncompiled_model(input_dim=784):
    # keras.Input(784) → Dense(64, relu) → Dense(64, relu) → Dense(10, softmax)
    net = nn.Sequential(
        nn.Linear(input_dim, 64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
        nn.Softmax(dim=-1),
    )
    return torchfit.Model(net, device="cpu")


BAR_LINE = re.compile(
    # The time is an ETA while running ("4s", "1:05", "1:02:03"), the elapsed time when done.
    r"^(?P<step>\d+)/(?P<target>\d+) ━{20} [\d:]+s? \d+(us|ms|s)/step"
    r"(?P<logs>( - \w+: [-\d.e+]+)*)$"
)


def final_lines(out):
    """The last line of each progress bar in captured (non-terminal) output.

    Off a terminal every redraw is a new line, so one bar is a run of
    consecutive bar lines; its last line is the finished bar.
    """
    finished, previous = [], None
    for line in out.replace("\r", "\n").splitlines() + [""]:
        match = BAR_LINE.match(line)
        if match is None and previous is not None:
            finished.append(previous)
        previous = match
    return finished


def log_keys(line):
    return re.findall(r" - (\w+): ", line["logs"])


def get_compiled_model(input_dim=784):
    model = get_uncompiled_model(input_dim)
    model.compile(
        optimizer="rmsprop",
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    return model


def digits_data(copies=1):
    """The digits that ship with torchfit as (N, 64) float32 in [0, 1] and int64
    labels, repeated `copies` times (for guide sections that need more steps)."""
    (x_train, y_train), _ = torchfit.datasets.digits.load_data()
    x_train = x_train.reshape(-1, 64).astype("float32") / 16
    y_train = y_train.astype("int64")
    return np.concatenate([x_train] * copies), np.concatenate([y_train] * copies)


class ImageAndTimeseries(nn.Module):
    """Conv2D + global max pool on the image, Conv1D + global max pool on the
    time series, concatenated into a score (1) and five class values."""

    def __init__(self):
        super().__init__()
        self.conv2d = nn.Conv2d(3, 3, 3)
        self.conv1d = nn.Conv1d(10, 3, 3)
        self.score_output = nn.Linear(6, 1)
        self.class_output = nn.Linear(6, 5)

    def forward(self, img_input, ts_input):
        # Inputs are channels-last, as in the guide: (32, 32, 3) and (timesteps, 10).
        x1 = self.conv2d(img_input.permute(0, 3, 1, 2)).amax(dim=(2, 3))
        x2 = self.conv1d(ts_input.transpose(1, 2)).amax(dim=2)
        x = torch.cat([x1, x2], dim=1)
        return self.score_output(x), self.class_output(x)


# The "Writing your own callbacks" guide's example, line for line (two test modules use it).
class EarlyStoppingAtMinLoss(torchfit.callbacks.Callback):
    """Stop training when the loss is at its min, i.e. the loss stops decreasing.

    Arguments:
        patience: Number of epochs to wait after min has been hit. After this
        number of no improvement, training stops.
    """

    def __init__(self, patience=0):
        super().__init__()
        self.patience = patience
        # best_weights to store the weights at which the minimum loss occurs.
        self.best_weights = None

    def on_train_begin(self, logs=None):
        # The number of epoch it has waited when loss is no longer minimum.
        self.wait = 0
        # The epoch the training stops at.
        self.stopped_epoch = 0
        # Initialize the best as infinity.
        self.best = np.inf

    def on_epoch_end(self, epoch, logs=None):
        current = logs.get("loss")
        if np.less(current, self.best):
            self.best = current
            self.wait = 0
            # Record the best weights if current results is better (less).
            self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                self.model.stop_training = True
                print("Restoring model weights from the end of the best epoch.")
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
