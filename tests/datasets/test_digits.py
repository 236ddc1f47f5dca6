import fnmatch
import hashlib
import os

import numpy as np
import pytest
import tomllib

from torchfit.datasets import digits

# Per-class counts of the 1,797 UCI digits (0..9), as documented for the set.
CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_shapes_dtypes_and_ranges():
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    assert x_train.shape == (1437, 8, 8) and y_train.shape == (1437,)
    assert x_test.shape == (360, 8, 8) and y_test.shape == (360,)
    for array in (x_train, y_train, x_test, y_test):
        assert array.dtype == np.uint8
    assert x_train.min() == 0 and x_train.max() == 16
    assert set(np.unique(y_test)) == set(range(10))


def test_all_samples_are_present_once():
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    labels = np.concatenate([y_train, y_test])
    assert np.bincount(labels, minlength=10).tolist() == CLASS_COUNTS
    all_images, all_labels = digits._read_all()
    split_rows = np.concatenate([x_train, x_test]).reshape(-1, 64)
    assert sorted(map(bytes, split_rows)) == sorted(map(bytes, all_images.reshape(-1, 64)))


def test_split_is_deterministic_and_depends_on_seed():
    first = digits.load_data(seed=113)
    second = digits.load_data(seed=113)
    other = digits.load_data(seed=7)
    np.testing.assert_array_equal(first[0][0], second[0][0])
    np.testing.assert_array_equal(first[1][1], second[1][1])
    assert not np.array_equal(first[0][1], other[0][1])


def test_seed_none_keeps_file_order():
    (x_train, y_train), _ = digits.load_data(test_split=0.5, seed=None)
    assert y_train[:10].tolist() == list(range(10))
    # The first image of the file is a zero with this top row.
    assert x_train[0, 0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]


@pytest.mark.parametrize("test_split, num_test", [(0.0, 0), (0.5, 899), (0.9, 1618)])
def test_test_split_sizes(test_split, num_test):
    (x_train, _), (x_test, y_test) = digits.load_data(test_split=test_split)
    assert len(x_test) == len(y_test) == num_test
    assert len(x_train) + len(x_test) == digits.NUM_SAMPLES
    assert x_test.shape[1:] == (8, 8)


@pytest.mark.parametrize("test_split", [1.0, -0.1, "0.2", True])
def test_bad_test_split(test_split):
    with pytest.raises(ValueError, match="test_split"):
        digits.load_data(test_split=test_split)


@pytest.mark.parametrize("seed", [1.5, "113"])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        digits.load_data(seed=seed)


def test_shipped_file_matches_documented_checksum():
    with open(digits._data_path(), "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert digest == digits.FILE_HASH
    assert digits.FILE_HASH in digits.__doc__


def test_data_file_is_declared_as_package_data():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(repo, "pyproject.toml"), "rb") as f:
        package_data = tomllib.load(f)["tool"]["setuptools"]["package-data"]["torchfit"]
    data_path = os.path.realpath(digits._data_path())
    relative = os.path.relpath(data_path, os.path.realpath(os.path.join(repo, "torchfit")))
    relative = relative.replace(os.sep, "/")
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in package_data)
