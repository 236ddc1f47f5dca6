"""Unit tests for torchfit.metrics.confusion_metrics and its shared counting."""

import math

import numpy as np
import pytest
import torch

from torchfit.metrics import _confusion_utils as utils
from torchfit.metrics.confusion_metrics import (
    AUC,
    FalseNegatives,
    FalsePositives,
    Precision,
    PrecisionAtRecall,
    Recall,
    RecallAtPrecision,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
    TrueNegatives,
    TruePositives,
)

Y_TRUE = [0, 1, 1, 0, 1, 0]
Y_PRED = [0.1, 0.4, 0.8, 0.6, 0.5, 0.2]


def test_counts_at_several_thresholds():
    thresholds = [0.3, 0.5, 0.7]
    # positives 0.4, 0.8, 0.5; negatives 0.1, 0.6, 0.2; "above" is strict.
    assert TruePositives(thresholds)(Y_TRUE, Y_PRED).tolist() == [3, 1, 1]
    assert FalsePositives(thresholds)(Y_TRUE, Y_PRED).tolist() == [1, 1, 0]
    assert TrueNegatives(thresholds)(Y_TRUE, Y_PRED).tolist() == [2, 2, 3]
    assert FalseNegatives(thresholds)(Y_TRUE, Y_PRED).tolist() == [0, 2, 2]


def test_single_threshold_gives_0d_result_and_weights_apply():
    metric = TruePositives()
    result = metric(Y_TRUE, Y_PRED, sample_weight=[1, 2, 3, 4, 5, 6])
    assert result.shape == ()
    assert float(result) == 3.0  # only 0.8 is above 0.5
    metric.update_state(np.array(Y_TRUE), torch.tensor(Y_PRED), sample_weight=2.0)
    assert float(metric.result()) == 5.0


def test_result_does_not_alias_the_state():
    metric = TruePositives()
    result = metric([1], [0.9])
    metric.reset_state()
    assert float(result) == 1.0
    assert float(metric.result()) == 0.0


def test_reset_state_keeps_tensor_identity():
    metric = Precision(thresholds=[0.2, 0.6])
    before = [id(v) for v in metric.variables]
    metric(Y_TRUE, Y_PRED)
    metric.reset_state()
    assert [id(v) for v in metric.variables] == before
    assert all(float(v.abs().sum()) == 0.0 for v in metric.variables)


def test_precision_and_recall_hand_checked():
    assert float(Precision()(Y_TRUE, Y_PRED)) == pytest.approx(1 / 2)
    assert float(Recall()(Y_TRUE, Y_PRED)) == pytest.approx(1 / 3)
    assert Precision(thresholds=[0.3, 0.7])(Y_TRUE, Y_PRED).tolist() == pytest.approx([0.75, 1.0])


def test_precision_is_zero_without_predicted_positives():
    assert float(Precision()([1, 0], [0.1, 0.2])) == 0.0


def test_top_k_counts_only_the_k_largest_per_row():
    y_true = [[0, 0, 1, 1]]
    y_pred = [[0.9, 0.3, 0.8, 0.7]]
    # top 2: 0.9 (negative) and 0.8 (positive).
    assert float(Precision(top_k=2)(y_true, y_pred)) == pytest.approx(0.5)
    assert float(Recall(top_k=2)(y_true, y_pred)) == pytest.approx(0.5)
    assert float(Precision(top_k=3)(y_true, y_pred)) == pytest.approx(2 / 3)


def test_class_id_selects_one_column():
    y_true = [[0, 1], [1, 1], [0, 0]]
    y_pred = [[0.9, 0.2], [0.1, 0.7], [0.2, 0.6]]
    assert float(Precision(class_id=1)(y_true, y_pred)) == pytest.approx(0.5)
    assert float(Recall(class_id=1)(y_true, y_pred)) == pytest.approx(0.5)
    assert float(Precision(class_id=0)(y_true, y_pred)) == 0.0


