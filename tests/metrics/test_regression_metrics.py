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
