import math

import numpy as np
import pytest
import torch

from torchfit.utils.numerical_utils import normalize, to_categorical


def test_to_categorical_numpy_vector_and_column():
    expected = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]], dtype=np.float32)
    for labels in ([0, 2, 1], np.array([[0], [2], [1]]), np.array([0.0, 2.9, 1.2])):
        out = to_categorical(labels)
        assert isinstance(out, np.ndarray) and out.dtype == np.float32
        np.testing.assert_array_equal(out, expected)


def test_to_categorical_keeps_leading_axes_and_num_classes():
    out = to_categorical(np.array([[0, 1], [1, 0]]), num_classes=4)
    assert out.shape == (2, 2, 4)
    np.testing.assert_array_equal(out[0, 1], [0, 1, 0, 0])
    assert to_categorical(np.zeros((0,), dtype=int), num_classes=3).shape == (0, 3)


def test_to_categorical_tensor_returns_float_tensor():
    labels = torch.tensor([[2], [0]])
    out = to_categorical(labels)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert out.device == labels.device
    assert torch.equal(out, torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    assert to_categorical(torch.tensor([1, 0]), num_classes=5).shape == (2, 5)


@pytest.mark.parametrize("make", [np.array, torch.tensor])
def test_to_categorical_rejects_out_of_range_labels(make):
    with pytest.raises(ValueError, match="num_classes=3"):
        to_categorical(make([0, 3]), num_classes=3)
    with pytest.raises(ValueError, match=">= 0"):
        to_categorical(make([0, -1]))


@pytest.mark.parametrize("num_classes", [0, -2, 2.5, True])
def test_to_categorical_rejects_bad_num_classes(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        to_categorical([0, 1], num_classes=num_classes)


def test_to_categorical_empty_needs_num_classes():
    with pytest.raises(ValueError, match="num_classes"):
        to_categorical([])
    with pytest.raises(ValueError, match="num_classes"):
        to_categorical(torch.zeros(0, dtype=torch.long))


def test_normalize_numpy_l2_l1_and_zero_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(normalize(x), [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_allclose(normalize(x, order=1), [[3 / 7, 4 / 7], [0.0, 0.0]])
    np.testing.assert_allclose(normalize(x, order=math.inf), [[0.75, 1.0], [0.0, 0.0]])
    assert normalize(np.array([[3, 4]])).dtype == np.float64


def test_normalize_along_axis_zero():
    x = np.array([[3.0, 1.0], [4.0, 0.0]])
    np.testing.assert_allclose(normalize(x, axis=0), [[0.6, 1.0], [0.8, 0.0]])
    np.testing.assert_allclose(normalize(np.array([3.0, 4.0]), axis=0), [0.6, 0.8])


def test_normalize_tensor_returns_tensor():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    out = normalize(x)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)
    assert normalize(torch.tensor([1, 3]), order=1).dtype == torch.float32


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_normalize_gives_unit_norm(seed, order):
    x = np.random.default_rng(seed).normal(size=(5, 7))
    for axis in (-1, 0):
        out = normalize(x, axis=axis, order=order)
        np.testing.assert_allclose(np.linalg.norm(out, ord=order, axis=axis), 1.0)
        np.testing.assert_allclose(
            normalize(torch.from_numpy(x), axis=axis, order=order).numpy(), out
        )


@pytest.mark.parametrize("order", [0, 0.5, -1, "l2"])
def test_normalize_rejects_bad_order(order):
    with pytest.raises(ValueError, match="order"):
        normalize(np.ones(3), order=order)


def test_normalize_rejects_bad_axis():
    with pytest.raises(ValueError, match="axis"):
        normalize(np.ones((2, 3)), axis=2)
