"""The guide's first end-to-end example, on the digits that ship with torchfit.

Trains a small MLP with validation data, evaluates it on the test split and
predicts a few samples. Runs in seconds on a CPU.
"""

import numpy as np
from torch import nn

import torchfit

torchfit.utils.set_random_seed(42)

(x_train, y_train), (x_test, y_test) = torchfit.datasets.digits.load_data()

# Preprocess the data (these are NumPy arrays).
x_train = x_train.reshape(len(x_train), 64).astype("float32") / 16
x_test = x_test.reshape(len(x_test), 64).astype("float32") / 16
y_train = y_train.astype("int64")
y_test = y_test.astype("int64")

# Reserve 200 samples for validation.
x_val, y_val = x_train[-200:], y_train[-200:]
x_train, y_train = x_train[:-200], y_train[:-200]

net = nn.Sequential(
    nn.Linear(64, 64),
    nn.ReLU(),
    nn.Linear(64, 64),
    nn.ReLU(),
    nn.Linear(64, 10),
)
model = torchfit.Model(net)

model.compile(
    optimizer=torchfit.optimizers.RMSprop(),  # Optimizer
    # Loss function to minimize
    loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True),
    # List of metrics to monitor
    metrics=[torchfit.metrics.SparseCategoricalAccuracy()],
)

print("Fit model on training data")
history = model.fit(
    x_train,
    y_train,
    batch_size=32,
    epochs=20,
    # We pass some validation for monitoring validation loss and metrics
    # at the end of each epoch
    validation_data=(x_val, y_val),
)
print("history keys:", sorted(history.history))

# Evaluate the model on the test data using `evaluate`
print("Evaluate on test data")
results = model.evaluate(x_test, y_test, batch_size=128)
print("test loss, test acc:", results)

# Generate predictions (probabilities -- the output of the last layer)
# on new data using `predict`
print("Generate predictions for 3 samples")
predictions = model.predict(x_test[:3])
print("predictions shape:", predictions.shape)
print("predicted classes:", np.argmax(predictions, axis=-1), "true:", y_test[:3])
print(f"test accuracy: {results[1]:.4f}")
