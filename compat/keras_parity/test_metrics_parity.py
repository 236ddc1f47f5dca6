"""torchfit.metrics against Keras 3 (torch backend): same batches, same numbers.

Each case streams several weighted batches into a Keras metric and its torchfit
twin, compares the results, resets both, streams fresh batches and compares
again. The confusion/F-score/IoU families have their own parity file.
"""

import os

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from torchfit import metrics  # noqa: E402

# Keras's torch backend warns about NumPy 2's copy keyword on every conversion.
# Keras's R2Score warns when the adjusted score falls back to the plain one.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*Falling back to standard R2 score:UserWarning"),
]

SEEDS = [0, 1, 2]
BATCH_SIZES = (8, 5, 7)


def _probs(rng, n, classes):
    logits = rng.normal(size=(n, classes)).astype("float32")
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def _one_hot(rng, n, classes):
    return np.eye(classes, dtype="float32")[rng.integers(0, classes, size=n)]


def _labels(rng, n, classes, trailing_one=False):
    labels = rng.integers(0, classes, size=(n, 1) if trailing_one else (n,))
    return labels.astype("int64")


def _regression(rng, n, dims=3):
    return rng.normal(size=(n, dims)).astype("float32"), rng.normal(size=(n, dims)).astype(
        "float32"
    )


# Each data function returns (y_true, y_pred) for one batch of n samples.
DATA = {
    "exact": lambda rng, n: (
        rng.integers(0, 3, size=(n, 1)).astype("float32"),
        rng.integers(0, 3, size=(n, 1)).astype("float32"),
    ),
    "binary": lambda rng, n: (
        rng.integers(0, 2, size=(n, 1)).astype("float32"),
        rng.uniform(size=(n, 1)).astype("float32"),
    ),
    "binary_multi": lambda rng, n: (
        rng.integers(0, 2, size=(n, 4)).astype("float32"),
        rng.uniform(size=(n, 4)).astype("float32"),
    ),
    "binary_logits": lambda rng, n: (
        rng.integers(0, 2, size=(n, 3)).astype("float32"),
        rng.normal(size=(n, 3)).astype("float32") * 3,
    ),
    "one_hot": lambda rng, n: (_one_hot(rng, n, 6), _probs(rng, n, 6)),
    "one_hot_logits": lambda rng, n: (
        _one_hot(rng, n, 6),
        rng.normal(size=(n, 6)).astype("float32"),
    ),
    "sparse": lambda rng, n: (_labels(rng, n, 6), _probs(rng, n, 6)),
    "sparse_column": lambda rng, n: (_labels(rng, n, 6, trailing_one=True), _probs(rng, n, 6)),
    "sparse_logits": lambda rng, n: (_labels(rng, n, 6), rng.normal(size=(n, 6)).astype("float32")),
    "sorted_ids": lambda rng, n: (
        _labels(rng, n, 6),
        np.argsort(-_probs(rng, n, 6), axis=-1).astype("float32"),
    ),
    "regression": lambda rng, n: _regression(rng, n),
    "positive": lambda rng, n: (
        rng.uniform(0.0, 3.0, size=(n, 3)).astype("float32"),
        rng.uniform(0.1, 3.0, size=(n, 3)).astype("float32"),
    ),
    "distribution": lambda rng, n: (_probs(rng, n, 4), _probs(rng, n, 4)),
    "hinge_pm1": lambda rng, n: (
        (rng.integers(0, 2, size=(n, 3)) * 2 - 1).astype("float32"),
        rng.normal(size=(n, 3)).astype("float32"),
    ),
    "hinge_01": lambda rng, n: (
        rng.integers(0, 2, size=(n, 3)).astype("float32"),
        rng.normal(size=(n, 3)).astype("float32"),
    ),
    "correlation": lambda rng, n: _regression(rng, n, dims=5),
}

