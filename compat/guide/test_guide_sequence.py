"""Guide: "Using a keras.utils.Sequence object as input", ported to
`torchfit.utils.Sequence`.

The guide's `CIFAR10Sequence` reads image files by name in `__getitem__`
and returns whole batches. Its twin reads small images saved as `.npy`
files (NumPy stands in for skimage's `imread`/`resize`).
"""

import numpy as np
import pytest
import torch
from guide_support import final_lines, log_keys
from torch import nn

import torchfit


def imread(filename):
    return np.load(filename)


def resize(image, shape):
    """Nearest-neighbour resize of an (H, W, C) image to `shape` (H', W')."""
    rows = np.arange(shape[0]) * image.shape[0] // shape[0]
    cols = np.arange(shape[1]) * image.shape[1] // shape[1]
    return image[rows][:, cols]


class CIFAR10Sequence(torchfit.utils.Sequence):
    def __init__(self, filenames, labels, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.filenames, self.labels = filenames, labels
        self.batch_size = batch_size
        self.epochs_ended = 0

    def __len__(self):
        return int(np.ceil(len(self.filenames) / float(self.batch_size)))

    def __getitem__(self, idx):
        batch_x = self.filenames[idx * self.batch_size : (idx + 1) * self.batch_size]
        batch_y = self.labels[idx * self.batch_size : (idx + 1) * self.batch_size]
        return np.array([resize(imread(filename), (20, 20)) for filename in batch_x]).astype(
            "float32"
        ), np.array(batch_y)

    def on_epoch_end(self):
        self.epochs_ended += 1


class SmallConvNet(nn.Module):
    """Channels-last images in, class probabilities out."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3)
        self.head = nn.Linear(4, 2)

    def forward(self, images):
        features = torch.relu(self.conv(images.permute(0, 3, 1, 2)))
        return torch.softmax(self.head(features.mean(dim=(2, 3))), dim=-1)


@pytest.fixture
def image_files(tmp_path):
    """50 RGB 10x10 'images' on disk: class 1 is bright, class 0 dark."""
    rng = np.random.default_rng(0)
    filenames, labels = [], []
    for index in range(50):
        label = index % 2
        image = rng.random((10, 10, 3), dtype=np.float32) * 0.5 + 0.5 * label
        path = tmp_path / f"image_{index}.npy"
        np.save(path, image)
        filenames.append(str(path))
        labels.append(label)
    return filenames, labels


def get_model():
    torch.manual_seed(0)
    model = torchfit.Model(SmallConvNet(), device="cpu")
    model.compile(
        optimizer=torchfit.optimizers.Adam(learning_rate=0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def test_fit_on_a_sequence(image_files, capsys):
    filenames, labels = image_files
    batch_size = 8
    sequence = CIFAR10Sequence(filenames, labels, batch_size)
    model = get_model()
    history = model.fit(sequence, epochs=10, verbose=1)
    out = capsys.readouterr().out
    headers = [line for line in out.splitlines() if line.startswith("Epoch")]
    assert headers == [f"Epoch {epoch}/10" for epoch in range(1, 11)]
    finished = final_lines(out)
    # 50 files at batch size 8: 7 batches, the last one partial.
    assert [(line["step"], line["target"]) for line in finished] == [("7", "7")] * 10
    assert all(log_keys(line) == ["accuracy", "loss"] for line in finished)
    assert sequence.epochs_ended == 10
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["accuracy"][-1] == 1.0
    assert model.predict(sequence, verbose=0).shape == (50, 2)
    assert model.evaluate(sequence, verbose=0, return_dict=True)["accuracy"] == 1.0


def test_sequence_shuffle_changes_the_batch_order_not_the_batches(image_files):
    filenames, labels = image_files
    seen = []

    class Recording(CIFAR10Sequence):
        def __getitem__(self, idx):
            seen.append(idx)
            return super().__getitem__(idx)

    torch.manual_seed(0)
    model = get_model()
    model.fit(Recording(filenames, labels, 8), epochs=2, shuffle=True, verbose=0)
    first, second = seen[:7], seen[7:14]
    assert sorted(first) == sorted(second) == list(range(7))
    seen.clear()
    model.fit(Recording(filenames, labels, 8), epochs=1, shuffle=False, verbose=0)
    assert seen == list(range(7))


@pytest.mark.parametrize("use_multiprocessing", [False])
def test_sequence_with_workers(image_files, use_multiprocessing):
    filenames, labels = image_files
    sequence = CIFAR10Sequence(
        filenames, labels, 8, workers=2, use_multiprocessing=use_multiprocessing, max_queue_size=4
    )
    model = get_model()
    history = model.fit(sequence, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert sequence.epochs_ended == 2
    assert torchfit.utils.PyDataset is torchfit.utils.Sequence
