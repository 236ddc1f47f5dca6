import numpy as np
import pytest
import torch

from torchfit import metrics


@pytest.mark.parametrize(
    "identifier, cls",
    [
        ("MeanSquaredError", metrics.MeanSquaredError),
        ("mean_squared_error", metrics.MeanSquaredError),
        ("mse", metrics.MeanSquaredError),
        ("MAE", metrics.MeanAbsoluteError),
        ("bce", metrics.BinaryCrossentropy),
        ("log_cosh_error", metrics.LogCoshError),
        ("sparse_top_k_categorical_accuracy", metrics.SparseTopKCategoricalAccuracy),
        ("accuracy", metrics.Accuracy),
        ("auc", metrics.AUC),
        ("f1_score", metrics.F1Score),
    ],
)
def test_get_string_ids(identifier, cls):
    metric = metrics.get(identifier)
    assert type(metric) is cls


def test_get_keeps_instances_and_builds_classes_and_configs():
    metric = metrics.Mean(name="m")
    assert metrics.get(metric) is metric
    assert type(metrics.get(metrics.Hinge)) is metrics.Hinge
    built = metrics.get({"class_name": "BinaryAccuracy", "config": {"threshold": 0.3}})
    assert built.threshold == 0.3
    assert metrics.get(None) is None


def test_get_wraps_plain_functions_named_after_them():
    def my_error(y_true, y_pred):
        return torch.abs(y_true - y_pred)

    metric = metrics.get(my_error)
    assert isinstance(metric, metrics.MeanMetricWrapper)
    assert metric.name == "my_error"
    assert float(metric([[1.0]], [[3.0]])) == 2.0


def test_unknown_id_names_argument_and_suggests():
    with pytest.raises(ValueError, match="metrics.*'mean_squared_error'"):
        metrics.get("mean_sqared_error")


def test_shape_dependent_ids_point_to_get_metric():
    with pytest.raises(ValueError, match="get_metric"):
        metrics.get("acc")


def test_class_needing_arguments_is_a_clear_error():
    with pytest.raises(ValueError, match="IoU"):
        metrics.get("IoU")


def test_uninterpretable_identifier():
    with pytest.raises(ValueError, match="metrics"):
        metrics.get(3)


@pytest.mark.parametrize(
    "y_true_shape, y_pred_shape, accuracy_cls, crossentropy_cls",
    [
        ((8, 1), (8, 1), metrics.BinaryAccuracy, metrics.BinaryCrossentropy),
        ((8,), (8, 10), metrics.SparseCategoricalAccuracy, metrics.SparseCategoricalCrossentropy),
        ((8, 1), (8, 10), metrics.SparseCategoricalAccuracy, metrics.SparseCategoricalCrossentropy),
        ((8, 10), (8, 10), metrics.CategoricalAccuracy, metrics.CategoricalCrossentropy),
        ((8,), (8,), metrics.CategoricalAccuracy, metrics.CategoricalCrossentropy),
    ],
)
def test_resolve_accuracy_uses_keras_shape_rule(
    y_true_shape, y_pred_shape, accuracy_cls, crossentropy_cls
):
    y_true, y_pred = np.zeros(y_true_shape), torch.zeros(y_pred_shape)
    for identifier in ("accuracy", "acc", "ACC"):
        metric = metrics.resolve_accuracy(identifier, y_true, y_pred)
        assert type(metric) is accuracy_cls and metric.name == identifier
    for identifier in ("crossentropy", "ce"):
        metric = metrics.get_metric(identifier, y_true_shape, y_pred_shape)
        assert type(metric) is crossentropy_cls and metric.name == identifier


def test_get_metric_keeps_user_spelling_for_strings_and_names_for_objects():
    assert metrics.get_metric("mse", (2, 1), (2, 1)).name == "mse"
    assert (
        metrics.get_metric(metrics.MeanAbsoluteError(), (2, 1), (2, 1)).name
        == "mean_absolute_error"
    )
    with pytest.raises(ValueError, match="None"):
        metrics.get_metric(None, (2, 1), (2, 1))


def test_serialize_deserialize_round_trip():
    config = metrics.serialize(metrics.CategoricalCrossentropy(from_logits=True))
    assert config["class_name"] == "CategoricalCrossentropy"
    clone = metrics.deserialize(config)
    assert clone.from_logits is True
    assert metrics.serialize(metrics.hinge) == "hinge"
    assert metrics.deserialize("hinge") is metrics.hinge
    with pytest.raises(ValueError, match="Hnge"):
        metrics.deserialize({"class_name": "Hnge", "config": {}})


SYNC_FREE = [
    ("mean", lambda: metrics.Mean()),
    ("sum", lambda: metrics.Sum()),
    *[
        (name, lambda name=name: metrics.get(name))
        for name in (
            "accuracy", "binary_accuracy", "categorical_accuracy", "top_k_categorical_accuracy",
            "mse", "root_mean_squared_error", "mae", "mape", "msle", "cosine_similarity",
            "log_cosh_error", "r2_score", "kl_divergence", "poisson", "bce",
            "categorical_crossentropy", "hinge", "squared_hinge", "categorical_hinge",
            "pearson_correlation", "concordance_correlation",
        )
    ],
    ("sparse_categorical_accuracy", lambda: metrics.SparseCategoricalAccuracy()),
    ("sparse_top_k", lambda: metrics.SparseTopKCategoricalAccuracy(k=2)),
    ("sparse_crossentropy", lambda: metrics.SparseCategoricalCrossentropy(ignore_class=1)),
]  # fmt: skip


@pytest.mark.parametrize("factory", [f for _, f in SYNC_FREE], ids=[n for n, _ in SYNC_FREE])
def test_update_and_result_never_sync_the_host(factory):
    # Meta tensors hold no data: any .item(), bool(tensor) or data-dependent
    # shape inside update_state/result raises here.
    metric = factory().to("meta")
    y_pred = torch.rand(4, 3, device="meta")
    weight = torch.rand(4, device="meta")
    if isinstance(metric, (metrics.Sum,)) or type(metric) is metrics.Mean:
        metric.update_state(y_pred, sample_weight=weight)
        metric.update_state(torch.rand((), device="meta"), sample_weight=2)
    else:
        sparse = "sparse" in metric.name
        y_true = (
            torch.zeros(4, dtype=torch.long, device="meta")
            if sparse
            else torch.rand(4, 3, device="meta")
        )
        metric.update_state(y_true, y_pred, sample_weight=weight)
    assert metric.result().device.type == "meta"