# (case id, Keras factory, torchfit factory, data key)
CASES = [
    ("accuracy", lambda: keras.metrics.Accuracy(), lambda: metrics.Accuracy(), "exact"),
    (
        "binary_accuracy",
        lambda: keras.metrics.BinaryAccuracy(),
        lambda: metrics.BinaryAccuracy(),
        "binary",
    ),
    (
        "binary_accuracy_threshold",
        lambda: keras.metrics.BinaryAccuracy(threshold=0.7),
        lambda: metrics.BinaryAccuracy(threshold=0.7),
        "binary_multi",
    ),
    (
        "categorical_accuracy",
        lambda: keras.metrics.CategoricalAccuracy(),
        lambda: metrics.CategoricalAccuracy(),
        "one_hot",
    ),
    (
        "sparse_categorical_accuracy",
        lambda: keras.metrics.SparseCategoricalAccuracy(),
        lambda: metrics.SparseCategoricalAccuracy(),
        "sparse",
    ),
    (
        "sparse_categorical_accuracy_column",
        lambda: keras.metrics.SparseCategoricalAccuracy(),
        lambda: metrics.SparseCategoricalAccuracy(),
        "sparse_column",
    ),
    (
        "top_k",
        lambda: keras.metrics.TopKCategoricalAccuracy(k=2),
        lambda: metrics.TopKCategoricalAccuracy(k=2),
        "one_hot",
    ),
    (
        "top_k_default",
        lambda: keras.metrics.TopKCategoricalAccuracy(),
        lambda: metrics.TopKCategoricalAccuracy(),
        "one_hot",
    ),
    (
        "sparse_top_k",
        lambda: keras.metrics.SparseTopKCategoricalAccuracy(k=2),
        lambda: metrics.SparseTopKCategoricalAccuracy(k=2),
        "sparse",
    ),
    (
        "sparse_top_k_column",
        lambda: keras.metrics.SparseTopKCategoricalAccuracy(k=3),
        lambda: metrics.SparseTopKCategoricalAccuracy(k=3),
        "sparse_column",
    ),
    (
        "sparse_top_k_sorted_ids",
        lambda: keras.metrics.SparseTopKCategoricalAccuracy(k=2, from_sorted_ids=True),
        lambda: metrics.SparseTopKCategoricalAccuracy(k=2, from_sorted_ids=True),
        "sorted_ids",
    ),
    (
        "mse",
        lambda: keras.metrics.MeanSquaredError(),
        lambda: metrics.MeanSquaredError(),
        "regression",
    ),
    (
        "rmse",
        lambda: keras.metrics.RootMeanSquaredError(),
        lambda: metrics.RootMeanSquaredError(),
        "regression",
    ),
    (
        "mae",
        lambda: keras.metrics.MeanAbsoluteError(),
        lambda: metrics.MeanAbsoluteError(),
        "regression",
    ),
    (
        "mape",
        lambda: keras.metrics.MeanAbsolutePercentageError(),
        lambda: metrics.MeanAbsolutePercentageError(),
        "regression",
    ),
    (
        "msle",
        lambda: keras.metrics.MeanSquaredLogarithmicError(),
        lambda: metrics.MeanSquaredLogarithmicError(),
        "positive",
    ),
    (
        "cosine",
        lambda: keras.metrics.CosineSimilarity(),
        lambda: metrics.CosineSimilarity(),
        "regression",
    ),
    (
        "cosine_axis0",
        lambda: keras.metrics.CosineSimilarity(axis=0),
        lambda: metrics.CosineSimilarity(axis=0),
        "regression",
    ),
    ("logcosh", lambda: keras.metrics.LogCoshError(), lambda: metrics.LogCoshError(), "regression"),
    ("r2", lambda: keras.metrics.R2Score(), lambda: metrics.R2Score(), "regression"),
    (
        "r2_variance_weighted",
        lambda: keras.metrics.R2Score(class_aggregation="variance_weighted_average"),
        lambda: metrics.R2Score(class_aggregation="variance_weighted_average"),
        "regression",
    ),
    (
        "r2_raw",
        lambda: keras.metrics.R2Score(class_aggregation=None),
        lambda: metrics.R2Score(class_aggregation=None),
        "regression",
    ),
    (
        "r2_adjusted",
        lambda: keras.metrics.R2Score(num_regressors=2),
        lambda: metrics.R2Score(num_regressors=2),
        "regression",
    ),
    (
        "r2_adjusted_raw",
        lambda: keras.metrics.R2Score(class_aggregation=None, num_regressors=5),
        lambda: metrics.R2Score(class_aggregation=None, num_regressors=5),
        "regression",
    ),
    (
        "r2_adjusted_variance_weighted",
        lambda: keras.metrics.R2Score(
            class_aggregation="variance_weighted_average", num_regressors=5
        ),
        lambda: metrics.R2Score(class_aggregation="variance_weighted_average", num_regressors=5),
        "regression",
    ),
    # 20 rows x 3 outputs = 60 samples as Keras counts them: p = 58 still adjusts,
    # p = 59 would divide by zero and p = 80 exceeds them, so both fall back.
    (
        "r2_adjusted_last_valid_p",
        lambda: keras.metrics.R2Score(class_aggregation=None, num_regressors=58),
        lambda: metrics.R2Score(class_aggregation=None, num_regressors=58),
        "regression",
    ),
    (
        "r2_adjusted_fallback_p_equals_n_minus_1",
        lambda: keras.metrics.R2Score(num_regressors=59),
        lambda: metrics.R2Score(num_regressors=59),
        "regression",
    ),
    (
        "r2_adjusted_fallback_p_above_n",
        lambda: keras.metrics.R2Score(
            class_aggregation="variance_weighted_average", num_regressors=80
        ),
        lambda: metrics.R2Score(class_aggregation="variance_weighted_average", num_regressors=80),
        "regression",
    ),
    ("kld", lambda: keras.metrics.KLDivergence(), lambda: metrics.KLDivergence(), "distribution"),
    ("poisson", lambda: keras.metrics.Poisson(), lambda: metrics.Poisson(), "positive"),
    (
        "bce",
        lambda: keras.metrics.BinaryCrossentropy(),
        lambda: metrics.BinaryCrossentropy(),
        "binary_multi",
    ),
    (
        "bce_logits_smoothing",
        lambda: keras.metrics.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
        lambda: metrics.BinaryCrossentropy(from_logits=True, label_smoothing=0.1),
        "binary_logits",
    ),
    (
        "cce",
        lambda: keras.metrics.CategoricalCrossentropy(),
        lambda: metrics.CategoricalCrossentropy(),
        "one_hot",
    ),
    (
        "cce_logits_smoothing",
        lambda: keras.metrics.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2),
        lambda: metrics.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2),
        "one_hot_logits",
    ),
    (
        "scce",
        lambda: keras.metrics.SparseCategoricalCrossentropy(),
        lambda: metrics.SparseCategoricalCrossentropy(),
        "sparse",
    ),
    (
        "scce_column_logits",
        lambda: keras.metrics.SparseCategoricalCrossentropy(from_logits=True),
        lambda: metrics.SparseCategoricalCrossentropy(from_logits=True),
        "sparse_logits",
    ),
    (
        "scce_ignore_class",
        lambda: keras.metrics.SparseCategoricalCrossentropy(from_logits=True, ignore_class=2),
        lambda: metrics.SparseCategoricalCrossentropy(from_logits=True, ignore_class=2),
        "sparse_logits",
    ),
    ("hinge", lambda: keras.metrics.Hinge(), lambda: metrics.Hinge(), "hinge_pm1"),
    ("hinge_01", lambda: keras.metrics.Hinge(), lambda: metrics.Hinge(), "hinge_01"),
    (
        "squared_hinge",
        lambda: keras.metrics.SquaredHinge(),
        lambda: metrics.SquaredHinge(),
        "hinge_01",
    ),
    (
        "categorical_hinge",
        lambda: keras.metrics.CategoricalHinge(),
        lambda: metrics.CategoricalHinge(),
        "one_hot",
    ),
    (
        "pearson",
        lambda: keras.metrics.PearsonCorrelation(),
        lambda: metrics.PearsonCorrelation(),
        "correlation",
    ),
    (
        "concordance",
        lambda: keras.metrics.ConcordanceCorrelation(),
        lambda: metrics.ConcordanceCorrelation(),
        "correlation",
    ),
    (
        "wrapper",
        lambda: keras.metrics.MeanMetricWrapper(keras.metrics.mean_squared_error, name="mse_fn"),
        lambda: metrics.MeanMetricWrapper(metrics.mean_squared_error, name="mse_fn"),
        "regression",
    ),
]


