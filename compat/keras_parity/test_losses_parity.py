"""Every torchfit loss against Keras 3 (torch backend) on the same NumPy inputs.

Each case builds the Keras loss and ours with the same arguments, then compares
`loss(y_true, y_pred, sample_weight=...)` for every reduction, with no weights,
per-sample weights and a Python-number weight, over several seeds.
"""

import os

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np
import pytest
import torch

keras = pytest.importorskip("keras")

from torchfit import losses  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6
REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none"]
BATCH, FEATURES, CLASSES = 5, 3, 4


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _regression(rng):
    return rng.normal(size=(BATCH, FEATURES)).astype("float32"), rng.normal(
        size=(BATCH, FEATURES)
    ).astype("float32")


def _positive(rng):
    return rng.uniform(0.0, 3.0, (BATCH, FEATURES)).astype("float32"), rng.uniform(
        0.01, 3.0, (BATCH, FEATURES)
    ).astype("float32")


def _binary(rng):
    return rng.integers(0, 2, (BATCH, FEATURES)).astype("float32"), rng.uniform(
        0.001, 0.999, (BATCH, FEATURES)
    ).astype("float32")


def _binary_logits(rng):
    return rng.integers(0, 2, (BATCH, FEATURES)).astype("float32"), (
        3 * rng.normal(size=(BATCH, FEATURES))
    ).astype("float32")


def _binary_column(rng):
    # (batch,) targets against (batch, 1) predictions: the rank-matching rule.
    return rng.integers(0, 2, (BATCH,)).astype("float32"), rng.uniform(
        0.001, 0.999, (BATCH, 1)
    ).astype("float32")


def _signed(rng):
    return (2 * rng.integers(0, 2, (BATCH, FEATURES)) - 1).astype("float32"), rng.normal(
        size=(BATCH, FEATURES)
    ).astype("float32")


def _onehot(rng):
    return np.eye(CLASSES, dtype="float32")[rng.integers(0, CLASSES, BATCH)], _softmax(
        rng.normal(size=(BATCH, CLASSES))
    ).astype("float32")


def _onehot_logits(rng):
    return np.eye(CLASSES, dtype="float32")[rng.integers(0, CLASSES, BATCH)], (
        2 * rng.normal(size=(BATCH, CLASSES))
    ).astype("float32")


def _onehot_rank3_logits(rng):
    labels = rng.integers(0, CLASSES, (BATCH, 2))
    return np.eye(CLASSES, dtype="float32")[labels], rng.normal(size=(BATCH, 2, CLASSES)).astype(
        "float32"
    )


def _distributions(rng):
    return _softmax(rng.normal(size=(BATCH, CLASSES))).astype("float32"), _softmax(
        rng.normal(size=(BATCH, CLASSES))
    ).astype("float32")


def _sparse(rng):
    return rng.integers(0, CLASSES, BATCH), _softmax(rng.normal(size=(BATCH, CLASSES))).astype(
        "float32"
    )


def _sparse_logits(rng):
    return rng.integers(0, CLASSES, BATCH), (2 * rng.normal(size=(BATCH, CLASSES))).astype(
        "float32"
    )


def _sparse_column_logits(rng):
    return rng.integers(0, CLASSES, (BATCH, 1)), rng.normal(size=(BATCH, CLASSES)).astype("float32")


def _sparse_rank3_logits(rng):
    return rng.integers(0, CLASSES, (BATCH, 3)), rng.normal(size=(BATCH, 3, CLASSES)).astype(
        "float32"
    )


def _sparse_with_ignored(rng):
    labels = rng.integers(0, CLASSES, (BATCH, 3))
    labels[rng.uniform(size=labels.shape) < 0.3] = -1
    return labels, rng.normal(size=(BATCH, 3, CLASSES)).astype("float32")


def _sparse_classes_first(rng):
    return rng.integers(0, CLASSES, (BATCH, 3)), rng.normal(size=(BATCH, CLASSES, 3)).astype(
        "float32"
    )


def _masks(rng):
    return rng.integers(0, 2, (BATCH, 4, 4)).astype("float32"), rng.uniform(
        size=(BATCH, 4, 4)
    ).astype("float32")


def _embeddings(rng):
    x = rng.normal(size=(BATCH + 1, 4))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return rng.integers(0, 3, BATCH + 1), x.astype("float32")


