"""Tests for torchfit.optimizers._gradients: collecting, accumulating and clipping gradients."""

import math

import numpy as np
import pytest
import torch

from torchfit.optimizers import _gradients


def _tensors(*rows):
    return [torch.tensor(row, dtype=torch.float32) for row in rows]


def _flat(batches):
    return [g.tolist() for _, _, grads in batches for g in grads]


# --- collecting ------------------------------------------------------------------


def test_collect_grads_skips_params_and_groups_without_grad():
    a, b, c = (torch.nn.Parameter(torch.zeros(1)) for _ in range(3))
    a.grad = torch.ones(1)
    groups = [{"params": [a, b]}, {"params": [c]}]
    batches = _gradients.collect_grads(groups)
    assert len(batches) == 1
    group, params, grads = batches[0]
    assert group is groups[0] and params == [a] and grads[0] is a.grad


def test_group_grads_sorts_by_group_and_converts_arrays():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    groups = [{"params": [a]}, {"params": [b]}]
    index = {id(a): 0, id(b): 1}
    batches = _gradients.group_grads([[3.0], np.ones(2)], [b, a], groups, index, "sgd")
    assert [(group is groups[i], params) for i, (group, params, _) in enumerate(batches)] == [
        (True, [a]),
        (True, [b]),
    ]
    assert _flat(batches) == [[1.0, 1.0], [3.0]]
    assert batches[0][2][0].dtype == torch.float32


def test_group_grads_warns_for_missing_gradients():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    index = {id(a): 0, id(b): 0}
    with pytest.warns(UserWarning, match="1 variable"):
        batches = _gradients.group_grads(
            [None, torch.ones(1)], [a, b], [{"params": [a, b]}], index, "sgd"
        )
    assert batches[0][1] == [b]


@pytest.mark.parametrize(
    ("grads", "match"),
    [
        ([torch.ones(3)], "shape \\(3,\\) does not match"),
        ([None], "No gradients"),
    ],
)
def test_group_grads_errors(grads, match):
    a = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match=match):
        _gradients.group_grads(grads, [a], [{"params": [a]}], {id(a): 0}, "sgd")


def test_group_grads_unknown_variable_names_the_optimizer():
    a = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="optimizer 'my_sgd' was built with other"):
        _gradients.group_grads([torch.ones(2)], [a], [], {}, "my_sgd")


# --- argument checks -----------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 0, True, 2.0, "2"])
def test_bad_accumulation_steps(steps):
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        _gradients.check_accumulation_steps(steps)


@pytest.mark.parametrize("steps", [None, 2, 8])
def test_good_accumulation_steps(steps):
    _gradients.check_accumulation_steps(steps)


def test_only_one_kind_of_clipping():
    _gradients.check_clipping(1.0, None, None)
    with pytest.raises(ValueError, match="Only one of"):
        _gradients.check_clipping(None, 0.5, 1.0)


# --- unscaling and accumulation -----------------------------------------------


def test_unscale_divides_into_new_tensors():
    grads = _tensors([8.0, -4.0])
    batches = _gradients.unscale([({}, ["p"], grads)], 4.0)
    assert _flat(batches) == [[2.0, -1.0]]
    assert grads[0].tolist() == [8.0, -4.0]


def test_accumulate_then_mean_of_the_cycle():
    accumulators = [_tensors([0.0], [0.0])]
    for row in ([1.0], [2.0]):
        _gradients.accumulate([({}, ["p", "q"], _tensors(row, [10.0]))], accumulators)
    assert [a.tolist() for a in accumulators[0]] == [[3.0], [20.0]]
    mean = _gradients.accumulated_mean([({}, ["p", "q"], _tensors([3.0], [10.0]))], accumulators, 3)
    assert _flat(mean) == [[2.0], [10.0]]
    assert accumulators[0][0].tolist() == [3.0]  # resetting is the caller's job


# --- clipping ----------------------------------------------------------------------


def test_clip_without_a_limit_returns_the_same_batches():
    batches = [({}, ["p"], _tensors([30.0]))]
    assert _gradients.clip(batches) is batches
    assert _gradients.clip(batches, clipnorm=0.0) is batches


def test_clip_by_norm_scales_each_gradient_alone():
    batches = [({}, ["a"], _tensors([3.0, 4.0])), ({}, ["b"], _tensors([0.5]))]
    clipped = _gradients.clip(batches, clipnorm=1.0)
    assert _flat(clipped)[0] == pytest.approx([0.6, 0.8])
    assert _flat(clipped)[1] == [0.5]
    assert [p for _, p, _ in clipped] == [["a"], ["b"]]
    assert _flat(batches)[0] == [3.0, 4.0]


def test_clip_by_global_norm_scales_all_together_across_groups():
    batches = [({}, ["a"], _tensors([3.0])), ({}, ["b", "c"], _tensors([0.0], [4.0]))]
    clipped = _gradients.clip(batches, global_clipnorm=1.0)
    assert [g[0] for g in _flat(clipped)] == pytest.approx([0.6, 0.0, 0.8])
    assert [len(grads) for _, _, grads in clipped] == [1, 2]


def test_clip_by_global_norm_leaves_small_gradients_and_shows_nan():
    assert _gradients.clip_by_global_norm(_tensors([0.3], [0.4]), 1.0)[1].tolist() == pytest.approx(
        [0.4]
    )
    clipped = _gradients.clip_by_global_norm(_tensors([math.inf], [1.0]), 1.0)
    assert all(math.isnan(g.item()) for g in clipped)


def test_clip_by_value_clamps_elements():
    clipped = _gradients.clip([({}, ["w"], _tensors([2.0, -0.25, -3.0]))], clipvalue=0.5)
    assert _flat(clipped) == [[0.5, -0.25, -0.5]]
