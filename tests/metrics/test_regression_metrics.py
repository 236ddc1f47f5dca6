import math

import numpy as np
import pytest
import torch

from torchfit import metrics

Y_TRUE = [[0.0, 1.0], [0.0, 0.0]]
Y_PRED = [[1.0, 1.0], [0.0, 0.0]]


@pytest.mark.parametrize(
    "cls, expected, name",
    [
        (metrics.MeanSquaredError, 0.25, "mean_squared_error"),
        (metrics.MeanAbsoluteError, 0.25, "mean_absolute_error"),
        (metrics.RootMeanSquaredError, 0.5, "root_mean_squared_error"),
        (metrics.LogCoshError, math.log(math.cosh(1.0)) / 4, "logcosh"),
    ],
)
def test_error_metrics_values_names_and_direction(cls, expected, name):
    metric = cls()
    assert float(metric(Y_TRUE, Y_PRED)) == pytest.approx(expected, rel=1e-6)
    assert metric.name == name
    assert metric._direction == "down"


@pytest.mark.parametrize(
    "fn",
    [
        metrics.mean_squared_error,
        metrics.mean_absolute_error,
        metrics.mean_absolute_percentage_error,
        metrics.mean_squared_logarithmic_error,
        metrics.cosine_similarity,
        metrics.log_cosh,
    ],
)
@pytest.mark.parametrize("pred_dtype", [torch.float32, torch.bfloat16, torch.int64])
def test_regression_functions_compute_in_the_dtype_of_y_pred(fn, pred_dtype):
    # As Keras: y_pred becomes a float tensor and y_true is cast to its dtype, so float64
    # targets do not pull a float32 or bfloat16 model's metric into float64.
    y_true = np.array([[1.0, 2.0], [0.5, 3.0]])  # float64
    y_pred = torch.tensor([[2, 2], [1, 1]], dtype=pred_dtype)
    expected = pred_dtype if pred_dtype.is_floating_point else torch.float32
    assert fn(y_true, y_pred).dtype == expected


def test_mape_uses_epsilon_floor():
    value = metrics.mean_absolute_percentage_error([[0.0]], [[1e-7]])
    assert float(value) == pytest.approx(100.0)


def test_msle_clips_negative_predictions():
    value = metrics.mean_squared_logarithmic_error([[0.0]], [[-5.0]])
    assert float(value) == pytest.approx(0.0, abs=1e-6)


def test_rmse_weighted():
    metric = metrics.RootMeanSquaredError()
    metric.update_state([[0.0], [0.0]], [[2.0], [4.0]], sample_weight=[1.0, 0.0])
    assert float(metric.result()) == pytest.approx(2.0)


def test_cosine_similarity_zero_vector_is_zero():
    assert metrics.cosine_similarity([[0.0, 0.0]], [[1.0, 1.0]]).tolist() == [0.0]
    metric = metrics.CosineSimilarity(axis=0)
    assert metric.get_config()["axis"] == 0
    assert metric._direction == "up"


def test_r2_score_matches_closed_form():
    rng = np.random.default_rng(0)
    y_true = rng.normal(size=(20, 2)).astype("float32")
    y_pred = y_true + rng.normal(scale=0.3, size=(20, 2)).astype("float32")
    metric = metrics.R2Score(class_aggregation=None)
    metric.update_state(y_true[:10], y_pred[:10])
    metric.update_state(y_true[10:], y_pred[10:])
    expected = 1 - ((y_true - y_pred) ** 2).sum(0) / ((y_true - y_true.mean(0)) ** 2).sum(0)
    np.testing.assert_allclose(metric.result().numpy(), expected, rtol=1e-4)


def _sklearn_r2(y_true, y_pred, weight, class_aggregation):
    """scikit-learn's `r2_score` formula in NumPy (scikit-learn is not a test dependency)."""
    weight = weight[:, None]
    mean = (weight * y_true).sum(0) / weight.sum(0)
    residual = (weight * (y_true - y_pred) ** 2).sum(0)
    total = (weight * (y_true - mean) ** 2).sum(0)
    raw = 1 - residual / total
    if class_aggregation is None:
        return raw
    if class_aggregation == "uniform_average":
        return raw.mean()
    return (total * raw).sum() / total.sum()


