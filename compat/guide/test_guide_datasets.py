"""Guide: "Training & evaluation from tf.data Datasets", ported to torch's
`DataLoader` (a batched, shuffled dataset) and map-style `Dataset`.

50,000 training samples at batch 64 are 782 steps; 10,000 test samples are
157. With `steps_per_epoch=100` each epoch is 100/100 and the next epoch
continues where the last one stopped.
"""

import pytest
import torch
from guide_support import final_lines, get_compiled_model, log_keys, mnist_like
from torch.utils.data import DataLoader, Dataset, TensorDataset


@pytest.fixture(scope="module")
def mnist():
    x_train, y_train = mnist_like(60000, seed=0)
    x_test, y_test = mnist_like(10000, seed=1)
    x_val, y_val = x_train[-10000:], y_train[-10000:]
    return (x_train[:-10000], y_train[:-10000]), (x_val, y_val), (x_test, y_test)


def from_tensor_slices(*arrays):
    return TensorDataset(*(torch.from_numpy(array) for array in arrays))


class RecordingDataset(Dataset):
    """A map-style dataset that records which samples were read."""

    def __init__(self, x, y):
        self.x, self.y = x, y
        self.read = []

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        self.read.append(index)
        return self.x[index], self.y[index]


def test_fit_and_evaluate_on_dataloaders(mnist, capsys):
    (x_train, y_train), _, (x_test, y_test) = mnist
    torch.manual_seed(0)
    model = get_compiled_model()

    # First, let's create a training Dataset instance. Shuffle and batch it.
    train_dataset = DataLoader(from_tensor_slices(x_train, y_train), batch_size=64, shuffle=True)
    # Now we get a test dataset.
    test_dataset = DataLoader(from_tensor_slices(x_test, y_test), batch_size=64)

    # Since the dataset already takes care of batching,
    # we don't pass a `batch_size` argument.
    history = model.fit(train_dataset, epochs=1, verbose=1)

    # You can also evaluate or predict on a dataset.
    print("Evaluate")
    result = model.evaluate(test_dataset, verbose=1)
    logs = dict(zip(model.metrics_names, result))
    out = capsys.readouterr().out
    train_bar, test_bar = final_lines(out)
    assert (train_bar["step"], train_bar["target"]) == ("782", "782")
    assert (test_bar["step"], test_bar["target"]) == ("157", "157")
    assert log_keys(train_bar) == log_keys(test_bar) == ["loss", "sparse_categorical_accuracy"]
    assert "\nEvaluate\n" in out
    assert list(logs) == ["loss", "sparse_categorical_accuracy"]
    assert all(isinstance(value, float) for value in logs.values())
    assert logs["sparse_categorical_accuracy"] > 0.5
    assert list(history.history) == ["loss", "sparse_categorical_accuracy"]
    assert model.predict(test_dataset, verbose=0).shape == (10000, 10)


def test_the_dataset_is_reset_at_the_end_of_each_epoch(mnist, capsys):
    (x_train, y_train), _, _ = mnist
    dataset = RecordingDataset(x_train[:640], y_train[:640])
    model = get_compiled_model()
    model.fit(DataLoader(dataset, batch_size=64, shuffle=True), epochs=3, verbose=1)
    finished = final_lines(capsys.readouterr().out)
    assert [(line["step"], line["target"]) for line in finished] == [("10", "10")] * 3
    # Every epoch reads every sample once.
    for epoch in range(3):
        assert sorted(dataset.read[epoch * 640 : (epoch + 1) * 640]) == list(range(640))


def test_a_map_style_dataset_is_batched_with_batch_size(mnist, capsys):
    (x_train, y_train), _, _ = mnist
    model = get_compiled_model()
    model.fit(RecordingDataset(x_train[:640], y_train[:640]), batch_size=64, epochs=1, verbose=2)
    assert capsys.readouterr().out.startswith("10/10 - ")


def test_steps_per_epoch_draws_the_next_batches(mnist, capsys):
    (x_train, y_train), _, _ = mnist
    torch.manual_seed(0)
    model = get_compiled_model()

    # Prepare the training dataset
    dataset = RecordingDataset(x_train, y_train)
    train_dataset = DataLoader(dataset, batch_size=64, shuffle=True)

    # Only use the 100 batches per epoch (that's 64 * 100 samples)
    history = model.fit(train_dataset, epochs=3, steps_per_epoch=100, verbose=1)
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("Epoch")] == [
        "Epoch 1/3",
        "Epoch 2/3",
        "Epoch 3/3",
    ]
    finished = final_lines(out)
    assert [(line["step"], line["target"]) for line in finished] == [("100", "100")] * 3
    assert history.epoch == [0, 1, 2]
    # The dataset is not reset between epochs: 300 batches, 19,200 distinct samples.
    assert len(dataset.read) == 300 * 64
    assert len(set(dataset.read)) == 300 * 64


def test_validation_dataset(mnist, capsys):
    (x_train, y_train), (x_val, y_val), _ = mnist
    torch.manual_seed(0)
    model = get_compiled_model()
    train_dataset = DataLoader(
        from_tensor_slices(x_train[:6400], y_train[:6400]), batch_size=64, shuffle=True
    )
    val_dataset = DataLoader(from_tensor_slices(x_val, y_val), batch_size=64)

    history = model.fit(train_dataset, epochs=1, validation_data=val_dataset, verbose=1)
    (line,) = final_lines(capsys.readouterr().out)
    keys = ["loss", "sparse_categorical_accuracy", "val_loss", "val_sparse_categorical_accuracy"]
    assert log_keys(line) == keys
    assert list(history.history) == keys
    logs = model.evaluate(val_dataset, verbose=0, return_dict=True)
    assert history.history["val_loss"][0] == pytest.approx(logs["loss"], rel=1e-5)


def test_validation_steps(mnist):
    (x_train, y_train), (x_val, y_val), _ = mnist
    torch.manual_seed(0)
    model = get_compiled_model()
    train_dataset = DataLoader(
        from_tensor_slices(x_train[:6400], y_train[:6400]), batch_size=64, shuffle=True
    )
    val_dataset = DataLoader(from_tensor_slices(x_val, y_val), batch_size=64)

    val_reads = RecordingDataset(x_val, y_val)
    history = model.fit(
        train_dataset,
        epochs=2,
        # Only run validation using the first 10 batches of the dataset
        # using the `validation_steps` argument
        validation_data=DataLoader(val_reads, batch_size=64),
        validation_steps=10,
        verbose=0,
    )
    # The validation dataset is reset after each use: the same 640 samples every epoch.
    assert val_reads.read == list(range(640)) * 2
    logs = model.evaluate(val_dataset, steps=10, verbose=0, return_dict=True)
    assert history.history["val_loss"][1] == pytest.approx(logs["loss"], rel=1e-5)
    assert logs == pytest.approx(
        model.evaluate(x_val[:640], y_val[:640], batch_size=64, verbose=0, return_dict=True),
        rel=1e-5,
    )


def test_validation_split_is_not_supported_for_datasets(mnist):
    (x_train, y_train), _, _ = mnist
    train_dataset = DataLoader(from_tensor_slices(x_train[:640], y_train[:640]), batch_size=64)
    with pytest.raises(ValueError, match=r"`validation_split` needs arrays or tensors"):
        get_compiled_model().fit(train_dataset, validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match=r"When `x` is a DataLoader, `y` should not be passed"):
        get_compiled_model().fit(train_dataset, y_train[:640], verbose=0)