def test_class_id_needs_a_class_axis():
    with pytest.raises(ValueError, match="class_id"):
        Precision(class_id=0)([1, 0], [0.2, 0.9])


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="y_true"):
        Recall()([[1, 0, 1]], [[0.2, 0.9]])


def test_thresholds_must_be_in_unit_interval():
    with pytest.raises(ValueError, match="thresholds"):
        TruePositives(thresholds=[0.5, 1.5])
    with pytest.raises(ValueError, match="thresholds"):
        Precision(thresholds=-0.1)


def test_top_k_must_be_positive_int():
    with pytest.raises(ValueError, match="top_k"):
        Recall(top_k=0)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("multi_label", [False, True])
def test_bucketed_and_broadcast_counts_agree(seed, multi_label):
    generator = torch.Generator().manual_seed(seed)
    y_pred = torch.rand(20, 3, generator=generator)
    y_true = (torch.rand(20, 3, generator=generator) > 0.5).float()
    weights = torch.rand(20, generator=generator)
    thresholds = torch.linspace(0, 1, 11)
    shape = (11, 3) if multi_label else (11,)
    results = []
    for evenly in (False, True):
        variables = {key: torch.zeros(shape) for key in ("tp", "fp", "tn", "fn")}
        utils.update_confusion_variables(
            variables,
            y_true,
            y_pred,
            thresholds,
            sample_weight=weights,
            multi_label=multi_label,
            evenly_spaced=evenly,
        )
        results.append(variables)
    for key in results[0]:
        torch.testing.assert_close(results[0][key], results[1][key])


def test_evenly_spaced_detection():
    assert utils.is_evenly_spaced([0.0, 0.5, 1.0])
    assert not utils.is_evenly_spaced([0.0, 1.0])
    assert not utils.is_evenly_spaced([0.0, 0.4, 1.0])


def test_auc_perfect_and_inverted_rankings():
    y_true = [0, 0, 1, 1]
    assert float(AUC()(y_true, [0.1, 0.2, 0.8, 0.9])) == pytest.approx(1.0, abs=1e-6)
    assert float(AUC()(y_true, [0.9, 0.8, 0.2, 0.1])) == pytest.approx(0.0, abs=1e-6)


def test_auc_three_thresholds_hand_checked():
    # Thresholds -eps, 0.5, 1+eps. tp=[2,1,0], fp=[2,0,0], tn=[0,2,2], fn=[0,1,2].
    # ROC points (fpr, tpr): (1, 1), (0, 0.5), (0, 0): trapezoids give 0.75.
    metric = AUC(num_thresholds=3)
    metric.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    assert metric.true_positives.tolist() == [2, 1, 0]
    assert metric.true_negatives.tolist() == [0, 2, 2]
    assert float(metric.result()) == pytest.approx(0.75)
    minoring = AUC(num_thresholds=3, summation_method="minoring")
    assert float(minoring([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])) == pytest.approx(0.5)


def test_auc_thresholds_are_widened_at_the_ends():
    metric = AUC(num_thresholds=3)
    assert metric.thresholds == pytest.approx([-1e-7, 0.5, 1 + 1e-7])
    assert AUC(thresholds=[0.7, 0.2]).thresholds[1:-1] == [0.2, 0.7]


def test_auc_from_logits_matches_sigmoid_inputs():
    logits = torch.tensor([-2.0, 0.3, 1.5, -0.4, 2.2])
    y_true = [0, 1, 1, 0, 1]
    expected = AUC()(y_true, torch.sigmoid(logits))
    torch.testing.assert_close(AUC(from_logits=True)(y_true, logits), expected)


def test_auc_multi_label_builds_per_label_state_lazily():
    metric = AUC(multi_label=True, num_thresholds=5)
    assert metric.variables == []
    y_true = [[1, 0], [0, 1], [1, 1]]
    y_pred = [[0.9, 0.2], [0.1, 0.8], [0.7, 0.6]]
    result = metric(y_true, y_pred)
    assert metric.true_positives.shape == (5, 2)
    # Label 0 is perfectly ranked (AUC 1); label 1 has only one negative, ranked lowest.
    assert float(result) == pytest.approx(1.0, abs=1e-6)


