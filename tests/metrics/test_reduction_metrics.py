import numpy as np
import pytest
import torch

import torchfit
from torchfit.metrics import Mean, MeanMetricWrapper, Sum, mean_squared_error
from torchfit.metrics.reduction_metrics import (
    reduce_to_samplewise_values,
    squeeze_or_expand_to_same_rank,
)


def test_mean_unweighted_and_weighted():
    metric = Mean()
    metric.update_state([1, 3, 5, 7])
    assert float(metric.result()) == 4.0
    metric.reset_state()
    metric.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert float(metric.result()) == 2.0


def test_mean_is_zero_before_any_update():
    assert float(Mean().result()) == 0.0


def test_mean_scalar_fast_path_with_python_weight():
    metric = Mean()
    total = metric.total
    loss = torch.tensor(2.0, requires_grad=True) * 1.0
    metric.update_state(loss, sample_weight=3)
    metric.update_state(torch.tensor(4.0), sample_weight=1)
    assert metric.total is total
    assert not metric.total.requires_grad
    assert float(metric.total) == 10.0 and float(metric.count) == 4.0
    assert float(metric.result()) == 2.5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_mean_counts_add_exactly_what_the_python_numbers_add(dtype):
    # The per-step count increments are cached tensors: shared, never changed, and
    # adding the same as the Python number, also where a dtype rounds the count.
    metrics = [Mean(dtype=dtype), Mean(dtype=dtype)]
    expected = torch.zeros((), dtype=dtype)
    big = 2**11 + 1 if dtype == torch.float16 else 2**24 + 1  # not exact in the dtype
    for weight in (64, 64, 3, big, 0, 7, 1000):
        expected.add_(weight)
        for metric in metrics:
            metric.update_state(torch.tensor(1.0, dtype=dtype), sample_weight=weight)
    metrics[1].update_state(torch.ones(5, dtype=dtype))  # a batch of 5: counts 5
    expected_after = expected.clone().add_(5)
    assert metrics[0].count.item() == expected.item()
    assert metrics[1].count.item() == expected_after.item()
    assert metrics[0].count.data_ptr() != metrics[1].count.data_ptr()


def test_mean_scalar_weight_on_vector_averages_first_as_keras():
    metric = Mean()
    metric.update_state([1.0, 3.0], sample_weight=2.0)
    assert float(metric.total) == 4.0 and float(metric.count) == 2.0


def test_mean_reduces_trailing_dims_before_weighting():
    metric = Mean()
    metric.update_state(np.array([[1.0, 3.0], [5.0, 7.0]]), sample_weight=[1.0, 0.0])
    assert float(metric.result()) == 2.0


def test_sum_weighted():
    metric = Sum()
    metric.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert float(metric.result()) == 4.0
    assert metric.name == "sum"


def test_squeeze_or_expand_to_same_rank():
    a, b = squeeze_or_expand_to_same_rank(torch.zeros(4, 1), torch.zeros(4))
    assert a.shape == (4, 1) and b.shape == (4, 1)
    a, b = squeeze_or_expand_to_same_rank(torch.zeros(4, 3, 1), torch.zeros(4, 3))
    assert a.shape == (4, 3) and b.shape == (4, 3)
    a, b = squeeze_or_expand_to_same_rank(torch.zeros(4, 3), torch.zeros(4))
    assert a.shape == (4, 3) and b.shape == (4,)


def test_squeeze_or_expand_handles_the_extra_unit_dim_on_either_side():
    a, b = squeeze_or_expand_to_same_rank(torch.zeros(4), torch.zeros(4, 1))
    assert a.shape == (4, 1) and b.shape == (4, 1)
    a, b = squeeze_or_expand_to_same_rank(torch.zeros(4, 3), torch.zeros(4, 3, 1))
    assert a.shape == (4, 3) and b.shape == (4, 3)
    a, b = squeeze_or_expand_to_same_rank(torch.zeros(4), torch.zeros(4, 2))
    assert a.shape == (4,) and b.shape == (4, 2)


def test_evaluate_one_unit_output_against_flat_labels_is_per_sample():
    # The everyday case: a Linear(.., 1) head and labels of shape (batch,). Without the
    # rank fix the error would broadcast to (batch, batch).
    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 0.0]]))
        net.bias.zero_()
    model = torchfit.Model(net)
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x = np.array([[0.0, 5.0], [1.0, 5.0], [2.0, 5.0], [4.0, 5.0]], "float32")
    y = np.array([1.0, 0.0, 2.0, 3.0], "float32")  # predictions are 0, 1, 2, 4
    logs = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    assert logs["mae"] == pytest.approx(3 / 4)
    assert logs["loss"] == pytest.approx(3 / 4)


def test_reduce_to_samplewise_values_with_rank_two_weight():
    values, weight = reduce_to_samplewise_values(
        torch.ones(2, 3), torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]), torch.mean
    )
    assert values.tolist() == pytest.approx([2 / 3, 0.0])
    assert weight.tolist() == pytest.approx([2 / 3, 0.0])


def test_wrapper_passes_kwargs_and_names():
    def scaled_error(y_true, y_pred, scale=1.0):
        return scale * torch.abs(y_true - y_pred)

    metric = MeanMetricWrapper(scaled_error, name="scaled", scale=2.0)
    assert float(metric([[0.0], [1.0]], [[1.0], [1.0]])) == 1.0
    assert metric.name == "scaled"
    assert MeanMetricWrapper(scaled_error).name == "mean_metric_wrapper"


def test_wrapper_config_round_trip_uses_function_name():
    metric = MeanMetricWrapper(mean_squared_error, name="m")
    config = metric.get_config()
    assert config["fn"] == "mean_squared_error"
    clone = MeanMetricWrapper.from_config(config)
    assert float(clone([[0.0, 2.0]], [[0.0, 0.0]])) == 2.0


def test_wrapper_unknown_function_name_is_an_error():
    with pytest.raises(ValueError, match="fn"):
        MeanMetricWrapper.from_config({"name": "x", "dtype": "float32", "fn": "nope"})


def test_wrapper_rejects_non_callable():
    with pytest.raises(TypeError, match="fn"):
        MeanMetricWrapper(3)


def test_wrapper_never_builds_a_graph():
    metric = MeanMetricWrapper(mean_squared_error)
    y_pred = torch.rand(4, 2, requires_grad=True)
    result = metric(torch.rand(4, 2), y_pred)
    assert not result.requires_grad
