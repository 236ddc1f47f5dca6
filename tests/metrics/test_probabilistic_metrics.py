import math

import pytest
import torch

from torchfit import metrics


def test_binary_crossentropy_probabilities_and_logits_agree():
    probs = metrics.binary_crossentropy([[1.0, 0.0]], [[0.8, 0.3]])
    logits = metrics.binary_crossentropy(
        [[1.0, 0.0]], torch.logit(torch.tensor([[0.8, 0.3]])), from_logits=True
    )
    assert float(probs) == pytest.approx(float(logits), rel=1e-5)


def test_binary_crossentropy_label_smoothing():
    value = metrics.binary_crossentropy([[1.0]], [[0.5]], label_smoothing=0.2)
    assert float(value) == pytest.approx(math.log(2.0), rel=1e-6)


def test_binary_crossentropy_matches_rank_one_labels():
    metric = metrics.BinaryCrossentropy()
    assert float(metric([1.0, 0.0], [[0.5], [0.5]])) == pytest.approx(math.log(2.0), rel=1e-6)


def test_categorical_crossentropy_renormalizes_and_clips():
    value = metrics.categorical_crossentropy([[0.0, 1.0]], [[2.0, 2.0]])
    assert float(value) == pytest.approx(math.log(2.0), rel=1e-6)
    clipped = metrics.categorical_crossentropy([[1.0, 0.0]], [[0.0, 1.0]])
    assert float(clipped) == pytest.approx(-math.log(1e-7), rel=1e-4)


def test_categorical_crossentropy_shape_mismatch_names_shapes():
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        metrics.categorical_crossentropy([1, 0], [[0.5, 0.5], [0.5, 0.5]])


def test_sparse_crossentropy_ignore_class_masks_weighted_entries():
    metric = metrics.SparseCategoricalCrossentropy(ignore_class=0)
    metric.update_state([0, 1], [[0.5, 0.5], [0.5, 0.5]], sample_weight=[1.0, 1.0])
    assert float(metric.result()) == pytest.approx(math.log(2.0), rel=1e-6)


def test_sparse_crossentropy_ignore_class_leaves_the_entry_out_of_the_average():
    # The ignored entry has its own loss (-log 0.9) and the weights sum to 4, not 2:
    # counting it, keeping its loss, or dividing by the batch size each give another number.
    metric = metrics.SparseCategoricalCrossentropy(ignore_class=0)
    metric.update_state([0, 1], [[0.9, 0.1], [0.25, 0.75]], sample_weight=[1.0, 3.0])
    assert float(metric.result()) == pytest.approx(-math.log(0.75), rel=1e-6)


def test_sparse_crossentropy_class_axis_first():
    scores = torch.tensor([[0.2, 0.7], [0.8, 0.3]])  # classes on axis 0
    value = metrics.sparse_categorical_crossentropy([1, 0], scores, axis=0)
    expected = metrics.sparse_categorical_crossentropy([1, 0], scores.T)
    assert torch.allclose(value, expected)


@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_crossentropy_on_sequences_takes_the_last_axis_as_classes(from_logits):
    # (batch, time, classes) scores: the class axis (2) must move to torch's axis 1.
    scores = torch.rand(2, 3, 4, generator=torch.Generator().manual_seed(0)) + 0.1
    if not from_logits:
        scores = scores / scores.sum(dim=-1, keepdim=True)
    labels = torch.tensor([[0, 3, 1], [2, 2, 0]])
    value = metrics.sparse_categorical_crossentropy(labels, scores, from_logits=from_logits)
    log_probs = torch.log_softmax(scores, -1) if from_logits else torch.log(scores)
    expected = -log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    assert value.shape == (2, 3)
    torch.testing.assert_close(value, expected)


def test_kl_divergence_and_poisson_values():
    assert float(metrics.KLDivergence()([[0.5, 0.5]], [[0.5, 0.5]])) == 0.0
    assert float(metrics.Poisson()([[0.0]], [[2.0]])) == pytest.approx(2.0)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (metrics.BinaryCrossentropy, {"from_logits": True, "label_smoothing": 0.1}),
        (metrics.CategoricalCrossentropy, {"from_logits": True, "label_smoothing": 0.1, "axis": 1}),
        (metrics.SparseCategoricalCrossentropy, {"from_logits": True, "ignore_class": 3}),
    ],
)
def test_config_round_trip_and_direction(cls, kwargs):
    metric = cls(**kwargs)
    clone = cls.from_config(metric.get_config())
    assert clone.get_config() == metric.get_config()
    assert clone._direction == "down"
