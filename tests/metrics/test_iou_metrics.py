"""Unit tests for torchfit.metrics.iou_metrics."""

import numpy as np
import pytest
import torch

from torchfit.metrics.iou_metrics import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU


def test_confusion_matrix_rows_are_true_columns_are_predicted():
    metric = MeanIoU(num_classes=3)
    metric.update_state([0, 1, 2, 2], [0, 2, 2, 1])
    assert metric.total_cm.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    assert metric.total_cm.dtype == torch.int32
    # IoUs: class 0: 1/1, class 1: 0/3, class 2: 1/3.
    assert float(metric.result()) == pytest.approx((1 + 0 + 1 / 3) / 3, abs=1e-6)


def test_iou_averages_only_target_classes_that_occur():
    metric = IoU(num_classes=4, target_class_ids=[0, 3])
    # Class 3 never occurs, so only class 0 (IoU 1/2) counts.
    assert float(metric([0, 0, 1], [0, 1, 1])) == pytest.approx(0.5, abs=1e-6)


def test_out_of_range_labels_and_ignore_class_are_dropped():
    metric = MeanIoU(num_classes=2, ignore_class=0)
    metric.update_state(np.array([[0, 1], [1, -1]]), np.array([[1, 1], [0, 1]]))
    assert metric.total_cm.tolist() == [[0, 0], [1, 1]]
    outside = MeanIoU(num_classes=2)
    outside.update_state([0, 2, 1], [0, 1, 5])
    assert outside.total_cm.tolist() == [[1, 0], [0, 0]]


def test_float_weights_truncate_on_int_state_with_a_warning():
    metric = MeanIoU(num_classes=2)
    with pytest.warns(UserWarning, match="truncated"):
        metric.update_state([0, 1], [0, 1], sample_weight=[0.5, 2.7])
    assert metric.total_cm.tolist() == [[0, 0], [0, 2]]
    floating = MeanIoU(num_classes=2, dtype="float32")
    floating.update_state([0, 1], [0, 1], sample_weight=[0.5, 2.7])
    torch.testing.assert_close(floating.total_cm, torch.tensor([[0.5, 0.0], [0.0, 2.7]]))


def test_one_hot_variants_take_argmax():
    y_true = [[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 0, 0]]
    y_pred = [[0.2, 0.3, 0.5], [0.1, 0.2, 0.7], [0.5, 0.3, 0.1], [0.1, 0.4, 0.5]]
    true_ids, predicted_ids = [2, 0, 1, 0], [2, 2, 0, 2]
    sparse = IoU(num_classes=3, target_class_ids=[0, 2])(true_ids, predicted_ids)
    one_hot = OneHotIoU(num_classes=3, target_class_ids=[0, 2])(y_true, y_pred)
    torch.testing.assert_close(one_hot, sparse)
    sparse_mean = MeanIoU(num_classes=3)(true_ids, predicted_ids)
    torch.testing.assert_close(OneHotMeanIoU(num_classes=3)(y_true, y_pred), sparse_mean)


def test_binary_iou_thresholds_at_or_above():
    metric = BinaryIoU(threshold=0.5)
    metric.update_state([0, 1, 1, 0], [0.5, 0.5, 0.2, 0.1])
    assert metric.total_cm.tolist() == [[1, 1], [1, 1]]
    assert float(metric.result()) == pytest.approx(1 / 3, abs=1e-6)


def test_reset_state_keeps_identity():
    metric = MeanIoU(num_classes=2)
    matrix = metric.total_cm
    metric([0, 1], [1, 1])
    metric.reset_state()
    assert metric.total_cm is matrix
    assert matrix.sum().item() == 0


def test_argument_errors():
    with pytest.raises(ValueError, match="target_class_ids"):
        IoU(num_classes=2, target_class_ids=[2])
    with pytest.raises(ValueError, match="num_classes"):
        MeanIoU(num_classes=0)
    with pytest.raises(ValueError, match="same number"):
        MeanIoU(num_classes=2)([0, 1, 1], [0, 1])


def test_names_direction_and_config():
    metrics = (IoU(2, [0]), BinaryIoU(), MeanIoU(2), OneHotIoU(2, [0]), OneHotMeanIoU(2))
    assert [m.name for m in metrics] == [
        "io_u",
        "binary_io_u",
        "mean_io_u",
        "one_hot_io_u",
        "one_hot_mean_io_u",
    ]
    assert MeanIoU(2)._direction == "up"
    for metric in (IoU(3, [0, 2], ignore_class=1), BinaryIoU([1], 0.3), OneHotMeanIoU(3)):
        config = metric.get_config()
        assert type(metric).from_config(config).get_config() == config
