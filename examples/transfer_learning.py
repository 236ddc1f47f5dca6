"""Transfer learning and fine-tuning, as in Keras's guide, on the digits that ship with torchfit.

A small CNN is "pretrained" on the digits 0-4, frozen, and given a new head for the
digits 5-9; once the head has learned, the whole model is fine-tuned with a small
learning rate. The base is called with `training=False`, so its BatchNorm layers stay
in inference mode during fine-tuning, as the guide recommends. Runs in well under a
minute on a CPU (about 18 s of CPU time on a 2-core machine).
"""

import numpy as np
import torch
from torch import nn

import torchfit

torchfit.utils.set_random_seed(42)

(x_train, y_train), (x_test, y_test) = torchfit.datasets.digits.load_data()

# Channels-first images (torch's layout), scaled to [0, 1].
x_train = x_train.reshape(-1, 1, 8, 8).astype("float32") / 16
x_test = x_test.reshape(-1, 1, 8, 8).astype("float32") / 16
y_train, y_test = y_train.astype("int64"), y_test.astype("int64")


def split(x, y, first):
    """The samples of digits 0-4 (`first`), or of 5-9 relabelled 0-4."""
    keep = y < 5 if first else y >= 5
    return x[keep], y[keep] if first else y[keep] - 5


class Classifier(nn.Module):
    """base -> 2x2 average pooling -> dropout -> a new Dense head."""

    def __init__(self, base, num_classes=5):
        super().__init__()
        self.base = base
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(32 * 4, num_classes)

    def forward(self, x):
        # training=False: the base's BatchNorm layers run in inference mode, also
        # once the base is unfrozen for fine-tuning (Keras's guide does the same).
        features = self.pool(self.base(x, training=False)).flatten(1)
        return self.head(self.dropout(features))


def compile_model(model, learning_rate):
    model.compile(
        optimizer=torchfit.optimizers.Adam(learning_rate),
        loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[torchfit.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


# 1. "Pretrain" a base on the digits 0-4 (in Keras: a model from keras.applications).
base_model = torchfit.Model(
    nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
    ),
    device="cpu",
)
pretraining = torchfit.Model(
    nn.Sequential(base_model, nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32 * 4, 5)),
    device="cpu",
)
compile_model(pretraining, 1e-2)
print("Pretrain the base on the digits 0-4")
pretraining.fit(*split(x_train, y_train, True), batch_size=32, epochs=3, verbose=2)

# 2. Freeze the base and train a new head on the digits 5-9.
base_model.trainable = False
model = torchfit.Model(Classifier(base_model), device="cpu")
model.summary()  # trainable params: the new head only
compile_model(model, 1e-2)
frozen = {name: value.clone() for name, value in base_model.state_dict().items()}
print("Train the new head")
model.fit(*split(x_train, y_train, False), batch_size=32, epochs=5, verbose=2)
assert all(torch.equal(frozen[n], v) for n, v in base_model.state_dict().items())
_, head_accuracy = model.evaluate(*split(x_test, y_test, False), verbose=0)

# 3. Unfreeze the base and fine-tune everything with a very low learning rate. As in
# Keras, the change of `trainable` takes effect at the next compile.
base_model.trainable = True
compile_model(model, 1e-4)
print("Fine-tune the whole model")
model.fit(*split(x_train, y_train, False), batch_size=32, epochs=3, verbose=2)
_, tuned_accuracy = model.evaluate(*split(x_test, y_test, False), verbose=0)

print(f"test accuracy on 5-9, new head only: {head_accuracy:.4f}")
print(f"test accuracy on 5-9, fine-tuned:    {tuned_accuracy:.4f}")
predictions = model.predict(split(x_test, y_test, False)[0][:5], verbose=0)
print("predicted digits:", np.argmax(predictions, axis=-1) + 5)
