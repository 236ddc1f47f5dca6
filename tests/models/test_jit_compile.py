"""`jit_compile=True`: the module runs under `torch.compile`, falling back to eager once, loudly."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import torchfit


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def _data():
    rng = np.random.RandomState(0)
    x = rng.rand(32, 4).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


def _train(jit_compile, net=None):
    model = torchfit.Model(net if net is not None else _net(), device="cpu")
    model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"], jit_compile=jit_compile)
    x, y = _data()
    history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return model, history.history


def _fallback_warnings(records) -> list:
    return [r for r in records if "jit_compile=True" in str(r.message)]


def _assert_same_training(model, history, reference_model, reference_history):
    for key, values in reference_history.items():
        np.testing.assert_allclose(history[key], values, rtol=1e-5, atol=1e-6)
    for a, b in zip(model.get_weights(), reference_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.timeout(300)
def test_compiled_model_trains_like_eager():
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        model, history = _train(True)
    reference_model, reference_history = _train(False)
    _assert_same_training(model, history, reference_model, reference_history)
    fallbacks = _fallback_warnings(records)
    if model._jit_forward is not None:
        # It really compiled: no fallback, and dynamo captured frames.
        assert fallbacks == []
        assert torch._dynamo.utils.counters["frames"]["ok"] > 0
    else:  # no working compiler here: it must have said so, once
        assert len(fallbacks) == 1


@pytest.mark.parametrize("jit_compile", ["auto", False])
def test_compile_is_not_called_unless_jit_compile_is_true(monkeypatch, jit_compile):
    def forbidden(*args, **kwargs):
        raise AssertionError("torch.compile must not be called")

    monkeypatch.setattr(torch, "compile", forbidden)
    model, history = _train(jit_compile)
    assert model.jit_compile is False
    assert len(history["loss"]) == 2


def test_compiled_function_that_fails_falls_back_to_eager_with_one_warning(monkeypatch):
    calls = {"compiled": 0}

    def broken_compile(fn, *args, **kwargs):
        def compiled(*a, **kw):
            calls["compiled"] += 1
            raise RuntimeError("backend exploded")

        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        model, history = _train(True)
    fallbacks = _fallback_warnings(records)
    assert len(fallbacks) == 1
    assert "backend exploded" in str(fallbacks[0].message)
    assert calls["compiled"] == 1  # tried once, never again after the fallback
    monkeypatch.undo()
    reference_model, reference_history = _train(False)
    _assert_same_training(model, history, reference_model, reference_history)


def test_torch_compile_raising_at_compile_time_falls_back_with_one_warning(monkeypatch):
    def unavailable(fn, *args, **kwargs):
        raise RuntimeError("no compiler on this platform")

    monkeypatch.setattr(torch, "compile", unavailable)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        model, history = _train(True)
    fallbacks = _fallback_warnings(records)
    assert len(fallbacks) == 1
    assert "no compiler on this platform" in str(fallbacks[0].message)
    assert np.isfinite(history["loss"]).all()


def test_compiled_path_runs_the_wrapped_module_hooks(monkeypatch):
    # An identity "compiler" shows which callable gets compiled: the module's
    # hooks must run as they do eagerly.
    monkeypatch.setattr(torch, "compile", lambda fn, *args, **kwargs: fn)
    counts = {}
    for jit_compile in (False, True):
        calls = counts[jit_compile] = []
        net = _net()
        net.register_forward_hook(
            lambda module, inputs, output, calls=calls: calls.append(output.shape)
        )
        _train(jit_compile, net=net)
    assert len(counts[True]) == len(counts[False]) >= 8  # 4 steps per epoch, 2 epochs