def _numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value), dtype="float64")


def _mine(value):
    return value.detach().cpu().double().numpy()


def _weights(rng, n, kind):
    if kind == "none":
        return None
    weights = rng.uniform(0.0, 2.0, size=n).astype("float32")
    weights[rng.uniform(size=n) < 0.2] = 0.0
    return weights


def _stream(keras_metric, torchfit_metric, data, rng, weight_kind):
    for n in BATCH_SIZES:
        y_true, y_pred = data(rng, n)
        sample_weight = _weights(rng, n, weight_kind)
        keras_metric.update_state(y_true, y_pred, sample_weight=sample_weight)
        torchfit_metric.update_state(y_true, y_pred, sample_weight=sample_weight)
    np.testing.assert_allclose(
        _mine(torchfit_metric.result()), _numpy(keras_metric.result()), rtol=1e-5, atol=1e-6
    )


# Reducing along the batch axis leaves no per-sample values to weight.
UNWEIGHTED_ONLY = {"cosine_axis0"}
PARAMS = [
    pytest.param(case, weight_kind, id=f"{case[0]}-{weight_kind}")
    for case in CASES
    for weight_kind in ("none", "per_sample")
    if not (weight_kind == "per_sample" and case[0] in UNWEIGHTED_ONLY)
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case, weight_kind", PARAMS)
def test_metric_matches_keras(case, weight_kind, seed):
    _, keras_factory, torchfit_factory, data_key = case
    rng = np.random.default_rng(seed)
    keras_metric, torchfit_metric = keras_factory(), torchfit_factory()
    assert torchfit_metric.name == keras_metric.name
    _stream(keras_metric, torchfit_metric, DATA[data_key], rng, weight_kind)
    keras_metric.reset_state()
    torchfit_metric.reset_state()
    _stream(keras_metric, torchfit_metric, DATA[data_key], rng, weight_kind)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "values_shape, weight_shape",
    [((), None), ((), ()), ((6,), None), ((6,), (6,)), ((6, 3), (6,)), ((6, 3), (6, 3)),
     ((6, 3, 2), (6, 1)), ((6, 1), (6,)), ((6,), ())],
)  # fmt: skip
@pytest.mark.parametrize("kind", ["Mean", "Sum"])
def test_reduction_matches_keras(kind, values_shape, weight_shape, seed):
    rng = np.random.default_rng(seed)
    keras_metric, torchfit_metric = getattr(keras.metrics, kind)(), getattr(metrics, kind)()
    for _ in range(2):
        for _ in range(3):
            values = rng.normal(size=values_shape).astype("float32")
            weight = None
            if weight_shape is not None:
                weight = rng.uniform(0.0, 2.0, size=weight_shape).astype("float32")
            keras_metric.update_state(values, sample_weight=weight)
            torchfit_metric.update_state(values, sample_weight=weight)
        np.testing.assert_allclose(
            _mine(torchfit_metric.result()), _numpy(keras_metric.result()), rtol=1e-5, atol=1e-6
        )
        keras_metric.reset_state()
        torchfit_metric.reset_state()


@pytest.mark.parametrize("seed", SEEDS)
def test_mean_python_number_weight_matches_keras(seed):
    import torch

    rng = np.random.default_rng(seed)
    keras_metric, torchfit_metric = keras.metrics.Mean(), metrics.Mean()
    for _ in range(4):
        value = float(rng.normal())
        weight = int(rng.integers(1, 40))
        keras_metric.update_state(value, sample_weight=weight)
        torchfit_metric.update_state(torch.tensor(value), sample_weight=weight)
    np.testing.assert_allclose(
        _mine(torchfit_metric.result()), _numpy(keras_metric.result()), rtol=1e-5
    )
