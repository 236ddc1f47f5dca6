"""The 8x8 UCI handwritten digits, shipped inside the package.

Owns reading the bundled file and the deterministic train/test split. Nothing
is downloaded: the data is small enough (57 KB compressed) to travel with the
wheel, so examples and tests run offline.

Source: "Optical Recognition of Handwritten Digits" from the UCI Machine
Learning Repository (E. Alpaydin, C. Kaynak, 1998;
https://archive.ics.uci.edu/dataset/80), licensed CC BY 4.0. The bundled file
`data/digits.csv.gz` is, byte for byte, the copy that scikit-learn ships as
`sklearn/datasets/data/digits.csv.gz` (taken from the scikit-learn 1.9.1
wheel); it holds the 1,797 samples of the UCI test set, one per line: 64 pixel
counts in 0..16 (row-major 8x8) followed by the label.

    sha256: 09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22
"""

import gzip
import os

import numpy as np

FILE_NAME = "digits.csv.gz"
FILE_HASH = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
NUM_SAMPLES = 1797


def _data_path() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", FILE_NAME)


def _read_all():
    """Reads every sample in file order: uint8 images (N, 8, 8) and labels (N,)."""
    with gzip.open(_data_path(), "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    images = table[:, :-1].reshape(-1, 8, 8)
    labels = table[:, -1]
    return images, labels


def load_data(test_split: float = 0.2, seed: int | None = 113):
    """Loads the 1,797 8x8 handwritten digits, split into train and test.

    The samples are shuffled with `np.random.RandomState(seed)` and the last
    `test_split` fraction becomes the test set, the same rule as
    `keras.datasets.boston_housing.load_data`. The split is deterministic for a
    given seed.

    Args:
        test_split: Fraction of the samples to keep as the test set, in
            `[0, 1)`. Defaults to `0.2` (1,437 train and 360 test samples).
        seed: Seed for the shuffle before splitting, or `None` to keep the
            file's order. Defaults to `113`.

    Returns:
        Tuple of NumPy arrays: `(x_train, y_train), (x_test, y_test)`.
        `x_*` are `uint8` arrays of shape `(num_samples, 8, 8)` with pixel
        values in 0..16; `y_*` are `uint8` arrays of shape `(num_samples,)`
        with labels in 0..9.

    Raises:
        ValueError: If `test_split` is outside `[0, 1)` or `seed` is not an int.

    Example:

    >>> (x_train, y_train), (x_test, y_test) = load_data()
    >>> x_train.shape, y_train.shape, x_test.shape, y_test.shape
    ((1437, 8, 8), (1437,), (360, 8, 8), (360,))
    >>> int(x_train.max()), sorted(set(y_test.tolist())) == list(range(10))
    (16, True)
    """
    if isinstance(test_split, bool) or not isinstance(test_split, (int, float)):
        raise ValueError(
            "`test_split` must be a number in [0, 1)."
            f" Received: test_split of type {type(test_split).__name__}."
        )
    if not 0 <= test_split < 1:
        raise ValueError(f"`test_split` must be in [0, 1). Received: test_split={test_split}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(
            f"`seed` must be an int or None. Received: seed of type {type(seed).__name__}."
        )
    images, labels = _read_all()
    if seed is not None:
        indices = np.arange(len(images))
        np.random.RandomState(seed).shuffle(indices)
        images, labels = images[indices], labels[indices]
    num_train = int(len(images) * (1 - test_split))
    return (
        (np.ascontiguousarray(images[:num_train]), np.ascontiguousarray(labels[:num_train])),
        (np.ascontiguousarray(images[num_train:]), np.ascontiguousarray(labels[num_train:])),
    )
