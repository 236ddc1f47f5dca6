"""torchfit.losses.targets: what a loss needs from its targets, checked before it runs."""

import warnings

import numpy as np
import pytest
import torch

from torchfit import losses
from torchfit.losses.targets import SAME_SHAPE, ClassIndices, class_index_problem, shape_problem


def _t(*shape, dtype=torch.float32):
    return torch.zeros(shape, dtype=dtype)


@pytest.mark.parametrize(
    "true_shape, pred_shape",
    [
        ((8,), (8, 1)),  # Keras expands a rank-1 target
        ((8, 1), (8,)),
        ((8, 5, 1), (8, 5)),  # a trailing 1 is squeezed
        ((8, 5), (8, 5, 1)),
        ((8, 3), (8, 3)),
    ],
)
def test_same_shape_allows_what_keras_rank_matching_pairs(true_shape, pred_shape):
    assert shape_problem(SAME_SHAPE, _t(*true_shape), _t(*pred_shape)) is None


@pytest.mark.parametrize(
    "true_shape, pred_shape",
    [
        ((8, 3), (8, 1)),  # broadcast to (8, 3)
        ((8, 1), (8, 3)),
        ((3,), (3, 3)),  # (3,) would broadcast along the class axis
        ((8, 5), (8, 1, 5)),  # a size-1 axis that is not the last
        ((4, 1), (8, 1)),  # other batch size
    ],
)
def test_same_shape_rejects_what_would_be_broadcast(true_shape, pred_shape):
    problem = shape_problem(SAME_SHAPE, _t(*true_shape), _t(*pred_shape))
    assert f"target has shape {true_shape}" in problem and f"prediction {pred_shape}" in problem


@pytest.mark.parametrize(
    "true_shape, pred_shape, ok",
    [
        ((8,), (8, 3), True),
        ((8, 1), (8, 3), True),
        ((8, 5), (8, 5, 3), True),
        ((8, 3), (8, 3), False),  # one-hot targets are no class indices
        ((8, 2), (8, 3), False),
    ],
)
def test_class_indices_need_the_prediction_shape_without_the_class_axis(true_shape, pred_shape, ok):
    problem = shape_problem(ClassIndices(), _t(*true_shape, dtype=torch.long), _t(*pred_shape))
    assert (problem is None) == ok


def test_class_indices_along_another_axis_and_probability_targets_of_torch_losses():
    assert shape_problem(ClassIndices(axis=1), _t(8, 5, dtype=torch.long), _t(8, 3, 5)) is None
    torch_rule = ClassIndices(1, -100, floats_are_indices=False)
    assert shape_problem(torch_rule, _t(8, 3), _t(8, 3)) is None
    assert class_index_problem(torch.full((4,), 0.5), 3, torch_rule) is None


def test_no_rule_and_targets_without_a_shape_pass():
    assert shape_problem(None, _t(8, 3), _t(8, 1)) is None
    assert shape_problem(SAME_SHAPE, [1.0, 2.0], _t(2, 1)) is None


@pytest.mark.parametrize(
    "values, problem",
    [
        (torch.tensor([0, 1, 2]), None),
        (np.array([0.0, 2.0]), None),
        (torch.tensor([0, 3, 7, 3]), "labels 3, 7 are outside the valid range [0, 2]"),
        (torch.tensor([-1, 0]), "labels -1 are outside the valid range [0, 2]"),
        (torch.tensor([0.0, 0.5, 2.25]), "labels 0.5, 2.25 are not integers"),
        (torch.tensor([1.0, float("nan")]), "labels include NaN"),
        (torch.arange(20), "labels 3, 4, 5, 6, 7 and 12 more are outside the valid range [0, 2]"),
    ],
)
def test_class_index_problem_names_the_bad_labels(values, problem):
    assert class_index_problem(values, 3, ClassIndices()) == problem


def test_ignore_class_is_allowed_outside_the_range():
    rule = ClassIndices(ignore_class=255)
    assert class_index_problem(torch.tensor([0, 255, 2]), 3, rule) is None
    assert class_index_problem(torch.tensor([0, 254]), 3, rule) == (
        "labels 254 are outside the valid range [0, 2]"
    )


def test_read_only_numpy_labels_are_read_without_a_warning():
    labels = np.array([0, 5])
    labels.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "5" in class_index_problem(labels, 3, ClassIndices())


def test_each_builtin_loss_declares_its_rule():
    assert losses.get("mse").target_rule == SAME_SHAPE
    assert losses.get("categorical_crossentropy").target_rule == SAME_SHAPE
    assert losses.SparseCategoricalCrossentropy(ignore_class=-1).target_rule == ClassIndices(-1, -1)
    assert losses.get(torch.nn.CrossEntropyLoss()).target_rule == ClassIndices(1, -100, False)
    assert losses.get(lambda y_true, y_pred: y_pred).target_rule is None  # a user's loss decides
    assert losses.get(torch.nn.MSELoss()).target_rule is None
