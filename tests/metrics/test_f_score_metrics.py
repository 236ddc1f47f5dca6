"""Unit tests for torchfit.metrics.f_score_metrics."""

import pytest
import torch

from torchfit.metrics.f_score_metrics import F1Score, FBetaScore

Y_TRUE = [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
Y_PRED = [[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]]


def test_per_class_scores_match_keras_docstring():
    # The numbers in Keras's own F1Score / FBetaScore examples.
    f1 = F1Score(threshold=0.5)(Y_TRUE, Y_PRED)
    assert f1.shape == (3,)
    assert f1.tolist() == pytest.approx([0.5, 0.8, 0.6666667], abs=1e-6)
    fbeta = FBetaScore(beta=2.0, threshold=0.5)(Y_TRUE, Y_PRED)
    assert fbeta.tolist() == pytest.approx([0.3846154, 0.90909094, 0.8333334], abs=1e-6)


def test_averages_hand_checked():
    per_class = F1Score(threshold=0.5)(Y_TRUE, Y_PRED)
    assert float(F1Score("macro", threshold=0.5)(Y_TRUE, Y_PRED)) == pytest.approx(
        float(per_class.mean()), abs=1e-6
    )
    # Supports 3, 2, 1.
    weighted = float((per_class * torch.tensor([3.0, 2.0, 1.0])).sum() / 6)
    result = F1Score("weighted", threshold=0.5)(Y_TRUE, Y_PRED)
    assert float(result) == pytest.approx(weighted, abs=1e-6)
    # Micro pools the counts: tp 4, fp 2, fn 2.
    micro = F1Score("micro", threshold=0.5)
    assert float(micro(Y_TRUE, Y_PRED)) == pytest.approx(2 * 4 / (2 * 4 + 2 + 2), abs=1e-6)
    assert micro.true_positives.shape == ()


def test_prediction_at_the_threshold_is_negative():
    # Keras: y_pred > threshold; `>=` would count the 0.5 entries as false positives.
    metric = F1Score(threshold=0.5)
    metric.update_state([[0, 1], [0, 1]], [[0.5, 0.75], [0.5, 0.5]])
    assert metric.false_positives.tolist() == [0.0, 0.0]
    assert metric.true_positives.tolist() == [0.0, 1.0]
    assert metric.false_negatives.tolist() == [0.0, 1.0]


def test_no_threshold_row_at_the_zero_floor_predicts_nothing():
    # Keras: |y_pred| > 1e-9, strictly; a row whose maximum is 1e-9 predicts no class.
    metric = F1Score()
    metric.update_state([[1, 0], [0, 1]], [[1e-9, 0.0], [0.0, 2e-9]])
    assert metric.true_positives.tolist() == [0.0, 1.0]
    assert metric.false_negatives.tolist() == [1.0, 0.0]


def test_no_threshold_marks_the_row_maximum_including_ties():
    metric = F1Score()
    metric.update_state([[0, 1, 0], [1, 0, 0]], [[0.3, 0.3, 0.1], [0.0, 0.0, 0.0]])
    # Row 1: both 0.3 count as predicted; row 2: all-zero row predicts nothing.
    assert metric.true_positives.tolist() == [0, 1, 0]
    assert metric.false_positives.tolist() == [1, 0, 0]
    assert metric.false_negatives.tolist() == [1, 0, 0]


def test_sample_weight_scales_each_row():
    metric = F1Score(threshold=0.5)
    metric.update_state(Y_TRUE, Y_PRED, sample_weight=[2.0, 0.0, 1.0])
    # Thresholded rows: [0, 1, 1] (weight 2), [0, 1, 1] (weight 0), [1, 1, 0].
    assert metric.true_positives.tolist() == [1, 3, 2]
    assert metric.intermediate_weights.tolist() == [3, 3, 2]


def test_reset_state_and_accumulation_across_batches():
    metric = FBetaScore(beta=0.5, threshold=0.5)
    metric.update_state(Y_TRUE[:2], Y_PRED[:2])
    metric.update_state(Y_TRUE[2:], Y_PRED[2:])
    torch.testing.assert_close(metric.result(), FBetaScore(beta=0.5, threshold=0.5)(Y_TRUE, Y_PRED))
    before = [id(v) for v in metric.variables]
    metric.reset_state()
    assert [id(v) for v in metric.variables] == before
    assert metric.result().tolist() == [0.0, 0.0, 0.0]


def test_argument_errors():
    with pytest.raises(ValueError, match="Did you mean 'macro'"):
        F1Score(average="macr")
    with pytest.raises(ValueError, match="beta"):
        FBetaScore(beta=0.0)
    with pytest.raises(ValueError, match="threshold"):
        F1Score(threshold=1.5)
    with pytest.raises(ValueError, match="2-D"):
        F1Score()([1, 0, 1], [0.2, 0.3, 0.9])


def test_names_direction_and_config():
    assert F1Score().name == "f1_score"
    assert FBetaScore().name == "fbeta_score"
    assert F1Score()._direction == "up"
    config = F1Score(average="weighted", threshold=0.3).get_config()
    assert "beta" not in config
    assert F1Score.from_config(config).get_config() == config
    assert FBetaScore(beta=2.0).get_config()["beta"] == 2.0
