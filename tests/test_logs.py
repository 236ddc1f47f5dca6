"""torchfit.logs: where log values cross from the device to the host."""

import numpy as np
import pytest
import torch

from torchfit.logs import BatchLogs, pythonify_logs


def test_pythonify_logs_turns_scalars_into_floats_and_sorts_keys():
    logs = {
        "val_loss": torch.tensor(0.5),
        "loss": torch.tensor(1.25),
        "accuracy": np.float32(0.75),
        "count": 3,
    }
    result = pythonify_logs(logs)
    assert list(result) == ["accuracy", "count", "loss", "val_loss"]
    assert result == {"accuracy": 0.75, "count": 3, "loss": 1.25, "val_loss": 0.5}
    assert all(type(result[key]) is float for key in ("accuracy", "loss", "val_loss"))


def test_pythonify_logs_keeps_vectors_as_numpy_arrays():
    result = pythonify_logs({"f1_score": torch.tensor([0.5, 1.0]), "one": np.array([2.0])})
    assert isinstance(result["f1_score"], np.ndarray)
    np.testing.assert_allclose(result["f1_score"], [0.5, 1.0])
    # A one-element array is a scalar.
    assert result["one"] == 2.0 and type(result["one"]) is float


def test_pythonify_logs_flattens_a_metric_that_returns_a_dict():
    result = pythonify_logs(
        {
            "loss": torch.tensor(1.0),
            "scores": {"precision": torch.tensor(0.5), "recall": torch.tensor(0.25)},
        }
    )
    assert result == {"loss": 1.0, "precision": 0.5, "recall": 0.25}


def test_pythonify_logs_of_nothing_is_empty():
    assert pythonify_logs(None) == {}
    assert pythonify_logs({}) == {}


def test_pythonify_logs_detaches_tensors_that_require_grad():
    weight = torch.tensor(2.0, requires_grad=True)
    assert pythonify_logs({"loss": weight * 3}) == {"loss": 6.0}


def test_batch_logs_computes_once_on_first_read():
    calls = []

    def compute():
        calls.append(1)
        return {"loss": torch.tensor(0.25), "acc": torch.tensor(1.0)}

    logs = BatchLogs(compute)
    assert not logs.materialized
    assert calls == []
    assert repr(logs) == "BatchLogs(<not read yet>)"
    assert logs["loss"] == 0.25
    assert logs.materialized
    assert dict(logs) == {"acc": 1.0, "loss": 0.25}
    assert len(logs) == 2
    assert list(logs) == ["acc", "loss"]
    assert calls == [1]
    assert "loss" in repr(logs)


def test_batch_logs_raw_gives_tensors_without_materializing():
    value = torch.tensor(0.5)
    logs = BatchLogs(lambda: {"loss": value})
    assert logs.raw()["loss"] is value
    assert not logs.materialized
    logs["loss"]
    assert logs.raw() == {"loss": 0.5}


def test_batch_logs_is_a_mutable_mapping():
    logs = BatchLogs(lambda: {"loss": torch.tensor(1.0)})
    logs["lr"] = 0.1
    assert logs["lr"] == 0.1
    del logs["loss"]
    assert dict(logs) == {"lr": 0.1}
    assert logs.get("missing", "default") == "default"
    with pytest.raises(KeyError):
        logs["missing"]


def test_a_key_set_before_the_first_read_stays_a_tensor_and_marks_the_logs_modified():
    calls = []

    def compute():
        calls.append(1)
        return {"loss": torch.tensor(0.25)}

    logs = BatchLogs(compute)
    extra = torch.tensor(3.0)
    logs["scale"] = extra  # a custom step adding to super().train_step(data): no host copy
    assert logs.modified and not logs.materialized and calls == []
    assert logs.raw()["scale"] is extra
    assert dict(logs) == {"loss": 0.25, "scale": 3.0}
    assert not BatchLogs(compute).modified
