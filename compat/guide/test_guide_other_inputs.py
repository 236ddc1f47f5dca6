"""Guide: "Other input formats supported", ported to torchfit.

Besides NumPy arrays, eager tensors and datasets, a model trains on pandas
DataFrames and on Python generators that yield batches of data and labels.
"""

import numpy as np
import pandas as pd
import pytest
import torch
from guide_support import get_compiled_model, mnist_like

KEYS = ["loss", "sparse_categorical_accuracy"]


def test_numpy_and_eager_tensors_train_the_same():
    x_train, y_train = mnist_like(640, seed=0)
    torch.manual_seed(0)
    by_numpy = get_compiled_model().fit(x_train, y_train, batch_size=64, shuffle=False, verbose=0)
    torch.manual_seed(0)
    by_tensor = get_compiled_model().fit(
        torch.from_numpy(x_train),
        torch.from_numpy(y_train),
        batch_size=64,
        shuffle=False,
        verbose=0,
    )
    assert list(by_tensor.history) == KEYS
    for key in KEYS:
        np.testing.assert_allclose(by_numpy.history[key], by_tensor.history[key], rtol=1e-6)


def test_pandas_dataframes(capsys):
    x_train, y_train = mnist_like(6400, seed=0)
    frame = pd.DataFrame(x_train, columns=[f"pixel{i}" for i in range(784)])
    labels = pd.Series(y_train, name="label")
    torch.manual_seed(0)
    model = get_compiled_model()
    history = model.fit(frame, labels, batch_size=64, epochs=2, validation_split=0.2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[1].startswith("80/80 - ")
    assert list(history.history) == KEYS + [f"val_{key}" for key in KEYS]
    assert history.history["sparse_categorical_accuracy"][1] > 0.5
    results = model.evaluate(frame, labels, verbose=0)
    assert len(results) == 2
    predictions = model.predict(frame.iloc[:3], verbose=0)
    assert isinstance(predictions, np.ndarray) and predictions.shape == (3, 10)
    np.testing.assert_allclose(
        predictions, model.predict(x_train[:3], verbose=0), rtol=1e-5, atol=1e-7
    )


def batches(x, y, batch_size):
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size], y[start : start + batch_size]


def test_python_generator_of_batches(capsys):
    x_train, y_train = mnist_like(640, seed=0)
    torch.manual_seed(0)
    model = get_compiled_model()
    # A generator's length is unknown until it ends: the bar counts the steps.
    history = model.fit(batches(x_train, y_train, 64), verbose=2)
    assert capsys.readouterr().out.startswith("10/10 - ")
    assert list(history.history) == KEYS
    results = model.evaluate(batches(x_train, y_train, 128), verbose=0, return_dict=True)
    assert list(results) == KEYS
    predictions = model.predict((x for x, _ in batches(x_train, y_train, 100)), verbose=0)
    assert predictions.shape == (640, 10)


def test_endless_generator_with_steps_per_epoch():
    x_train, y_train = mnist_like(640, seed=0)

    def endless():
        while True:
            yield from batches(x_train, y_train, 64)

    history = get_compiled_model().fit(endless(), epochs=3, steps_per_epoch=15, verbose=0)
    assert history.epoch == [0, 1, 2]
    assert history.params["steps"] == 15


@pytest.mark.parametrize("weight, learns", [(0.0, False), (0.5, True)])
def test_generator_yielding_sample_weights(weight, learns):
    x_train, y_train = mnist_like(128, seed=0)
    weights = np.full(128, weight, "float32")
    model = get_compiled_model()
    before = [np.array(w, copy=True) for w in model.get_weights()]
    model.fit(
        ((x, y, w) for (x, y), w in zip(batches(x_train, y_train, 64), np.split(weights, 2))),
        verbose=0,
    )
    # All-zero sample weights: nothing to learn (a loss that ignored them would learn).
    changed = [not np.array_equal(old, new) for old, new in zip(before, model.get_weights())]
    assert any(changed) is learns