def _ctc(rng):
    labels = rng.integers(1, CLASSES, (BATCH, 3))
    labels[rng.uniform(size=labels.shape) < 0.3] = 0
    labels = -np.sort(-labels, axis=1)  # padding (0) at the end
    return labels, rng.normal(size=(BATCH, 8, CLASSES)).astype("float32")


# (case id, class name, constructor kwargs, input maker)
CASES = [
    ("mse", "MeanSquaredError", {}, _regression),
    ("mae", "MeanAbsoluteError", {}, _regression),
    ("mape", "MeanAbsolutePercentageError", {}, _regression),
    ("msle", "MeanSquaredLogarithmicError", {}, _positive),
    ("cosine", "CosineSimilarity", {}, _regression),
    ("cosine_axis0", "CosineSimilarity", {"axis": 0}, _regression),
    ("huber", "Huber", {}, _regression),
    ("huber_delta", "Huber", {"delta": 0.3}, _regression),
    ("log_cosh", "LogCosh", {}, _regression),
    ("hinge01", "Hinge", {}, _binary_logits),
    ("hinge_signed", "Hinge", {}, _signed),
    ("squared_hinge", "SquaredHinge", {}, _binary_logits),
    ("categorical_hinge", "CategoricalHinge", {}, _onehot_logits),
    ("kld", "KLDivergence", {}, _distributions),
    ("poisson", "Poisson", {}, _positive),
    ("bce", "BinaryCrossentropy", {}, _binary),
    ("bce_column", "BinaryCrossentropy", {}, _binary_column),
    (
        "bce_logits_smooth",
        "BinaryCrossentropy",
        {"from_logits": True, "label_smoothing": 0.2},
        _binary_logits,
    ),
    ("bce_smooth", "BinaryCrossentropy", {"label_smoothing": 0.1}, _binary),
    ("bce_axis0", "BinaryCrossentropy", {"axis": 0}, _binary),
    ("bfce", "BinaryFocalCrossentropy", {}, _binary),
    (
        "bfce_balanced_logits",
        "BinaryFocalCrossentropy",
        {"apply_class_balancing": True, "alpha": 0.4, "gamma": 1.5, "from_logits": True},
        _binary_logits,
    ),
    ("bfce_smooth", "BinaryFocalCrossentropy", {"label_smoothing": 0.1, "gamma": 3.0}, _binary),
    ("cce", "CategoricalCrossentropy", {}, _onehot),
    ("cce_logits", "CategoricalCrossentropy", {"from_logits": True}, _onehot_logits),
    (
        "cce_logits_smooth",
        "CategoricalCrossentropy",
        {"from_logits": True, "label_smoothing": 0.2},
        _onehot_logits,
    ),
    ("cce_smooth", "CategoricalCrossentropy", {"label_smoothing": 0.1}, _onehot),
    (
        "cce_rank3_logits",
        "CategoricalCrossentropy",
        {"from_logits": True, "label_smoothing": 0.1},
        _onehot_rank3_logits,
    ),
    ("cfce", "CategoricalFocalCrossentropy", {}, _onehot),
    (
        "cfce_logits",
        "CategoricalFocalCrossentropy",
        {"alpha": 0.5, "gamma": 1.0, "from_logits": True, "label_smoothing": 0.1},
        _onehot_logits,
    ),
    ("scce", "SparseCategoricalCrossentropy", {}, _sparse),
    ("scce_logits", "SparseCategoricalCrossentropy", {"from_logits": True}, _sparse_logits),
    ("scce_column", "SparseCategoricalCrossentropy", {"from_logits": True}, _sparse_column_logits),
    ("scce_rank3", "SparseCategoricalCrossentropy", {"from_logits": True}, _sparse_rank3_logits),
    (
        "scce_ignore",
        "SparseCategoricalCrossentropy",
        {"from_logits": True, "ignore_class": -1},
        _sparse_with_ignored,
    ),
    ("scce_ignore_probs", "SparseCategoricalCrossentropy", {"ignore_class": 2}, _sparse),
    (
        "scce_axis1",
        "SparseCategoricalCrossentropy",
        {"from_logits": True, "axis": 1},
        _sparse_classes_first,
    ),
    ("cgce", "CategoricalGeneralizedCrossEntropy", {"q": 0.7}, _sparse),
    ("dice", "Dice", {}, _masks),
    ("dice_axis", "Dice", {"axis": (1, 2)}, _masks),
    ("tversky", "Tversky", {"alpha": 0.3, "beta": 0.7}, _masks),
    ("tversky_axis", "Tversky", {"axis": (1, 2)}, _masks),
    ("circle", "Circle", {}, _embeddings),
    (
        "circle_kept_diagonal",
        "Circle",
        {"gamma": 10.0, "margin": 0.25, "remove_diagonal": False},
        _embeddings,
    ),
    ("ctc", "CTC", {}, _ctc),
]


