import numpy as np
import pytest
import torch

torchmetrics = pytest.importorskip("torchmetrics")

from torchfit import metrics  # noqa: E402
from torchfit.metrics.torchmetrics_adapter import TorchMetricsAdapter  # noqa: E402


def test_update_passes_predictions_first():
    seen = {}

    class Recorder(torchmetrics.Metric):
        def __init__(self):
            super().__init__()
            self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")

        def update(self, preds, target):
            seen["preds"], seen["target"] = preds, target
            self.total += preds.sum()

        def compute(self):
            return self.total

    adapter = TorchMetricsAdapter(Recorder())
    adapter.update_state(torch.tensor([0.0]), torch.tensor([5.0]))
    assert float(seen["preds"]) == 5.0 and float(seen["target"]) == 0.0
    assert adapter.name == "recorder"
    assert len(adapter.variables) == 1


def test_result_reset_and_numpy_inputs():
    adapter = TorchMetricsAdapter(torchmetrics.MeanSquaredError())
    adapter.update_state(np.array([0.0, 1.0]), np.array([1.0, 1.0]))
    assert float(adapter.result()) == pytest.approx(0.5)
    adapter.reset_state()
    adapter.update_state(torch.tensor([2.0]), torch.tensor([2.0]))
    assert float(adapter.result()) == 0.0


def test_name_attribute_and_direction():
    wrapped = torchmetrics.classification.MulticlassAccuracy(num_classes=3)
    adapter = TorchMetricsAdapter(wrapped)
    assert adapter.name == "multiclass_accuracy"
    assert adapter._direction == "up"
    wrapped.name = "acc3"
    assert TorchMetricsAdapter(wrapped).name == "acc3"
    assert TorchMetricsAdapter(wrapped, name="given").name == "given"


def test_to_moves_the_wrapped_metric():
    adapter = TorchMetricsAdapter(torchmetrics.MeanAbsoluteError())
    assert adapter.to("cpu") is adapter
    assert adapter.device.type == "cpu"


def test_sample_weight_is_refused():
    adapter = TorchMetricsAdapter(torchmetrics.MeanAbsoluteError())
    with pytest.raises(ValueError, match="sample_weight"):
        adapter.update_state([1.0], [1.0], sample_weight=[1.0])


def test_non_torchmetrics_object_is_refused():
    with pytest.raises(TypeError, match="metric"):
        TorchMetricsAdapter(metrics.Mean())


def test_get_wraps_torchmetrics_objects():
    adapter = metrics.get(torchmetrics.MeanSquaredError())
    assert isinstance(adapter, TorchMetricsAdapter)
    assert float(adapter([1.0, 2.0], [1.0, 4.0])) == pytest.approx(2.0)
