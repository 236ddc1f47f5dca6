import numpy as np
import pytest
import torch

from torchfit.metrics.base import Metric, as_tensor, standardize_dtype, to_snake_case


class Counter(Metric):
    def __init__(self, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), name="total")
        self.ones = self.add_variable(shape=(2,), initializer="ones", name="ones")
        self.history = [self.total]

    def update_state(self, values):
        values = self._convert(values, self.dtype)
        self.total.add_(values.sum())
        self.ones.add_(1)

    def result(self):
        return self.total.clone()


class Outer(Metric):
    def __init__(self):
        super().__init__(name="outer")
        self.inner = Counter(name="inner")
        self.count = self.add_weight(shape=(), name="count")


def test_default_name_is_snake_case_of_class():
    assert Counter().name == "counter"
    assert Counter(name="custom").name == "custom"


def test_to_snake_case_matches_keras_spellings():
    assert to_snake_case("SparseTopKCategoricalAccuracy") == "sparse_top_k_categorical_accuracy"
    assert to_snake_case("IoU") == "io_u"
    assert to_snake_case("AUC") == "auc"
    assert to_snake_case("F1Score") == "f1_score"


def test_add_variable_creates_state_on_device_with_dtype():
    metric = Counter(dtype="float64")
    assert metric.dtype == torch.float64
    assert metric.total.dtype == torch.float64
    assert metric.total.device == metric.device == torch.device("cpu")
    assert metric.ones.tolist() == [1.0, 1.0]
    assert metric.aggregations == ["sum", "sum"]


def test_call_updates_and_returns_result():
    metric = Counter()
    assert float(metric([1.0, 2.0])) == 3.0
    assert float(metric(np.array([4.0]))) == 7.0


def test_reset_state_refills_in_place_with_initializer():
    metric = Counter()
    total, ones = metric.total, metric.ones
    metric([5.0])
    metric.reset_state()
    assert metric.total is total and metric.ones is ones
    assert float(total) == 0.0
    assert ones.tolist() == [1.0, 1.0]
    metric([1.0])
    metric.reset_states()
    assert float(total) == 0.0


def test_inputs_are_detached():
    metric = Counter()
    values = torch.ones(3, requires_grad=True)
    metric.update_state(values * 2)
    assert not metric.total.requires_grad
    assert metric.total.grad_fn is None


def test_to_moves_state_and_rebinds_attributes():
    metric = Counter()
    assert metric.to("meta") is metric
    assert metric.device.type == "meta"
    assert metric.total.device.type == "meta"
    assert metric.history[0] is metric.total
    assert all(v.device.type == "meta" for v in metric.variables)


def test_unpinned_metric_follows_first_tensor_input_device():
    metric = Counter()
    metric.update_state(torch.ones(2, device="meta"))
    assert metric.device.type == "meta"


def test_pinned_metric_moves_inputs_instead():
    metric = Counter().to("cpu")
    metric.update_state(torch.ones(2))
    assert metric.device.type == "cpu"


def test_nested_metrics_share_variables_reset_and_device():
    outer = Outer()
    assert len(outer.variables) == 3
    outer.inner([2.0])
    outer.reset_state()
    assert float(outer.inner.total) == 0.0
    outer.to("meta")
    assert outer.inner.device.type == "meta"


def test_config_round_trip():
    metric = Counter(name="c", dtype=torch.float64)
    config = metric.get_config()
    assert config == {"name": "c", "dtype": "float64"}
    clone = Counter.from_config(config)
    assert clone.name == "c" and clone.dtype == torch.float64


def test_bad_dtype_names_the_argument():
    with pytest.raises(TypeError, match="dtype"):
        Counter(dtype="floaty")


def test_bad_aggregation_is_rejected():
    metric = Counter()
    with pytest.raises(ValueError, match="aggregation"):
        metric.add_variable(shape=(), aggregation="max")


def test_add_variable_without_super_init_is_a_clear_error():
    class Broken(Metric):
        def __init__(self):
            self.total = self.add_variable(shape=())

    with pytest.raises(RuntimeError, match="super"):
        Broken()


def test_unimplemented_methods_raise():
    metric = Metric(name="bare")
    with pytest.raises(NotImplementedError):
        metric.update_state(1)
    with pytest.raises(NotImplementedError):
        metric.result()
    assert repr(metric) == "<Metric name=bare>"


def test_standardize_dtype_and_as_tensor():
    assert standardize_dtype(None) == torch.float32
    assert standardize_dtype(np.float64) == torch.float64
    assert standardize_dtype(np.dtype("int32")) == torch.int32
    assert as_tensor([1.0, 2.0]).dtype == torch.float32
    assert as_tensor(np.array([1.0])).dtype == torch.float64
    assert as_tensor([1, 2], dtype=torch.float16).dtype == torch.float16