def test_auc_label_weights_weight_the_label_mean():
    y_true = [[1, 1], [0, 0], [1, 0]]
    y_pred = [[0.9, 0.1], [0.1, 0.9], [0.8, 0.5]]
    per_label = [float(AUC()([r[i] for r in y_true], [r[i] for r in y_pred])) for i in range(2)]
    weighted = AUC(multi_label=True, label_weights=[3.0, 1.0])(y_true, y_pred)
    assert float(weighted) == pytest.approx((3 * per_label[0] + per_label[1]) / 4, abs=1e-6)


def test_auc_argument_errors():
    with pytest.raises(ValueError, match="Did you mean 'ROC'"):
        AUC(curve="ROCC")
    with pytest.raises(ValueError, match="summation_method"):
        AUC(summation_method="trapezoid")
    with pytest.raises(ValueError, match="num_thresholds"):
        AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="num_labels"):
        AUC(num_labels=3)
    with pytest.raises(ValueError, match="rank 2"):
        AUC(multi_label=True)([1, 0], [0.3, 0.2])


def test_auc_pr_interpolation_of_a_perfect_ranking_is_one():
    assert float(AUC(curve="PR")([0, 1, 1], [0.1, 0.8, 0.9])) == pytest.approx(1.0, abs=1e-6)


def test_rate_at_rate_metrics_hand_checked():
    y_true = [0, 0, 0, 1, 1]
    y_pred = [0.0, 0.3, 0.8, 0.3, 0.8]
    # Cut between 0.3 and 0.8: sensitivity 0.5, specificity 2/3, precision 0.5.
    # Cut below 0.3 (above 0): sensitivity 1, specificity 1/3, precision 0.5.
    assert float(SensitivityAtSpecificity(0.5)(y_true, y_pred)) == pytest.approx(0.5)
    assert float(SensitivityAtSpecificity(0.3)(y_true, y_pred)) == pytest.approx(1.0)
    assert float(SpecificityAtSensitivity(1.0)(y_true, y_pred)) == pytest.approx(1 / 3)
    assert float(PrecisionAtRecall(0.9)(y_true, y_pred)) == pytest.approx(0.5)
    assert float(RecallAtPrecision(0.9)(y_true, y_pred)) == 0.0


def test_rate_at_rate_argument_errors():
    with pytest.raises(ValueError, match="specificity"):
        SensitivityAtSpecificity(1.5)
    with pytest.raises(ValueError, match="recall"):
        PrecisionAtRecall(-0.1)
    with pytest.raises(ValueError, match="num_thresholds"):
        RecallAtPrecision(0.5, num_thresholds=0)


def test_names_directions_and_config_round_trip():
    for metric, name in [
        (TruePositives(), "true_positives"),
        (Precision(top_k=2), "precision"),
        (AUC(curve="PR"), "auc"),
        (SpecificityAtSensitivity(0.5), "specificity_at_sensitivity"),
    ]:
        assert metric.name == name
        clone = type(metric).from_config(metric.get_config())
        assert clone.get_config() == metric.get_config()
    assert TruePositives()._direction is None
    assert Precision()._direction == AUC()._direction == "up"
    config = AUC(thresholds=[0.2, 0.6], label_weights=[1.0, 2.0], multi_label=True).get_config()
    assert config["thresholds"] == pytest.approx([0.2, 0.6])
    assert config["label_weights"] == [1.0, 2.0]


def test_states_are_summable_across_processes():
    metric = AUC(num_thresholds=4)
    assert set(metric.aggregations) == {"sum"}
    halves = [AUC(num_thresholds=4), AUC(num_thresholds=4)]
    halves[0].update_state(Y_TRUE[:3], Y_PRED[:3])
    halves[1].update_state(Y_TRUE[3:], Y_PRED[3:])
    metric.update_state(Y_TRUE, Y_PRED)
    for merged, part_a, part_b in zip(metric.variables, halves[0].variables, halves[1].variables):
        torch.testing.assert_close(merged, part_a + part_b)
    assert not math.isnan(float(metric.result()))