def _weights(kind, y_true, rng):
    if kind is None:
        return None
    if kind == "scalar":
        return 0.7
    batch_shape = y_true.shape[:2] if kind == "elements" else y_true.shape[:1]
    weights = rng.uniform(0.0, 2.0, batch_shape).astype("float32")
    weights[0] = 0.0
    return weights


def _compare(case, reduction, weight_kind, seed):
    _, class_name, kwargs, make = case
    rng = np.random.default_rng(seed)
    y_true, y_pred = make(rng)
    sample_weight = _weights(weight_kind, y_true, rng)
    keras_loss = getattr(keras.losses, class_name)(reduction=reduction, **kwargs)
    our_loss = getattr(losses, class_name)(reduction=reduction, **kwargs)
    keras_weight = sample_weight
    if weight_kind == "scalar" and (
        class_name == "Circle" or kwargs.get("ignore_class") is not None
    ):
        # Keras multiplies a 0-d weight by the loss mask in place and crashes;
        # the product it means is the weight spread over the mask's shape.
        keras_weight = np.full(y_true.shape, sample_weight, dtype="float32")
    try:
        expected = keras_loss(y_true, y_pred, sample_weight=keras_weight)
    except (ValueError, RuntimeError):
        # Weights that do not broadcast against the losses (axis=0 reduces
        # the batch): ours must refuse them too.
        with pytest.raises((ValueError, RuntimeError)):
            our_loss(y_true, y_pred, sample_weight=sample_weight)
        return
    ours = our_loss(y_true, y_pred, sample_weight=sample_weight)
    expected = keras.ops.convert_to_numpy(expected)
    assert isinstance(ours, torch.Tensor)
    assert tuple(ours.shape) == expected.shape
    np.testing.assert_allclose(ours.detach().numpy(), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_loss_matches_keras(case, reduction):
    for weight_kind in (None, "samples", "scalar"):
        _compare(case, reduction, weight_kind, seed=0)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_loss_matches_keras_across_seeds(case, seed):
    _compare(case, "sum_over_batch_size", None, seed)
    _compare(case, "sum_over_batch_size", "samples", seed)


ELEMENT_WEIGHT_CASES = [
    c for c in CASES if c[0] in ("scce_rank3", "scce_ignore", "cce_rank3_logits")
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ELEMENT_WEIGHT_CASES, ids=[c[0] for c in ELEMENT_WEIGHT_CASES])
def test_per_element_weights_match_keras(case, reduction):
    _compare(case, reduction, "elements", seed=4)


def test_all_tokens_ignored_matches_keras():
    y_true = np.full((2, 3), -1)
    y_pred = np.random.default_rng(0).normal(size=(2, 3, CLASSES)).astype("float32")
    for reduction in REDUCTIONS:
        expected = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=-1, reduction=reduction
        )(y_true, y_pred)
        ours = losses.SparseCategoricalCrossentropy(
            from_logits=True, ignore_class=-1, reduction=reduction
        )(y_true, y_pred)
        np.testing.assert_allclose(ours.numpy(), keras.ops.convert_to_numpy(expected), atol=ATOL)


