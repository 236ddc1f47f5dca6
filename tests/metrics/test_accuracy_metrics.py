import numpy as np
import pytest
import torch

from torchfit import metrics


def test_accuracy_exact_match():
    metric = metrics.Accuracy()
    assert float(metric([[1], [2], [3], [4]], [[0], [2], [3], [4]])) == 0.75
    assert metric._direction == "up"


def test_binary_accuracy_threshold_is_strict():
    assert float(metrics.BinaryAccuracy()([[1], [0]], [[0.5], [0.5]])) == 0.5
    assert float(metrics.BinaryAccuracy(threshold=0.2)([[1], [0]], [[0.5], [0.1]])) == 1.0


@pytest.mark.parametrize("threshold", [0.5, 0.25, 0.75])
def test_binary_accuracy_prediction_at_the_threshold_is_negative(threshold):
    # Keras: y_pred > threshold. All-negative labels at the threshold separate `>` from `>=`
    # (the thresholds are exact in float32, so no rounding decides).
    y_true, y_pred = [[0.0], [0.0], [1.0]], [[threshold], [threshold], [threshold + 0.125]]
    assert metrics.binary_accuracy(y_true, y_pred, threshold=threshold).tolist() == [[1.0]] * 3
    assert float(metrics.BinaryAccuracy(threshold=threshold)(y_true, y_pred)) == 1.0


def test_binary_accuracy_matches_labels_of_other_rank():
    metric = metrics.BinaryAccuracy()
    assert float(metric(torch.tensor([1.0, 0.0]), torch.tensor([[0.9], [0.8]]))) == 0.5


def test_categorical_accuracy_first_maximum_wins_ties():
    metric = metrics.CategoricalAccuracy()
    assert float(metric([[1, 0, 0], [0, 1, 0]], [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])) == 0.5


@pytest.mark.parametrize("labels", [[2, 1], [[2], [1]]])
def test_sparse_categorical_accuracy_label_shapes(labels):
    metric = metrics.SparseCategoricalAccuracy()
    assert float(metric(labels, [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])) == 0.5


def test_sparse_categorical_accuracy_weighted():
    metric = metrics.SparseCategoricalAccuracy()
    metric.update_state([2, 1], [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]], sample_weight=[3.0, 1.0])
    assert float(metric.result()) == 0.75


def test_top_k_counts_ties_at_the_boundary():
    matches = metrics.sparse_top_k_categorical_accuracy(
        [0, 2], [[0.3, 0.3, 0.4], [0.5, 0.3, 0.2]], k=2
    )
    assert matches.tolist() == [1.0, 0.0]


def test_top_k_with_k_above_classes_is_always_a_hit():
    metric = metrics.TopKCategoricalAccuracy()
    assert float(metric([[0, 1], [1, 0]], [[0.9, 0.1], [0.2, 0.8]])) == 1.0


def test_sparse_top_k_from_sorted_ids():
    metric = metrics.SparseTopKCategoricalAccuracy(k=1, from_sorted_ids=True)
    assert float(metric([2, 1], [[2, 0, 1], [0, 1, 2]])) == 0.5
    assert metric.get_config()["from_sorted_ids"] is True


def test_top_k_broadcasts_one_label_over_the_batch():
    # A 1-D label is used as it is (Keras reshapes only labels of rank > 1), so one
    # label meets every row of scores, as in Keras (values from Keras 3, torch backend).
    y_pred = [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3]]
    sparse = metrics.sparse_top_k_categorical_accuracy([2], y_pred, k=1)
    assert sparse.tolist() == [1.0, 0.0, 0.0]
    one_hot = metrics.top_k_categorical_accuracy([[0, 1, 0]], y_pred, k=2)
    assert one_hot.tolist() == [1.0, 1.0, 1.0]


def test_top_k_keeps_extra_label_dims():
    y_true = np.eye(3)[[[0, 1], [2, 2]]]
    y_pred = np.eye(3)[[[0, 2], [2, 1]]]
    matches = metrics.top_k_categorical_accuracy(y_true, y_pred, k=1)
    assert matches.tolist() == [[1.0, 0.0], [1.0, 0.0]]


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (metrics.BinaryAccuracy, {"threshold": 0.3}),
        (metrics.TopKCategoricalAccuracy, {"k": 2}),
        (metrics.SparseTopKCategoricalAccuracy, {"k": 3}),
        (metrics.CategoricalAccuracy, {}),
    ],
)
def test_config_round_trip(cls, kwargs):
    metric = cls(name="x", **kwargs)
    clone = cls.from_config(metric.get_config())
    assert clone.get_config() == metric.get_config()
    for key, value in kwargs.items():
        assert getattr(clone, key) == value


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_sparse_categorical_accuracy_counts_as_the_function_averages(dtype):
    # Integer (N,) labels take a path without the float cast of each match: the
    # states must be those of the per-sample function's average, batch after batch.
    torch.manual_seed(0)
    fast = metrics.SparseCategoricalAccuracy(dtype=dtype)
    reference = metrics.MeanMetricWrapper(metrics.sparse_categorical_accuracy, dtype=dtype)
    batches = [(torch.randint(0, 3, (n,)), torch.randn(n, 3)) for n in (64, 7, 0, 33)]
    batches.append((torch.randint(0, 3, (5, 1)), torch.randn(5, 3)))  # (N, 1) labels
    batches.append((torch.randint(0, 3, (6,)).int(), torch.randn(6, 3)))
    for y_true, y_pred in batches:
        fast.update_state(y_true, y_pred)
        reference.update_state(y_true, y_pred)
        assert fast.total.dtype == reference.total.dtype == dtype
        assert fast.total.item() == reference.total.item()
        assert fast.count.item() == reference.count.item()
    assert fast.count.item() == 64 + 7 + 0 + 33 + 5 + 6
    assert fast.result().item() == reference.result().item()
