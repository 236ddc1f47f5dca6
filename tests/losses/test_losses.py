"""Tests for the loss formulas (losses.py, probabilistic.py) and torchfit.losses lookup."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from torchfit import losses

LOG_2 = math.log(2.0)


def approx(tensor, expected, rel=1e-5):
    assert float(tensor) == pytest.approx(expected, rel=rel, abs=1e-6)


# ------------------------------------------------------------ hand-checked values


def test_regression_values():
    y_true, y_pred = torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 1.0]])
    approx(losses.MeanSquaredError()(y_true, y_pred), 1.0)
    approx(losses.MeanAbsoluteError()(y_true, y_pred), 1.0)
    approx(
        losses.MeanAbsolutePercentageError()(
            torch.tensor([[2.0, 4.0]]), torch.tensor([[1.0, 5.0]])
        ),
        100 * (0.5 + 0.25) / 2,
    )
    approx(
        losses.MeanSquaredLogarithmicError()(torch.tensor([[math.e - 1]]), torch.tensor([[0.0]])),
        1.0,
        rel=1e-4,
    )
    approx(
        losses.Huber(delta=1.0)(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.5, 3.0]])),
        (0.125 + 2.5) / 2,
    )
    approx(losses.LogCosh()(torch.tensor([[0.0]]), torch.tensor([[1.0]])), math.log(math.cosh(1.0)))


def test_cosine_similarity_values():
    loss = losses.CosineSimilarity()
    approx(loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0]])), -1.0)
    approx(loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]])), 0.0)
    approx(loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 3.0]])), 0.0)  # zero vector: no NaN


def test_hinge_values_and_label_conversion():
    y_pred = torch.tensor([[0.5, -2.0]])
    approx(losses.Hinge()(torch.tensor([[1.0, 0.0]]), y_pred), (0.5 + 0.0) / 2)
    approx(losses.Hinge()(torch.tensor([[1.0, -1.0]]), y_pred), (0.5 + 0.0) / 2)
    approx(losses.SquaredHinge()(torch.tensor([[1.0, 0.0]]), y_pred), 0.25 / 2)
    approx(
        losses.CategoricalHinge()(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.8, 0.3]])),
        0.8 - 0.3 + 1.0,
    )


def test_probabilistic_values():
    approx(
        losses.KLDivergence()(torch.tensor([[0.5, 0.5]]), torch.tensor([[0.25, 0.75]])),
        0.5 * math.log(2) + 0.5 * math.log(2 / 3),
    )
    approx(losses.Poisson()(torch.tensor([[1.0]]), torch.tensor([[1.0]])), 1.0)
    approx(
        losses.BinaryCrossentropy()(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]])), LOG_2
    )
    approx(
        losses.BinaryCrossentropy(from_logits=True)(torch.tensor([[1.0]]), torch.tensor([[0.0]])),
        LOG_2,
    )
    approx(
        losses.CategoricalCrossentropy()(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.2, 0.6]])),
        -math.log(0.75),
    )
    approx(
        losses.SparseCategoricalCrossentropy()(torch.tensor([1]), torch.tensor([[0.25, 0.75]])),
        -math.log(0.75),
    )
    approx(
        losses.CategoricalGeneralizedCrossEntropy(q=0.5)(
            torch.tensor([1]), torch.tensor([[0.75, 0.25]])
        ),
        (1 - 0.5) / 0.5,
    )


def test_probabilities_are_clipped():
    out = losses.BinaryCrossentropy()(torch.tensor([[1.0]]), torch.tensor([[0.0]]))
    approx(out, -math.log(1e-7), rel=1e-4)
    assert torch.isfinite(
        losses.CategoricalCrossentropy()(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]))
    )


def test_label_smoothing():
    # Binary: targets move to 0.5 * s from each side.
    smoothed = losses.BinaryCrossentropy(label_smoothing=1.0)(
        torch.tensor([[1.0]]), torch.tensor([[0.5]])
    )
    approx(smoothed, LOG_2)
    # Categorical: t (1 - s) + s / C; with s=1 the target is uniform.
    cce = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=1.0)
    approx(cce(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]])), LOG_2)


def test_focal_losses_reduce_to_cross_entropy_without_focusing():
    y_true, y_pred = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.7, 0.2]])
    bce = losses.BinaryCrossentropy()(y_true, y_pred)
    approx(losses.BinaryFocalCrossentropy(gamma=0.0)(y_true, y_pred), float(bce))
    one_hot, probs = torch.tensor([[0.0, 1.0]]), torch.tensor([[0.3, 0.7]])
    cce = losses.CategoricalCrossentropy()(one_hot, probs)
    approx(losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=0.0)(one_hot, probs), float(cce))


def test_segmentation_values():
    y_true, y_pred = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    approx(losses.Dice()(y_true, y_pred), 1 - 2 * 1 / 3)
    # As in Keras, `beta` weighs sum(y_pred * (1 - y_true)) and `alpha` the other side.
    approx(losses.Tversky(alpha=0.0, beta=1.0)(y_true, y_pred), 1 - 1 / 2)
    approx(losses.Tversky(alpha=1.0, beta=0.0)(y_true, y_pred), 0.0)
    per_sample = losses.Dice(axis=1, reduction="none")(
        torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    )
    assert per_sample.shape == (2,)
    approx(per_sample[1], 1.0)


def test_circle_and_ctc_shapes():
    embeddings = nn.functional.normalize(torch.randn(6, 4), dim=-1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert losses.Circle(reduction="none")(labels, embeddings).shape == (6,)
    logits, targets = torch.randn(2, 6, 5), torch.tensor([[1, 2, 0], [3, 0, 0]])
    out = losses.CTC(reduction="none")(targets, logits)
    assert out.shape == (2,) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="y_true"):
        losses.CTC()(torch.tensor([1, 2]), logits)


# --------------------------------------------------------------------- sparse


def test_sparse_accepts_column_labels_and_float_labels():
    logits = torch.randn(3, 4)
    expected = nn.functional.cross_entropy(logits, torch.tensor([0, 3, 1]))
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    assert torch.allclose(loss(torch.tensor([[0], [3], [1]]), logits), expected)
    assert torch.allclose(loss(np.array([0.0, 3.0, 1.0]), logits), expected)


def test_sparse_ignore_class_averages_over_kept_entries():
    logits = torch.randn(2, 3, 4)
    labels = torch.tensor([[0, -1, 2], [-1, -1, 1]])
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    expected = nn.functional.cross_entropy(logits.reshape(6, 4), labels.reshape(6), ignore_index=-1)
    assert torch.allclose(loss(labels, logits), expected)
    per_token = losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=-1, reduction="none"
    )(labels, logits)
    assert per_token.shape == (2, 3) and per_token[0, 1] == 0


def test_sparse_fast_path_equals_the_weighted_path():
    logits, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
    for from_logits in (True, False):
        inputs = logits if from_logits else logits.softmax(-1)
        loss = losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        assert torch.allclose(
            loss(labels, inputs), loss(labels, inputs, sample_weight=torch.ones(5))
        )


def test_fast_paths_equal_the_weighted_paths():
    y_true = torch.randint(0, 2, (4, 3)).float()
    logits = torch.randn(4, 3)
    one_hot = nn.functional.one_hot(torch.tensor([0, 2, 1, 1]), 3).float()
    cases = [
        (losses.MeanSquaredError(), y_true, logits),
        (losses.MeanAbsoluteError(), y_true, logits),
        (losses.Huber(delta=0.5), y_true, logits),
        (losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.1), y_true, logits),
        (losses.BinaryCrossentropy(), y_true, logits.sigmoid()),
        (losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2), one_hot, logits),
    ]
    for loss, targets, predictions in cases:
        assert torch.allclose(
            loss(targets, predictions), loss(targets, predictions, sample_weight=torch.ones(4))
        ), loss.name


def test_sparse_shape_error_names_both_shapes():
    with pytest.raises(ValueError, match="y_true.shape"):
        losses.SparseCategoricalCrossentropy()(torch.tensor([0, 1, 2]), torch.rand(2, 3))


def test_categorical_shape_error_and_bad_axis():
    with pytest.raises(ValueError, match="same shape"):
        losses.CategoricalCrossentropy()(torch.rand(2, 3), torch.rand(2, 4))
    with pytest.raises(ValueError, match="axis"):
        losses.CategoricalCrossentropy(axis=True)
    with pytest.raises(ValueError, match="q"):
        losses.CategoricalGeneralizedCrossEntropy(q=1.5)


def test_losses_are_differentiable():
    for loss, y_true in [
        (
            losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
            torch.tensor([0, 1, 2]),
        ),
        (losses.CategoricalFocalCrossentropy(from_logits=True), torch.eye(3)),
        (losses.BinaryFocalCrossentropy(from_logits=True), torch.eye(3)),
    ]:
        y_pred = torch.randn(3, 3, requires_grad=True)
        loss(y_true, y_pred, sample_weight=0.5).backward()
        assert y_pred.grad is not None and torch.isfinite(y_pred.grad).all()


# ---------------------------------------------------------------- class basics


@pytest.mark.parametrize(
    "cls,name",
    [
        (losses.MeanSquaredError, "mean_squared_error"),
        (losses.Huber, "huber_loss"),
        (losses.LogCosh, "log_cosh"),
        (losses.KLDivergence, "kl_divergence"),
        (losses.BinaryFocalCrossentropy, "binary_focal_crossentropy"),
        (losses.SparseCategoricalCrossentropy, "sparse_categorical_crossentropy"),
        (losses.CategoricalGeneralizedCrossEntropy, "categorical_generalized_cross_entropy"),
        (losses.CTC, "ctc"),
    ],
)
def test_default_names(cls, name):
    assert cls().name == name


def test_aliases_are_the_functions():
    assert losses.mse is losses.MSE is losses.mean_squared_error
    assert losses.bce is losses.binary_crossentropy
    assert losses.kld is losses.kl_divergence


# ------------------------------------------------------------------------ get


@pytest.mark.parametrize(
    "identifier,cls,name",
    [
        ("mse", losses.MeanSquaredError, "mse"),
        ("MSE", losses.MeanSquaredError, "MSE"),
        ("mean_absolute_error", losses.MeanAbsoluteError, "mean_absolute_error"),
        ("huber", losses.Huber, "huber"),
        ("Huber", losses.Huber, "huber_loss"),
        ("bce", losses.BinaryCrossentropy, "bce"),
        (
            "SparseCategoricalCrossentropy",
            losses.SparseCategoricalCrossentropy,
            "sparse_categorical_crossentropy",
        ),
        ("ctc", losses.CTC, "ctc"),
    ],
)
def test_get_strings(identifier, cls, name):
    loss = losses.get(identifier)
    assert type(loss) is cls and loss.name == name


def test_get_unknown_string_lists_close_ids():
    with pytest.raises(ValueError, match="loss='mean_squared_eror'.*mean_squared_error"):
        losses.get("mean_squared_eror")
    with pytest.raises(ValueError, match="Unknown `loss`"):
        losses.get("logcosh")  # Keras 2's name, not accepted by Keras 3 either


def test_get_other_identifiers():
    assert losses.get(None) is None
    instance = losses.Poisson()
    assert losses.get(instance) is instance
    assert type(losses.get(losses.Hinge)) is losses.Hinge
    config = {"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}}
    assert losses.get(config).from_logits is True
    with pytest.raises(TypeError, match="loss"):
        losses.get(42)


def test_get_wraps_plain_callables_with_keras_weighting():
    def my_loss(y_true, y_pred):
        return (y_true - y_pred).abs()

    loss = losses.get(my_loss)
    assert isinstance(loss, losses.LossFunctionWrapper) and loss.name == "my_loss"
    approx(
        loss(torch.ones(4), torch.zeros(4), sample_weight=torch.tensor([1.0, 1.0, 0.0, 0.0])), 0.5
    )


def test_get_wraps_torch_loss_modules():
    loss = losses.get(nn.CrossEntropyLoss())
    assert isinstance(loss, losses.TorchLoss) and loss.name == "cross_entropy_loss"
    assert losses.get(nn.BCEWithLogitsLoss).name == "bce_with_logits_loss"


# ------------------------------------------------------------ crossentropy ids


@pytest.mark.parametrize(
    "y_true_shape,y_pred_shape,expected",
    [
        ((4, 1), (4, 1), losses.BinaryCrossentropy),
        ((4,), (4, 3), losses.SparseCategoricalCrossentropy),
        ((4, 1), (4, 3), losses.SparseCategoricalCrossentropy),
        ((4, 3), (4, 3), losses.CategoricalCrossentropy),
    ],
)
def test_resolve_crossentropy(y_true_shape, y_pred_shape, expected):
    assert (
        type(losses.resolve_crossentropy(torch.zeros(y_true_shape), torch.zeros(y_pred_shape)))
        is expected
    )


def test_crossentropy_string_resolves_on_first_call():
    loss = losses.get("ce")
    assert loss.name == "ce"
    probs = torch.tensor([[0.25, 0.75]])
    approx(loss(torch.tensor([1]), probs), -math.log(0.75))
    assert type(loss.resolved) is losses.SparseCategoricalCrossentropy


# ------------------------------------------------------------- serialization


@pytest.mark.parametrize(
    "loss",
    [
        losses.MeanSquaredError(reduction="sum"),
        losses.Huber(delta=0.3, name="h"),
        losses.CosineSimilarity(axis=0),
        losses.BinaryFocalCrossentropy(
            apply_class_balancing=True, alpha=0.3, gamma=1.0, from_logits=True
        ),
        losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1),
        losses.Tversky(alpha=0.2, beta=0.8, axis=(1, 2)),
        losses.Circle(gamma=10.0),
        losses.CategoricalGeneralizedCrossEntropy(q=0.3),
        losses.MeanAbsoluteError(dtype="float64"),
    ],
    ids=lambda loss: type(loss).__name__,
)
def test_serialize_round_trip(loss):
    config = losses.serialize(loss)
    assert config["class_name"] == type(loss).__name__
    rebuilt = losses.deserialize(config)
    assert type(rebuilt) is type(loss) and rebuilt.get_config() == loss.get_config()


def test_serialize_wrapped_functions_and_strings():
    wrapped = losses.LossFunctionWrapper(losses.poisson, name="p")
    rebuilt = losses.deserialize(losses.serialize(wrapped))
    assert rebuilt.fn is losses.poisson and rebuilt.name == "p"
    assert losses.serialize("mse") == "mse" and losses.serialize(losses.get("ce")) == "ce"
    assert losses.serialize(losses.mean_squared_error) == "mean_squared_error"
    assert losses.deserialize("mse").name == "mse"


def test_deserialize_custom_objects_and_errors():
    def mine(y_true, y_pred):
        return y_pred

    config = losses.serialize(losses.get(mine))
    with pytest.raises(ValueError, match="custom_objects"):
        losses.deserialize(config)
    assert losses.deserialize(config, custom_objects={"mine": mine}).fn is mine
    with pytest.raises(ValueError, match="MeanSquaredError"):
        losses.deserialize({"class_name": "MeanSquareError", "config": {}})