FUNCTION_CASES = [
    ("mean_squared_error", {}, _regression),
    ("mean_absolute_error", {}, _regression),
    ("mean_absolute_percentage_error", {}, _regression),
    ("mean_squared_logarithmic_error", {}, _positive),
    ("cosine_similarity", {"axis": -1}, _regression),
    ("huber", {"delta": 0.5}, _regression),
    ("log_cosh", {}, _regression),
    ("hinge", {}, _binary_logits),
    ("squared_hinge", {}, _signed),
    ("categorical_hinge", {}, _onehot_logits),
    ("kl_divergence", {}, _distributions),
    ("poisson", {}, _positive),
    ("binary_crossentropy", {"from_logits": True, "label_smoothing": 0.1}, _binary_logits),
    ("binary_focal_crossentropy", {"apply_class_balancing": True}, _binary),
    ("categorical_crossentropy", {"label_smoothing": 0.2}, _onehot),
    ("categorical_focal_crossentropy", {"from_logits": True}, _onehot_logits),
    ("sparse_categorical_crossentropy", {"from_logits": True}, _sparse_rank3_logits),
    (
        "sparse_categorical_crossentropy",
        {"ignore_class": -1, "from_logits": True},
        _sparse_with_ignored,
    ),
    ("dice", {}, _masks),
    ("tversky", {"alpha": 0.2, "beta": 0.8, "axis": (1, 2)}, _masks),
    ("circle", {"gamma": 20.0}, _embeddings),
    ("ctc", {}, _ctc),
    ("categorical_generalized_cross_entropy", {"q": 0.4}, _sparse),
]


@pytest.mark.parametrize(
    "name,kwargs,make", FUNCTION_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(FUNCTION_CASES)]
)
def test_function_forms_match_keras(name, kwargs, make):
    y_true, y_pred = make(np.random.default_rng(5))
    keras_fn = getattr(keras.losses, name)
    expected = keras.ops.convert_to_numpy(
        keras_fn(keras.ops.convert_to_tensor(y_true), keras.ops.convert_to_tensor(y_pred), **kwargs)
    )
    ours = getattr(losses, name)(torch.as_tensor(y_true), torch.as_tensor(y_pred), **kwargs)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    "identifier",
    [
        "mse",
        "MAE",
        "bce",
        "kld",
        "msle",
        "mape",
        "huber",
        "log_cosh",
        "sparse_categorical_crossentropy",
        "Poisson",
    ],
)
def test_string_ids_match_keras(identifier):
    rng = np.random.default_rng(6)
    if identifier in ("bce", "sparse_categorical_crossentropy", "kld"):
        make = {"bce": _binary, "sparse_categorical_crossentropy": _sparse, "kld": _distributions}[
            identifier
        ]
    else:
        make = _positive
    y_true, y_pred = make(rng)
    weights = rng.uniform(size=y_true.shape[:1]).astype("float32")
    keras_loss = keras.losses.get(identifier)
    if not isinstance(keras_loss, keras.losses.Loss):
        from keras.src.losses.losses import LossFunctionWrapper

        keras_loss = LossFunctionWrapper(keras_loss)
    expected = keras.ops.convert_to_numpy(keras_loss(y_true, y_pred, sample_weight=weights))
    ours = losses.get(identifier)(y_true, y_pred, sample_weight=weights)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in CASES
        if c[0] in ("bce_logits_smooth", "cce_logits_smooth", "scce_logits", "mse", "huber", "bfce")
    ],
    ids=lambda c: c[0],
)
def test_gradients_match_keras(case):
    _, class_name, kwargs, make = case
    y_true, y_pred = make(np.random.default_rng(7))
    keras_pred = torch.tensor(y_pred, requires_grad=True)
    getattr(keras.losses, class_name)(**kwargs)(y_true, keras_pred).backward()
    our_pred = torch.tensor(y_pred, requires_grad=True)
    getattr(losses, class_name)(**kwargs)(y_true, our_pred).backward()
    np.testing.assert_allclose(our_pred.grad.numpy(), keras_pred.grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "make,expected_class",
    [
        (_binary_column, "BinaryCrossentropy"),
        (_sparse, "SparseCategoricalCrossentropy"),
        (_sparse_column_logits, "SparseCategoricalCrossentropy"),
        (_onehot, "CategoricalCrossentropy"),
    ],
)
def test_crossentropy_resolution_matches_keras(make, expected_class):
    from keras.src.trainers.compile_utils import get_loss

    y_true, y_pred = make(np.random.default_rng(8))
    keras_loss = get_loss(
        "ce", keras.ops.convert_to_tensor(y_true), keras.ops.convert_to_tensor(y_pred)
    )
    ours = losses.resolve_crossentropy(y_true, y_pred)
    assert type(ours).__name__ == expected_class
    expected = keras.ops.convert_to_numpy(keras_loss(y_true, y_pred))
    np.testing.assert_allclose(
        losses.get("ce")(y_true, y_pred).numpy(), expected, rtol=RTOL, atol=ATOL
    )
