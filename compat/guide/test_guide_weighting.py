"""Guide: "Using sample weighting and class weighting", ported to torchfit.

Class 5 is made twice as important, three ways: `class_weight`, a
`sample_weight` array, and a dataset whose batches are `(x, y, sample_weight)`.
All three weigh each sample's loss the same way, so from the same initial
weights and data order they train identically.
"""

import numpy as np
import pytest
import torch
from guide_support import final_lines, get_compiled_model, log_keys, mnist_like
from torch.utils.data import DataLoader, TensorDataset

class_weight = {
    0: 1.0,
    1: 1.0,
    2: 1.0,
    3: 1.0,
    4: 1.0,
    # Set weight "2" for class "5",
    # making this class 2x more important
    5: 2.0,
    6: 1.0,
    7: 1.0,
    8: 1.0,
    9: 1.0,
}

KEYS = ["loss", "sparse_categorical_accuracy"]


@pytest.fixture(scope="module")
def mnist():
    return mnist_like(50000, seed=0)


def test_fit_with_class_weight(mnist, capsys):
    x_train, y_train = mnist
    print("Fit with class weight")
    torch.manual_seed(0)
    model = get_compiled_model()
    history = model.fit(
        x_train, y_train, class_weight=class_weight, batch_size=64, epochs=1, verbose=1
    )
    out = capsys.readouterr().out
    assert out.startswith("Fit with class weight\n")
    (line,) = final_lines(out)
    assert (line["step"], line["target"]) == ("782", "782")
    assert log_keys(line) == KEYS
    assert list(history.history) == KEYS


def _fit_three_ways(x_train, y_train, epochs=2):
    sample_weight = np.ones(shape=(len(y_train),))
    sample_weight[y_train == 5] = 2.0

    torch.manual_seed(0)
    by_class = get_compiled_model()
    by_class.fit(
        x_train,
        y_train,
        class_weight=class_weight,
        batch_size=64,
        epochs=epochs,
        shuffle=False,
        verbose=0,
    )
    torch.manual_seed(0)
    by_sample = get_compiled_model()
    by_sample.fit(
        x_train,
        y_train,
        sample_weight=sample_weight,
        batch_size=64,
        epochs=epochs,
        shuffle=False,
        verbose=0,
    )

    # Create a Dataset that includes sample weights
    # (3rd element in the return tuple).
    train_dataset = TensorDataset(
        torch.from_numpy(x_train), torch.from_numpy(y_train), torch.from_numpy(sample_weight)
    )
    torch.manual_seed(0)
    by_dataset = get_compiled_model()
    by_dataset.fit(DataLoader(train_dataset, batch_size=64), epochs=epochs, verbose=0)
    return by_class, by_sample, by_dataset


def test_class_weight_sample_weight_and_weighted_dataset_train_alike(mnist):
    x_train, y_train = mnist
    models = _fit_three_ways(x_train[:3200], y_train[:3200])
    histories = [model.history.history for model in models]
    for history in histories[1:]:
        assert list(history) == KEYS
        for key in KEYS:
            np.testing.assert_allclose(history[key], histories[0][key], rtol=1e-5)
    for weights in zip(*(model.get_weights() for model in models)):
        np.testing.assert_allclose(weights[1], weights[0], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(weights[2], weights[0], rtol=1e-4, atol=1e-6)


def test_fit_with_sample_weight_and_weighted_dataset_show_782_steps(mnist, capsys):
    x_train, y_train = mnist
    sample_weight = np.ones(shape=(len(y_train),))
    sample_weight[y_train == 5] = 2.0

    print("Fit with sample weight")
    model = get_compiled_model()
    model.fit(x_train, y_train, sample_weight=sample_weight, batch_size=64, epochs=1, verbose=1)
    out = capsys.readouterr().out
    assert out.startswith("Fit with sample weight\n")
    (line,) = final_lines(out)
    assert (line["step"], line["target"]) == ("782", "782")
    assert log_keys(line) == KEYS

    train_dataset = DataLoader(
        TensorDataset(
            torch.from_numpy(x_train), torch.from_numpy(y_train), torch.from_numpy(sample_weight)
        ),
        batch_size=64,
        shuffle=True,
    )
    model = get_compiled_model()
    model.fit(train_dataset, epochs=1, verbose=1)
    (line,) = final_lines(capsys.readouterr().out)
    assert (line["step"], line["target"]) == ("782", "782")
    assert log_keys(line) == KEYS


def test_class_5_counts_double_in_the_loss(mnist):
    x_train, y_train = mnist
    x, y = x_train[:512], y_train[:512]
    model = get_compiled_model()
    probabilities = model.predict(x, verbose=0)
    per_sample = -np.log(probabilities[np.arange(len(y)), y.astype(int)])
    sample_weight = np.where(y == 5, 2.0, 1.0)
    weighted = model.evaluate(
        x, y, sample_weight=sample_weight, batch_size=512, verbose=0, return_dict=True
    )
    plain = model.evaluate(x, y, batch_size=512, verbose=0, return_dict=True)
    # Keras's "sum_over_batch_size": sum(w * loss) / N.
    assert weighted["loss"] == pytest.approx(float((per_sample * sample_weight).mean()), rel=1e-5)
    assert plain["loss"] == pytest.approx(float(per_sample.mean()), rel=1e-5)
    # The compiled metrics are not weighted (only weighted_metrics are).
    assert weighted["sparse_categorical_accuracy"] == plain["sparse_categorical_accuracy"]


def test_class_weight_favours_class_5(mnist):
    # Weighting class 5 by a large factor makes the model predict it more often.
    x_train, y_train = mnist
    x, y = x_train[:3200], y_train[:3200]
    predicted_fives = []
    for weight in (1.0, 20.0):
        torch.manual_seed(0)
        model = get_compiled_model()
        model.fit(
            x,
            y,
            class_weight={**class_weight, 5: weight},
            batch_size=64,
            epochs=1,
            shuffle=False,
            verbose=0,
        )
        predicted_fives.append(int((model.predict(x, verbose=0).argmax(axis=1) == 5).sum()))
    assert predicted_fives[1] > predicted_fives[0]


def test_class_weight_with_a_mask_of_zeros(mnist):
    # "When the weights used are ones and zeros, the array can be used as a mask."
    x_train, y_train = mnist
    x, y = x_train[:256], y_train[:256]
    mask = (y < 5).astype("float32")
    model = get_compiled_model()
    probabilities = model.predict(x, verbose=0)
    per_sample = -np.log(probabilities[np.arange(len(y)), y.astype(int)])
    loss = model.evaluate(x, y, sample_weight=mask, batch_size=256, verbose=0)[0]
    assert loss == pytest.approx(float((per_sample * mask).sum() / len(y)), rel=1e-5)
