"""Where a model runs: the default device, explicit devices, and the state that follows it."""

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit.data import array_adapter

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _expected_default_type() -> str:
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def _data(n=24, seed=0):
    rng = np.random.RandomState(seed)
    return rng.rand(n, 4).astype("float32"), rng.randint(0, 3, n)


def _compile(model):
    model.compile(
        optimizer="adam",
        loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _state_devices(model) -> set:
    """Every device holding a metric variable or an optimizer state tensor."""
    devices = {v.device for metric in model.metrics for v in metric.variables}
    for state in model.optimizer.state.values():
        devices |= {t.device for t in state.values() if torch.is_tensor(t)}
    return devices


def test_default_device_is_cuda_else_mps_else_cpu():
    model = torchfit.Model(_net())
    assert model.device.type == _expected_default_type()
    assert next(model.module.parameters()).device.type == _expected_default_type()


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_explicit_device_is_honoured(device):
    model = torchfit.Model(_net(), device=device)
    assert model.device == torch.device("cpu")
    assert all(p.device == torch.device("cpu") for p in model.parameters())


@pytest.mark.parametrize(
    "move", [lambda m: m.to("cpu"), lambda m: m.to(torch.device("cpu")), lambda m: m.cpu()]
)
def test_moving_the_model_records_its_device(move):
    model = torchfit.Model(_net())
    assert move(model) is model
    assert model._explicit_device == torch.device("cpu")
    assert model.device == torch.device("cpu")


def test_dtype_only_to_keeps_the_device_choice():
    model = torchfit.Model(_net(), device="cpu")
    model.to(torch.float64)
    assert model.device == torch.device("cpu")
    assert next(model.parameters()).dtype == torch.float64
    unset = torchfit.Model(_net())
    unset.to(torch.float64)
    assert unset._explicit_device is None


def test_metrics_and_optimizer_state_live_on_the_model_device():
    model = _compile(torchfit.Model(_net(), device="cpu"))
    x, y = _data()
    model.fit(x, y, batch_size=8, verbose=0)
    assert model.optimizer.state, "the optimizer should have state after a step"
    assert _state_devices(model) == {torch.device("cpu")}
    assert all(metric.device == model.device for metric in model.metrics)


@pytest.mark.parametrize("kind", ["numpy", "numpy_float64", "tensor", "dataset"])
def test_numpy_and_host_tensor_batches_train(kind):
    x, y = _data()
    if kind == "numpy_float64":
        x = x.astype("float64")
    elif kind == "tensor":
        x, y = torch.from_numpy(x), torch.from_numpy(y)
    elif kind == "dataset":
        x, y = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), None
    model = _compile(torchfit.Model(_net(), device="cpu"))
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert np.isfinite(history.history["loss"]).all()


# ------------------------------------------------------------------- CUDA
@needs_cuda
def test_cuda_model_trains_on_host_data_and_keeps_its_state_on_cuda():
    model = _compile(torchfit.Model(_net(), device="cuda"))
    x, y = _data()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)  # numpy data
    model.fit(torch.from_numpy(x), torch.from_numpy(y), batch_size=8, verbose=0)  # CPU tensors
    assert {d.type for d in _state_devices(model)} == {"cuda"}
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert model.evaluate(x, y, verbose=0)[0] > 0
    assert model.predict(x, verbose=0).shape == (24, 3)


@needs_cuda
def test_model_moved_to_cuda_after_compile_moves_its_metrics_too():
    model = _compile(torchfit.Model(_net(), device="cpu"))
    model.to("cuda")
    x, y = _data()
    model.fit(x, y, batch_size=8, verbose=0)
    assert model.device.type == "cuda"
    assert {d.type for d in _state_devices(model)} == {"cuda"}


@needs_cuda
@pytest.mark.parametrize("shuffle", [False, True])
def test_pinned_host_path_matches_the_on_device_path(monkeypatch, shuffle):
    # Data too large for the device goes through pinned host memory with
    # non-blocking copies; the result must be the same as keeping it on device.
    x, y = _data(n=64)

    def train(fits_on_device):
        monkeypatch.setattr(
            array_adapter, "_fits_on_device", lambda tensors, device: fits_on_device
        )
        torch.manual_seed(1)
        model = _compile(torchfit.Model(_net(), device="cuda"))
        history = model.fit(x, y, batch_size=8, epochs=2, shuffle=shuffle, verbose=0)
        return history.history["loss"], model.get_weights()

    pinned_loss, pinned_weights = train(False)
    device_loss, device_weights = train(True)
    np.testing.assert_allclose(pinned_loss, device_loss, rtol=1e-5)
    for a, b in zip(pinned_weights, device_weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
