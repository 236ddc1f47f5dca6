"""Guide: "API overview: a first end-to-end example", ported to torchfit.

The guide trains a 784→64→64→10 MLP on MNIST (50,000 training samples at
batch size 64: 782 steps per epoch), validates on 10,000 held-out samples,
evaluates on the 10,000 test samples (79 steps at batch size 128) and
predicts 3 samples. The twin uses random data of MNIST's shapes whose labels
a linear teacher assigns, so the model can learn them as it learns digits.
"""

import numpy as np
import pytest
import torch
from guide_support import final_lines, get_uncompiled_model, log_keys, mnist_like

import torchfit


@pytest.fixture(scope="module")
def mnist():
    x_train, y_train = mnist_like(60000, seed=0)
    x_test, y_test = mnist_like(10000, seed=1)
    # Reserve 10,000 samples for validation
    x_val, y_val = x_train[-10000:], y_train[-10000:]
    return (x_train[:-10000], y_train[:-10000]), (x_val, y_val), (x_test, y_test)


def test_first_end_to_end_example(mnist, capsys):
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = mnist
    torch.manual_seed(0)
    model = get_uncompiled_model()
    model.compile(
        optimizer=torchfit.optimizers.RMSprop(),  # Optimizer
        # Loss function to minimize
        loss=torchfit.losses.SparseCategoricalCrossentropy(),
        # List of metrics to monitor
        metrics=[torchfit.metrics.SparseCategoricalAccuracy()],
    )

    print("Fit model on training data")
    history = model.fit(
        x_train,
        y_train,
        batch_size=64,
        epochs=2,
        # We pass some validation for
        # monitoring validation loss and metrics
        # at the end of each epoch
        validation_data=(x_val, y_val),
        verbose=1,
    )
    out = capsys.readouterr().out
    assert out.startswith("Fit model on training data\nEpoch 1/2\n")
    assert "Epoch 2/2" in out
    finished = final_lines(out)
    assert [(line["step"], line["target"]) for line in finished] == [("782", "782")] * 2
    keys = ["loss", "sparse_categorical_accuracy", "val_loss", "val_sparse_categorical_accuracy"]
    for line in finished:
        assert log_keys(line) == keys

    # The returned history object holds a record of the loss values and
    # metric values during training.
    assert list(history.history) == keys
    assert all(len(values) == 2 for values in history.history.values())
    assert all(isinstance(value, float) for values in history.history.values() for value in values)
    assert history.history["loss"][1] < history.history["loss"][0]
    assert history.history["val_sparse_categorical_accuracy"][1] > 0.7  # chance is 0.1

    # Evaluate the model on the test data using `evaluate`
    print("Evaluate on test data")
    results = model.evaluate(x_test, y_test, batch_size=128, verbose=1)
    print("test loss, test acc:", results)
    out = capsys.readouterr().out
    (line,) = final_lines(out)
    assert (line["step"], line["target"]) == ("79", "79")
    assert log_keys(line) == ["loss", "sparse_categorical_accuracy"]
    assert isinstance(results, list) and len(results) == 2
    assert "test loss, test acc: [" in out
    assert results[1] > 0.7

    # Generate predictions (probabilities -- the output of the last layer)
    # on new data using `predict`
    print("Generate predictions for 3 samples")
    predictions = model.predict(x_test[:3], verbose=0)
    print("predictions shape:", predictions.shape)
    assert "predictions shape: (3, 10)" in capsys.readouterr().out
    assert isinstance(predictions, np.ndarray)
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-5)


def test_evaluate_in_the_metrics_names_order(mnist):
    _, _, (x_test, y_test) = mnist
    model = get_uncompiled_model()
    model.compile(
        optimizer="rmsprop",
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    results = model.evaluate(x_test[:1000], y_test[:1000], batch_size=128, verbose=0)
    as_dict = model.evaluate(
        x_test[:1000], y_test[:1000], batch_size=128, verbose=0, return_dict=True
    )
    assert model.metrics_names == ["loss", "sparse_categorical_accuracy"]
    assert dict(zip(model.metrics_names, results)) == pytest.approx(as_dict)
