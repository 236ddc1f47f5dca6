"""Metric functions `huber`, `binary_focal_crossentropy`, `categorical_focal_crossentropy`."""

import math

import pytest
import torch

from torchfit import metrics


def test_huber_is_quadratic_up_to_delta_then_linear():
    # Errors 1.0 (== delta), 3.0 (linear: 3 - 0.5) and -0.5 (quadratic).
    values = metrics.huber([[0.0, 0.0, 0.0]], [[1.0, 3.0, -0.5]])
    assert values.tolist() == pytest.approx([(0.5 + 2.5 + 0.125) / 3])
    # delta = 2: an error of 3 costs 2 * 3 - 0.5 * 2^2 = 4, one of 1.5 costs 1.125.
    assert metrics.huber([[0.0, 0.0]], [[3.0, -1.5]], delta=2.0).tolist() == [2.5625]


def test_huber_matches_shapes_like_the_other_regression_functions():
    assert metrics.huber([1.0, 2.0], [[1.0], [4.0]]).tolist() == [0.0, 1.5]


def test_binary_focal_is_bce_when_gamma_is_zero_and_down_weights_easy_examples():
    y_true, y_pred = [[1.0, 0.0, 1.0]], [[0.9, 0.2, 0.3]]
    plain = metrics.binary_crossentropy(y_true, y_pred)
    torch.testing.assert_close(metrics.binary_focal_crossentropy(y_true, y_pred, gamma=0.0), plain)
    # gamma = 2: each term times (1 - p_t)^2 with p_t = 0.9, 0.8, 0.3.
    terms = [-math.log(0.9) * 0.01, -math.log(0.8) * 0.04, -math.log(0.3) * 0.49]
    focal = metrics.binary_focal_crossentropy(y_true, y_pred)
    assert focal.item() == pytest.approx(sum(terms) / 3, rel=1e-5)
    balanced = metrics.binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=True,
                                                 alpha=0.25)  # fmt: skip
    weighted = [0.25 * terms[0], 0.75 * terms[1], 0.25 * terms[2]]
    assert balanced.item() == pytest.approx(sum(weighted) / 3, rel=1e-5)


def test_binary_focal_from_logits_and_label_smoothing():
    logits = torch.tensor([[2.0, -1.0]])
    probabilities = torch.sigmoid(logits)
    torch.testing.assert_close(
        metrics.binary_focal_crossentropy([[1.0, 0.0]], logits, from_logits=True),
        metrics.binary_focal_crossentropy([[1.0, 0.0]], probabilities),
    )
    smoothed = metrics.binary_focal_crossentropy([[1.0, 0.0]], probabilities, label_smoothing=0.2)
    torch.testing.assert_close(
        smoothed, metrics.binary_focal_crossentropy([[0.9, 0.1]], probabilities)
    )


def test_categorical_focal_weights_each_class_term():
    y_true, y_pred = [[0.0, 1.0, 0.0]], [[0.2, 0.6, 0.2]]
    # Only the true class counts: alpha * (1 - 0.6)^2 * -log(0.6).
    expected = 0.25 * 0.16 * -math.log(0.6)
    assert metrics.categorical_focal_crossentropy(y_true, y_pred).item() == pytest.approx(expected)
    per_class = metrics.categorical_focal_crossentropy(y_true, y_pred, alpha=[0.1, 0.5, 0.9])
    assert per_class.item() == pytest.approx(0.5 * 0.16 * -math.log(0.6))
    # Unnormalized scores are renormalized first.
    torch.testing.assert_close(
        metrics.categorical_focal_crossentropy(y_true, [[1.0, 3.0, 1.0]]),
        metrics.categorical_focal_crossentropy(y_true, y_pred),
    )


def test_categorical_focal_errors_name_the_problem():
    with pytest.raises(ValueError, match="same shape"):
        metrics.categorical_focal_crossentropy([1, 0], [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match="axis"):
        metrics.categorical_focal_crossentropy([[1.0, 0.0]], [[0.5, 0.5]], axis=True)


@pytest.mark.parametrize(
    "fn", [metrics.huber, metrics.binary_focal_crossentropy, metrics.categorical_focal_crossentropy]
)
def test_wrapped_in_mean_metric_wrapper_and_named_after_the_function(fn):
    metric = metrics.get(fn)
    assert metric.name == fn.__name__
    metric.update_state([[0.0, 1.0]], [[0.3, 0.7]], sample_weight=[2.0])
    assert metric.result().item() == pytest.approx(fn([[0.0, 1.0]], [[0.3, 0.7]]).item())
