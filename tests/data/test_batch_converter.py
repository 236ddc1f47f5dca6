"""torchfit.data.batch_converter: one user batch in final form, bad batches named."""

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit.data.batch_converter import BatchConverter


def test_batch_converter_class_weight_and_errors():
    convert = BatchConverter(class_weight={1: 4.0})
    x, y, weights = convert((np.zeros((2, 1)), np.array([1, 0])))
    assert weights.tolist() == [4.0, 1.0]
    with pytest.raises(ValueError, match="class_weight.*sample_weight"):
        convert((np.zeros(2), np.zeros(2), np.ones(2)))
    with pytest.raises(ValueError, match="needs targets"):
        convert(np.zeros(2))
    with pytest.raises(ValueError, match="single-output"):
        convert((np.zeros(2), [np.zeros(2), np.zeros(2)]))


def test_batch_converter_without_cast_keeps_dtype():
    batch = BatchConverter(cast=False)([torch.zeros(2, dtype=torch.float64)])
    assert batch[0].dtype == torch.float64


# ------------------------------------------------ bad batches, named, through fit
_X = np.random.default_rng(0).random((8, 4), dtype=np.float32)
_Y = np.random.default_rng(1).random((8, 1), dtype=np.float32)


def _model():
    torch.manual_seed(0)
    model = torchfit.Model(nn.Linear(4, 1), device="cpu")
    model.compile("sgd", "mse")
    return model


def _fit(batches):
    return _model().fit(batches, shuffle=False, verbose=0)


def test_a_generator_that_yields_none_names_the_batch_index():
    def batches():
        yield _X[:4], _Y[:4]
        yield None

    with pytest.raises(ValueError, match=r"The generator gave None as batch index 1\."):
        _fit(batches())


def test_a_batch_whose_x_and_y_lengths_differ_names_the_batch_and_the_shapes():
    def batches():
        yield _X[:4], _Y[:4]
        yield _X[:4], _Y[:3]

    with pytest.raises(
        ValueError,
        match=r"In batch index 1 of the generator, x has 4 samples but"
        r" y has 3\. Shapes: x \(4, 4\), y \(3, 1\)",
    ):
        _fit(batches())


def test_a_sample_weight_of_a_wrong_shape_names_the_batch_and_the_shapes():
    def batches():
        yield _X[:4], _Y[:4], np.ones((4, 3), "float32")

    with pytest.raises(
        ValueError,
        match=r"In batch index 0 of the generator, `sample_weight` has"
        r" shape \(4, 3\) but the targets it weighs have"
        r" shape \(4, 1\)",
    ):
        _fit(batches())
    _fit(iter([(_X[:4], _Y[:4], np.ones(4, "float32"))]))  # one weight per sample is fine


def test_a_sequence_batch_is_named_by_its_index_in_the_sequence():
    class Batches(torchfit.utils.Sequence):
        def __len__(self):
            return 3

        def __getitem__(self, index):
            return (_X[:4], _Y[:2]) if index == 2 else (_X[:4], _Y[:4])

    with pytest.raises(ValueError, match=r"In batch index 2 of the Sequence, x has 4 samples"):
        _fit(Batches())


def test_array_sample_weight_of_a_wrong_shape_is_named_before_training():
    model = _model()
    with pytest.raises(
        ValueError,
        match=r"`sample_weight` has shape \(8, 3\) but the targets it"
        r" weighs have shape \(8, 1\)",
    ):
        model.fit(_X, _Y, sample_weight=np.ones((8, 3), "float32"), verbose=0)


def test_targets_of_the_batch_before_the_loss_was_built_are_checked_when_it_is():
    convert = BatchConverter()
    convert((np.zeros((2, 1)), np.array([0, 9])), index=0)
    seen = []
    convert.check_targets(lambda y, where: seen.append((y.tolist(), where)))
    convert((np.zeros((2, 1)), np.array([1, 2])), index=1)
    assert seen == [
        ([0, 9], "in batch index 0 of the generator"),
        ([1, 2], "in batch index 1 of the generator"),
    ]
