"""Guide: "Automatically setting apart a validation holdout set", ported to torchfit.

`validation_split=0.2` holds out the last 20% of the arrays, before any
shuffling: 50,000 MNIST samples leave 40,000 to train on, 625 steps at
batch size 64.
"""

import pytest
import torch
from guide_support import final_lines, get_compiled_model, log_keys, mnist_like


def test_validation_split(capsys):
    x_train, y_train = mnist_like(50000, seed=0)
    torch.manual_seed(0)
    model = get_compiled_model()
    history = model.fit(x_train, y_train, batch_size=64, validation_split=0.2, epochs=1, verbose=1)
    (line,) = final_lines(capsys.readouterr().out)
    assert (line["step"], line["target"]) == ("625", "625")
    keys = ["loss", "sparse_categorical_accuracy", "val_loss", "val_sparse_categorical_accuracy"]
    assert log_keys(line) == keys
    assert list(history.history) == keys

    # The holdout is the last 20% of the arrays: evaluating them now gives
    # exactly the validation logs of the (only) epoch.
    logs = model.evaluate(
        x_train[-10000:], y_train[-10000:], batch_size=64, verbose=0, return_dict=True
    )
    assert history.history["val_loss"][0] == pytest.approx(logs["loss"], rel=1e-5)
    assert history.history["val_sparse_categorical_accuracy"][0] == pytest.approx(
        logs["sparse_categorical_accuracy"], rel=1e-6
    )


@pytest.mark.parametrize("validation_split, train_steps", [(0.6, 32), (0.2, 63)])
def test_validation_split_fractions(validation_split, train_steps, capsys):
    # "validation_split=0.6 means use 60% of the data for validation".
    x_train, y_train = mnist_like(5000, seed=1)
    model = get_compiled_model()
    model.fit(
        x_train, y_train, batch_size=64, validation_split=validation_split, epochs=1, verbose=2
    )
    out = capsys.readouterr().out
    assert out.startswith(f"{train_steps}/{train_steps} - ")


def test_validation_split_only_with_arrays():
    x_train, y_train = mnist_like(640, seed=2)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train)),
        batch_size=64,
    )
    model = get_compiled_model()
    with pytest.raises(ValueError, match=r"`validation_split` needs arrays or tensors.*DataLoader"):
        model.fit(loader, validation_split=0.2, epochs=1, verbose=0)
