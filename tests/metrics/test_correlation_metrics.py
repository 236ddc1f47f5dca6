import numpy as np
import pytest

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
