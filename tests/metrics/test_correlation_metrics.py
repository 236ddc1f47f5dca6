import numpy as np
import pytest
import torch

from torchfit import metrics


@pytest.mark.parametrize("seed", [0, 1])
def test_pearson_matches_numpy_per_sample(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.normal(size=(4, 6)).astype("float32")
    y_pred = rng.normal(size=(4, 6)).astype("float32")
    expected = [np.corrcoef(t, p)[0, 1] for t, p in zip(y_true, y_pred)]
    np.testing.assert_allclose(
        metrics.pearson_correlation(y_true, y_pred).numpy(), expected, rtol=1e-4
    )


def test_concordance_of_identical_series_is_one():
    y = np.array([[1.0, 2.0, 4.0]], dtype="float32")
    assert float(metrics.concordance_correlation(y, y)) == pytest.approx(1.0, rel=1e-5)


def test_concordance_penalises_offset_where_pearson_does_not():
    y = np.array([[1.0, 2.0, 4.0]], dtype="float32")
    assert float(metrics.pearson_correlation(y, y + 3)) == pytest.approx(1.0, rel=1e-5)
    assert float(metrics.concordance_correlation(y, y + 3)) < 0.5


@pytest.mark.parametrize("cls", [metrics.PearsonCorrelation, metrics.ConcordanceCorrelation])
def test_correlation_metrics_axis_config_and_direction(cls):
    metric = cls(axis=0)
    assert metric.get_config()["axis"] == 0
    assert cls.from_config(metric.get_config()).axis == 0
    assert metric._direction == "up"
    y = np.array([[1.0, 5.0], [2.0, 3.0], [4.0, 1.0]], dtype="float32")
    assert float(metric(y, y)) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize(
    "function, expected",
    [
        (metrics.pearson_correlation, [1.0, 0.9934]),
        (metrics.concordance_correlation, [0.9756, 0.9877]),  # Keras's docstring values
    ],
)
@pytest.mark.parametrize("true_dtype, pred_dtype", [("float64", "float32"), ("float32", "float64")])
def test_correlations_compute_in_the_prediction_dtype(function, expected, true_dtype, pred_dtype):
    # As Keras: y_true is converted to y_pred's dtype, whatever y_true's own dtype
    # (values and dtypes from Keras 3, torch backend).
    y_true = np.array([[0, 1, 0.5], [1, 1, 0.2]], dtype=true_dtype)
    y_pred = torch.tensor([[0.1, 0.9, 0.5], [1, 0.9, 0.2]], dtype=getattr(torch, pred_dtype))
    values = function(y_true, y_pred)
    assert values.dtype == getattr(torch, pred_dtype)
    assert values.tolist() == pytest.approx(expected, abs=1e-4)