def _adjusted(r2, num_samples, num_regressors):
    return 1 - (1 - r2) * (num_samples - 1) / (num_samples - num_regressors - 1)


def _weighted_regression_batches(columns):
    rng = np.random.default_rng(3)
    y_true = rng.normal(size=(12, columns))
    y_pred = y_true + rng.normal(scale=0.8, size=(12, columns))
    weight = rng.uniform(0.0, 2.0, size=12)
    weight[[2, 7]] = 0.0
    return y_true, y_pred, weight


AGGREGATIONS = [None, "uniform_average", "variance_weighted_average"]


@pytest.mark.parametrize("class_aggregation", AGGREGATIONS)
def test_r2_adjusted_matches_sklearn_formula_adjusted_by_hand(class_aggregation):
    # As Keras, every entry counts as a sample, zero-weighted ones included:
    # n = rows x outputs (3 columns, so a per-row count gives other numbers).
    y_true, y_pred, weight = _weighted_regression_batches(columns=3)
    metric = metrics.R2Score(class_aggregation, num_regressors=4, dtype=torch.float64)
    metric.update_state(y_true[:5], y_pred[:5], sample_weight=weight[:5])
    metric.update_state(y_true[5:], y_pred[5:], sample_weight=weight[5:])
    plain = _sklearn_r2(y_true, y_pred, weight, class_aggregation)
    expected = _adjusted(plain, num_samples=y_true.size, num_regressors=4)
    np.testing.assert_allclose(metric.result().numpy(), expected, rtol=1e-10)
    assert not np.allclose(expected, _adjusted(plain, num_samples=12, num_regressors=4))


def test_r2_adjusted_single_output_is_the_textbook_adjusted_r2():
    y_true, y_pred, weight = _weighted_regression_batches(columns=1)
    metric = metrics.R2Score(num_regressors=3, dtype=torch.float64)
    metric.update_state(y_true, y_pred, sample_weight=weight)
    plain = _sklearn_r2(y_true, y_pred, weight, "uniform_average")
    assert float(metric.result()) == pytest.approx(_adjusted(plain, 12, 3), rel=1e-10)


@pytest.mark.parametrize("num_regressors, adjusts", [(1, True), (2, False), (3, False)])
def test_r2_adjusted_needs_more_samples_than_regressors_plus_one(num_regressors, adjusts):
    # Keras adjusts only when p < n - 1: with n = 3, p = 2 divides by zero and falls back.
    y_true, y_pred = [[1.0], [4.0], [3.0]], [[2.0], [4.0], [4.0]]
    plain = float(metrics.R2Score()(y_true, y_pred))
    result = float(metrics.R2Score(num_regressors=num_regressors)(y_true, y_pred))
    expected = _adjusted(plain, 3, num_regressors) if adjusts else plain
    assert result == pytest.approx(expected, rel=1e-6)


def test_r2_adjusted_falls_back_without_enough_samples():
    plain, adjusted = metrics.R2Score(), metrics.R2Score(num_regressors=5)
    y_true, y_pred = [[1.0], [4.0], [3.0]], [[2.0], [4.0], [4.0]]
    assert float(adjusted(y_true, y_pred)) == pytest.approx(float(plain(y_true, y_pred)))


def test_r2_score_rejects_bad_arguments_and_shapes():
    with pytest.raises(ValueError, match="class_aggregation"):
        metrics.R2Score(class_aggregation="median")
    with pytest.raises(ValueError, match="num_regressors"):
        metrics.R2Score(num_regressors=-1)
    with pytest.raises(ValueError, match="2-D"):
        metrics.R2Score().update_state(torch.zeros(2, 2, 2), torch.zeros(2, 2, 2))


def test_r2_reset_state_keeps_built_state():
    metric = metrics.R2Score()
    metric([[1.0], [2.0]], [[1.0], [3.0]])
    metric.reset_state()
    assert all(float(v.abs().sum()) == 0.0 for v in metric.variables)
    assert metric.get_config()["class_aggregation"] == "uniform_average"
