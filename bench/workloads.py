"""The benchmark's workloads: models and data, identical for every runner.

Each workload builds its data from a fixed seed, so every runner process
trains on the same arrays, and builds its model as plain torch layers (or
the Keras equivalent) with the same shapes.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str  # "mlp" or "cnn"
    batch_size: int
    train_samples: int
    val_samples: int
    hidden: int = 64

    def data(self):
        """`(x_train, y_train), (x_val, y_val)` as float32 / int64 NumPy arrays."""
        rng = np.random.default_rng(1234)
        shape = (784,) if self.kind == "mlp" else (3, 32, 32)
        total = self.train_samples + self.val_samples
        x = rng.random((total,) + shape, dtype=np.float32)
        y = rng.integers(0, 10, total).astype(np.int64)
        split = self.train_samples
        return (x[:split], y[:split]), (x[split:], y[split:])

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.train_samples // self.batch_size)

    def torch_module(self):
        from torch import nn

        if self.kind == "mlp":
            return nn.Sequential(
                nn.Linear(784, self.hidden),
                nn.ReLU(),
                nn.Linear(self.hidden, self.hidden),
                nn.ReLU(),
                nn.Linear(self.hidden, 10),
            )
        return nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 8 * 8, 10),
        )

    def keras_model(self):
        import keras

        if self.kind == "mlp":
            return keras.Sequential(
                [
                    keras.Input((784,)),
                    keras.layers.Dense(self.hidden, activation="relu"),
                    keras.layers.Dense(self.hidden, activation="relu"),
                    keras.layers.Dense(10),
                ]
            )
        return keras.Sequential(
            [
                keras.Input((3, 32, 32)),
                keras.layers.Conv2D(
                    16, 3, padding="same", activation="relu", data_format="channels_first"
                ),
                keras.layers.MaxPooling2D(2, data_format="channels_first"),
                keras.layers.Conv2D(
                    32, 3, padding="same", activation="relu", data_format="channels_first"
                ),
                keras.layers.MaxPooling2D(2, data_format="channels_first"),
                keras.layers.Flatten(),
                keras.layers.Dense(10),
            ]
        )


WORKLOADS = {
    "mlp-b64": Workload("mlp-b64", "mlp", 64, 50_000, 10_000),
    "mlp-b16": Workload("mlp-b16", "mlp", 16, 50_000, 10_000),
    # evaluate/predict: the guide's MLP over 100,000 rows at batch 256 (issue 15).
    "mlp-b256": Workload("mlp-b256", "mlp", 256, 100_000, 0),
    "cnn-b64": Workload("cnn-b64", "cnn", 64, 10_000, 2_000),
    "wide-mlp-b256": Workload("wide-mlp-b256", "mlp", 256, 50_000, 10_000, hidden=1024),
}
