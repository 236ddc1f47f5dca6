import hashlib
import os

import numpy as np
import pytest

from torchfit.datasets import mnist


def _fake_mnist(path):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, size=(6,), dtype=np.uint8),
        "x_test": rng.integers(0, 256, size=(2, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, size=(2,), dtype=np.uint8),
    }
    np.savez(path, **arrays)
    with open(path, "rb") as f:
        return arrays, hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def fake_origin(tmp_path, monkeypatch):
    source = tmp_path / "server" / "mnist.npz"
    source.parent.mkdir()
    arrays, digest = _fake_mnist(source)
    monkeypatch.setattr(mnist, "ORIGIN", source.as_uri())
    monkeypatch.setattr(mnist, "FILE_HASH", digest)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return source, arrays


def test_real_origin_and_hash_are_keras_ones():
    assert mnist.ORIGIN == "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
    assert mnist.FILE_HASH == "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


def test_downloads_into_keras_home_and_returns_arrays(fake_origin, tmp_path):
    _, arrays = fake_origin
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    np.testing.assert_array_equal(x_train, arrays["x_train"])
    np.testing.assert_array_equal(y_train, arrays["y_train"])
    np.testing.assert_array_equal(x_test, arrays["x_test"])
    np.testing.assert_array_equal(y_test, arrays["y_test"])
    assert x_train.dtype == np.uint8
    assert (tmp_path / "keras_home" / "datasets" / "mnist.npz").is_file()


def test_second_call_uses_the_cache(fake_origin, capsys):
    source, arrays = fake_origin
    mnist.load_data()
    assert "Downloading data from" in capsys.readouterr().out
    os.remove(source)  # A second download would now fail.
    (x_train, _), _ = mnist.load_data()
    np.testing.assert_array_equal(x_train, arrays["x_train"])
    assert "Downloading" not in capsys.readouterr().out


def test_path_names_the_cached_file(fake_origin, tmp_path):
    mnist.load_data(path="my_mnist.npz")
    assert (tmp_path / "keras_home" / "datasets" / "my_mnist.npz").is_file()


def test_wrong_hash_raises_and_caches_nothing(fake_origin, tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "FILE_HASH", "0" * 64)
    with pytest.raises(ValueError, match="hash"):
        mnist.load_data()
    assert os.listdir(tmp_path / "keras_home" / "datasets") == []
