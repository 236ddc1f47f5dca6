"""`jit_compile="cuda_graph"` (experimental): what the planner decides, what the probe
finds, and how the runner warms up, captures, replays, re-captures and falls back.

On the CPU the runner drives `EmulatedGraphs`, a stand-in that behaves as a CUDA
graph does where the runner's bookkeeping is concerned: a capture runs the step's
Python but leaves every tensor as it was (no kernel ran); a replay runs the kernels
again on the current memory with the capture's host values (the learning rates it
saw; the update count its Python made is taken back). The CUDA tests at the end run
the real thing, and skip without CUDA.
"""

import contextlib
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit import tree
from torchfit.callbacks import Callback
from torchfit.models import capture
from torchfit.optimizers import SGD, Adam, LossScaleOptimizer, RMSprop, schedules

DEFAULTS = {step: getattr(torchfit.Model, f"{step}_step") for step in capture.STEPS}
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def _seeded(module_class, *args):
    torch.manual_seed(0)
    return module_class(*args)


def _data(n=10, seed=0):
    rng = np.random.RandomState(seed)
    return rng.rand(n, 4).astype("float32"), rng.randint(0, 3, n).astype("int64")


def _compiled(net=None, optimizer=None, device="cpu", **kwargs):
    model = torchfit.Model(net if net is not None else _net(), device=device, **kwargs)
    model.compile(
        optimizer=optimizer if optimizer is not None else RMSprop(learning_rate=0.01),
        loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
    )
    return model


def _capture_warnings(records) -> list:
    return [str(r.message) for r in records if "jit_compile='cuda_graph'" in str(r.message)]


# -------------------------------------------------------------------- planner
def _reasons(model, step="train"):
    return " | ".join(capture.plan_step(model, step, DEFAULTS[step], device="cuda").reasons)


def _param():
    return [nn.Parameter(torch.ones(2))]


@pytest.mark.parametrize(
    "make_optimizer, expected",
    [
        (lambda: RMSprop(), ""),
        (lambda: SGD(momentum=0.9, nesterov=True), ""),
        (lambda: SGD(weight_decay=0.01, clipnorm=1.0, loss_scale_factor=8), ""),
        (lambda: Adam(), "reads the step count"),
        (lambda: Adam(use_ema=True), "reads the step count"),
        (lambda: SGD(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.9)), "schedule"),
        (lambda: SGD(gradient_accumulation_steps=2), "gradient_accumulation_steps"),
        (lambda: SGD(use_ema=True, ema_overwrite_frequency=3), "ema_overwrite_frequency"),
        (lambda: LossScaleOptimizer(SGD()), "whether the gradients are finite"),
        (lambda: torch.optim.Adam(_param()), "capturable=False"),
        (lambda: torch.optim.Adam(_param(), capturable=True), ""),
        (lambda: torch.optim.AdamW(_param(), fused=True), ""),
        (lambda: torch.optim.RMSprop(_param(), capturable=True), ""),
        (lambda: torch.optim.SGD(_param(), lr=0.1, momentum=0.9), ""),
        (lambda: torch.optim.Adagrad(_param()), "has no capturable or fused mode"),
        (lambda: torch.optim.LBFGS(_param()), "has no capturable or fused mode"),
    ],
)
def test_planner_decides_for_each_optimizer(make_optimizer, expected):
    reasons = " | ".join(capture.optimizer_reasons(make_optimizer()))
    if expected:
        assert expected in reasons
    else:
        assert reasons == ""


def test_an_optimizer_step_hook_blocks_the_capture():
    optimizer = SGD(_param())
    optimizer.register_step_post_hook(lambda *args: None)
    assert "step hooks" in " | ".join(capture.optimizer_reasons(optimizer))


def test_a_plain_model_captures_all_three_steps_on_cuda_and_none_elsewhere():
    model = _compiled()
    for step in capture.STEPS:
        assert capture.plan_step(model, step, DEFAULTS[step], device="cuda").capturable
        cpu_plan = capture.plan_step(model, step, DEFAULTS[step])
        assert cpu_plan.reasons == ("the model runs on cpu: CUDA graphs need a CUDA device",)


def test_a_custom_train_step_is_not_captured_but_evaluate_and_predict_are():
    class Custom(torchfit.Model):
        def train_step(self, data):
            return super().train_step(data)

    model = Custom(_net(), device="cpu")
    model.compile(optimizer="sgd", loss="mse")
    assert "custom `train_step`" in _reasons(model, "train")
    assert _reasons(model, "test") == _reasons(model, "predict") == ""


def test_add_loss_callables_block_training_and_evaluation_not_prediction():
    model = _compiled()
    model.add_loss(lambda: 0.01 * model.module[0].weight.pow(2).sum())
    assert "`add_loss` callables" in _reasons(model, "train")
    assert "`add_loss` callables" in _reasons(model, "test")
    assert _reasons(model, "predict") == ""


def test_metrics_that_keep_python_state_block_the_capture():
    torchmetrics = pytest.importorskip("torchmetrics")

    def make():
        model = torchfit.Model(_net(), device="cpu")
        model.compile(optimizer="sgd", loss="mse", metrics=[torchmetrics.MeanSquaredError()])
        return model

    # The compiled metrics are built by the first batch: the plan made before it cannot
    # see them, the one made before the capture does.
    model, reference = _emulated(make()), make()
    x, _ = _data()
    y = x[:, :3].copy()
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        history = model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
    messages = _capture_warnings(records)
    assert len(messages) == 1 and "the torchmetrics metric 'mean_squared_error'" in messages[0]
    assert "torchmetrics metric" in _reasons(model, "test")
    expected = reference.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], expected.history["loss"], rtol=1e-6)


def test_mixed_float16_loss_scaling_needs_a_fused_torch_optimizer():
    model = _compiled(dtype_policy="mixed_float16")
    assert "mixed_float16's loss scaling" in _reasons(model)
    net = _net()
    model = _compiled(
        net, torch.optim.Adam(net.parameters(), fused=True), dtype_policy="mixed_float16"
    )
    assert _reasons(model) == ""
    assert _reasons(_compiled(dtype_policy="mixed_bfloat16")) == ""


def test_a_distributed_model_is_not_captured():
    class Distributed(torchfit.distribution.SingleProcess):
        pass

    model = _compiled()
    model.distribution = Distributed()
    assert "across processes" in _reasons(model)


# ---------------------------------------------------------------------- probe
class Syncing(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.how = how

    def forward(self, x):
        y = self.linear(x)
        if self.how == "item":
            y = y * y.abs().max().item()
        elif self.how == "branch":
            y = y if y.sum() > 0 else -y
        elif self.how == "mask":
            y = y + y[y > 0].sum()
        elif self.how == "cpu":
            y = y + y.cpu().to(y.device) if y.device.type != "cpu" else y
        elif self.how == "dropout":
            y = nn.functional.dropout(y, 0.5, training=True)
        return y


@pytest.mark.parametrize(
    "how, found",
    [
        ("item", "reads a tensor's value on the host"),
        ("branch", "reads a tensor's value on the host"),
        ("mask", "boolean-mask index"),
        ("none", None),
        ("dropout", None),
    ],
)
def test_probe_finds_host_syncs_in_forward_and_names_the_line(how, found):
    net = Syncing(how)
    x = torch.rand(2, 4)
    with capture.StepProbe() as probe:
        net(x).sum().backward()
    if found is None:
        assert probe.reasons == []
    else:
        assert found in probe.reasons[0]
        assert "test_capture.py" in probe.reasons[0] and "in forward" in probe.reasons[0]
    assert probe.random == (how == "dropout")


def test_batch_signature_tells_shapes_dtypes_and_structure_apart():
    x = torch.ones(4, 3)
    assert capture.batch_signature((x, x)) == capture.batch_signature((x + 1, x * 2))
    assert capture.batch_signature((x, x)) != capture.batch_signature((x[:2], x[:2]))
    assert capture.batch_signature((x, x)) != capture.batch_signature((x, x.long()))
    assert capture.batch_signature((x, x)) != capture.batch_signature([x, x])
    assert capture.batch_signature({"a": x}) != capture.batch_signature({"b": x})
    assert capture.batch_signature((x, np.ones(3))) is None


# --------------------------------------------------------------------- runner
class EmulatedGraphs:
    """A CPU stand-in for CUDA graphs (see the module docstring)."""

    def __init__(self, model, run_kernels=True):
        self.model = model
        self.run_kernels = run_kernels  # False: a graph whose replays do nothing

    @staticmethod
    def device_for(model):
        return torch.device("cuda")

    @staticmethod
    def warm_up():
        return contextlib.nullcontext()

    def _state(self) -> list:
        model = self.model
        state = list(model.parameters()) + list(model.buffers())
        state += [v for metric in model.metrics for v in metric.variables]
        if model.optimizer is not None:
            state += [
                v for s in model.optimizer.state.values() for v in s.values() if torch.is_tensor(v)
            ]
        return state

    def _groups(self):
        return self.model.optimizer.param_groups if self.model.optimizer is not None else []

    def capture(self, function):
        state = self._state()
        saved = [t.detach().clone() for t in state]
        result = function()
        with torch.no_grad():
            for tensor, value in zip(state, saved):
                tensor.copy_(value)  # no kernel ran
        learning_rates = [group["lr"] for group in self._groups()]
        return (function, result, learning_rates), result

    def replay(self, graph):
        function, outputs, learning_rates = graph
        if not self.run_kernels:
            return
        groups = self._groups()
        current = [group["lr"] for group in groups]
        for group, lr in zip(groups, learning_rates):
            group["lr"] = lr  # the capture's host values
        try:
            result = function()
        finally:
            for group, lr in zip(groups, current):
                group["lr"] = lr
        optimizer = self.model.optimizer
        if isinstance(optimizer, torchfit.optimizers.Optimizer) and torch.is_grad_enabled():
            optimizer.count_replayed_update(-1)  # its Python ran here, not in a real replay
        with torch.no_grad():
            for static, new in zip(capture._tensors(outputs), capture._tensors(result)):
                static.copy_(new)


def _emulated(model, **kwargs):
    backend = kwargs.pop("backend", None) or EmulatedGraphs(model)
    model._capture = capture.CapturedSteps(model, DEFAULTS, backend, **kwargs)
    return model


def _fit(model, epochs=4, callbacks=None, **kwargs):
    x, y = _data()
    x_val, y_val = _data(6, seed=1)
    history = model.fit(
        x,
        y,
        batch_size=4,
        epochs=epochs,
        shuffle=False,
        validation_data=(x_val, y_val),
        validation_batch_size=4,
        callbacks=callbacks,
        verbose=0,
        **kwargs,
    )
    return history.history


def _assert_same(model, history, reference, reference_history):
    assert history.keys() == reference_history.keys()
    for key in history:
        np.testing.assert_allclose(history[key], reference_history[key], rtol=1e-5, atol=1e-6)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert model.optimizer.iterations == reference.optimizer.iterations


def test_fit_with_graphs_trains_as_eager_with_a_graph_for_the_ragged_last_batch():
    model, reference = _emulated(_compiled()), _compiled()
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        history = _fit(model)
    assert _capture_warnings(records) == []
    _assert_same(model, history, reference, _fit(reference))
    train = model._capture.stats["train"]
    # Batches of 4, 4, 2: each size runs eagerly twice, then from its graph. The size 4
    # is captured in epoch 1 (its 3rd step), the size 2 in epoch 3.
    assert train["captures"] == 2
    assert train["eager"] == 4
    assert train["replays"] == 4 * 3 - 4
    assert model._capture.stats["test"]["captures"] == 2  # 6 rows: batches of 4 and 2
    assert model.optimizer.iterations == 12


def test_a_replay_that_does_not_match_eager_falls_back_with_one_warning_keeping_eager():
    model, reference = _compiled(), _compiled()
    _emulated(model, backend=EmulatedGraphs(model, run_kernels=False))
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        history = _fit(model)
    messages = _capture_warnings(records)
    assert len(messages) == 2  # the training step, then the evaluation step
    assert "did not match eager" in messages[0] and "training step" in messages[0]
    _assert_same(model, history, reference, _fit(reference))


def test_without_verification_a_wrong_graph_would_be_trusted():
    # The check above is what catches a wrong graph: without it, the result is wrong.
    model, reference = _compiled(), _compiled()
    _emulated(model, backend=EmulatedGraphs(model, run_kernels=False), verify=False)
    _fit(model)
    _fit(reference)
    assert not np.allclose(model.get_weights()[0], reference.get_weights()[0])


class SetLearningRate(Callback):
    def __init__(self, at_batch=False):
        super().__init__()
        self.at_batch = at_batch

    def on_epoch_begin(self, epoch, logs=None):
        if not self.at_batch:
            self.model.optimizer.learning_rate = 0.01 / (epoch + 1)

    def on_train_batch_begin(self, batch, logs=None):
        if self.at_batch:
            for group in self.model.optimizer.param_groups:
                group["lr"] = 0.001 * (batch + 1)


def test_a_learning_rate_set_by_a_callback_takes_effect_by_capturing_again():
    model, reference = _emulated(_compiled()), _compiled()
    history = _fit(model, callbacks=[SetLearningRate()])
    _assert_same(model, history, reference, _fit(reference, callbacks=[SetLearningRate()]))
    # Batch size 4 is captured in epoch 2 (its third step), then again in epochs 3 and 4.
    assert model._capture.stats["train"]["recaptures"] == 2


def test_a_capturable_torch_adam_reads_a_new_learning_rate_from_its_device_tensor():
    def make():
        net = _net()
        return _compiled(net, torch.optim.Adam(net.parameters(), lr=0.01, fused=True))

    model, reference = _emulated(make()), make()
    history = _fit(model, callbacks=[SetLearningRate(at_batch=True)])
    expected = _fit(reference, callbacks=[SetLearningRate(at_batch=True)])
    for key in history:
        np.testing.assert_allclose(history[key], expected[key], rtol=1e-5, atol=1e-6)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    train = model._capture.stats["train"]
    assert train["replays"] > 0 and train["recaptures"] == 0
    assert all(isinstance(group["lr"], float) for group in model.optimizer.param_groups)


class ScaleWeights(Callback):
    """Changes the weights before every training batch: in place, or with new storage."""

    def __init__(self, rebind=False):
        super().__init__()
        self.rebind = rebind

    def on_train_batch_begin(self, batch, logs=None):
        weight = self.model.module[0].weight
        with torch.no_grad():
            if self.rebind and batch == 1:
                weight.data = weight.data * 0.5
            elif not self.rebind:
                weight.mul_(0.99)


@pytest.mark.parametrize("rebind", [False, True])
def test_weights_a_callback_changes_take_effect(rebind):
    model, reference = _emulated(_compiled()), _compiled()
    history = _fit(model, callbacks=[ScaleWeights(rebind)])
    _assert_same(model, history, reference, _fit(reference, callbacks=[ScaleWeights(rebind)]))
    # New storage (epochs 2 to 4: batch 1 is replayed) is seen and captured again.
    assert model._capture.stats["train"]["recaptures"] == (3 if rebind else 0)


def test_a_failed_capture_falls_back_with_one_warning():
    class Failing(EmulatedGraphs):
        def capture(self, function):
            raise RuntimeError("operation not permitted when stream is capturing")

    model, reference = _compiled(), _compiled()
    _emulated(model, backend=Failing(model))
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        history = _fit(model)
    messages = _capture_warnings(records)
    assert len(messages) == 2  # training, then evaluation: once each
    assert "the capture failed (RuntimeError: operation not permitted" in messages[0]
    _assert_same(model, history, reference, _fit(reference))


def test_a_host_sync_in_forward_falls_back_with_one_warning_naming_the_line():
    model = _emulated(_compiled(_seeded(Syncing, "item")))
    reference = _compiled(_seeded(Syncing, "item"))
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        history = _fit(model)
    messages = _capture_warnings(records)
    assert len(messages) == 2
    assert "test_capture.py" in messages[0] and "reads a tensor's value" in messages[0]
    assert model._capture.stats["train"]["captures"] == 0
    _assert_same(model, history, reference, _fit(reference))


def test_add_metric_in_forward_is_seen_after_the_warm_up_and_falls_back():
    class Adding(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 3)

        def forward(self, x):
            y = self.linear(x)
            torchfit.layers.add_metric(y.mean(), name="mean_logit")
            return y

    model, reference = _emulated(_compiled(_seeded(Adding))), _compiled(_seeded(Adding))
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        history = _fit(model)
    assert any("`add_metric` in forward" in m for m in _capture_warnings(records))
    _assert_same(model, history, reference, _fit(reference))


def test_predict_from_graphs_equals_eager_and_each_batch_keeps_its_outputs():
    model, reference = _emulated(_compiled()), _compiled()
    x, _ = _data(30)
    predicted = model.predict(x, batch_size=4, verbose=0)
    np.testing.assert_allclose(predicted, reference.predict(x, batch_size=4, verbose=0), rtol=1e-6)
    assert model._capture.stats["predict"]["replays"] == 8 - 2 - 1  # 8 batches: 7 of 4, 1 of 2


def test_evaluate_from_graphs_equals_eager():
    model, reference = _emulated(_compiled()), _compiled()
    x, y = _data(30)
    result = model.evaluate(x, y, batch_size=4, verbose=0)
    np.testing.assert_allclose(result, reference.evaluate(x, y, batch_size=4, verbose=0), rtol=1e-6)
    assert model._capture.stats["test"]["replays"] == 5


def test_a_non_tensor_batch_leaf_runs_eagerly():
    model = _emulated(_compiled())
    batch = (torch.rand(4, 4), torch.randint(0, 3, (4,)), 2.0)  # a float sample weight
    model.train()
    for _ in range(4):
        model.train_step(batch)
    stats = model._capture.stats["train"]
    assert stats["captures"] == 0 and stats["replays"] == 0


# ----------------------------------------------------------- the opt-in flag
def test_cuda_graph_on_cpu_warns_twice_and_trains_as_jit_compile(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda fn, *args, **kwargs: fn)
    results = {}
    for jit_compile in (True, "cuda_graph"):
        model = torchfit.Model(_net(), device="cpu")
        with warnings.catch_warnings(record=True) as records:
            warnings.simplefilter("always")
            model.compile(optimizer="rmsprop", loss="mse", jit_compile=jit_compile)
            x, _ = _data()
            history = model.fit(x, x[:, :3], batch_size=4, epochs=2, verbose=0)
            model.predict(x, verbose=0)
        results[jit_compile] = (history.history["loss"], _capture_warnings(records))
        assert model.jit_compile is True
        assert (model._capture is not None) == (jit_compile == "cuda_graph")
    assert results[True][1] == []
    experimental, fallback = results["cuda_graph"][1]
    assert "experimental and has never run on a GPU" in experimental
    assert (
        "the training step, evaluation step and prediction step: the model runs on cpu" in fallback
    )
    np.testing.assert_allclose(results[True][0], results["cuda_graph"][0])


def test_capture_is_off_by_default_with_no_warning():
    model = torchfit.Model(_net(), device="cpu")
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        model.compile(optimizer="rmsprop", loss="mse")
        x, _ = _data()
        model.fit(x, x[:, :3], batch_size=4, epochs=1, verbose=0)
    assert model._capture is None and _capture_warnings(records) == []


@pytest.mark.parametrize("value", ["cuda", "reduce-overhead", 1])
def test_an_unknown_jit_compile_is_refused_with_the_values_it_takes(value):
    model = torchfit.Model(_net(), device="cpu")
    with pytest.raises(ValueError, match="`jit_compile` must be True, False, 'auto'"):
        model.compile(loss="mse", jit_compile=value)


# ----------------------------------------------------------------------- CUDA
def _cuda_model(optimizer_kind, **kwargs):
    net = _net()
    if optimizer_kind == "torch_adam":
        optimizer = torch.optim.Adam(net.parameters(), lr=0.01, capturable=True)
    else:
        optimizer = RMSprop(learning_rate=0.01)
    model = torchfit.Model(net, device="cuda", **kwargs)
    model.compile(
        optimizer=optimizer,
        loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
        jit_compile=kwargs.pop("jit_compile", False),
    )
    return model


def _real_graphs(model):
    model._capture = capture.CapturedSteps(model, DEFAULTS)
    return model


def _assert_close_cuda(model, history, reference, reference_history):
    for key in history:
        np.testing.assert_allclose(history[key], reference_history[key], rtol=1e-4, atol=1e-5)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _assert_replayed(model, *steps):
    assert model._capture.fallbacks == {}
    for step in steps:
        assert model._capture.stats[step]["replays"] > 0, (step, model._capture.stats)


@needs_cuda
@pytest.mark.parametrize("optimizer_kind", ["torchfit_rmsprop", "torch_adam"])
def test_cuda_fit_from_graphs_equals_eager_with_a_ragged_last_batch(optimizer_kind):
    model = _real_graphs(_cuda_model(optimizer_kind))
    reference = _cuda_model(optimizer_kind)
    history = _fit(model, epochs=4)
    _assert_close_cuda(model, history, reference, _fit(reference, epochs=4))
    _assert_replayed(model, "train", "test")
    assert model._capture.stats["train"]["captures"] == 2  # batches of 4 and of 2


@needs_cuda
def test_cuda_callbacks_changes_take_effect():
    callbacks = [ScaleWeights(), SetLearningRate()]
    model = _real_graphs(_cuda_model("torchfit_rmsprop"))
    reference = _cuda_model("torchfit_rmsprop")
    history = _fit(model, callbacks=callbacks)
    _assert_close_cuda(model, history, reference, _fit(reference, callbacks=callbacks))
    _assert_replayed(model, "train")


@needs_cuda
@pytest.mark.parametrize("rebind", [False, True])
def test_cuda_weights_rebound_by_a_callback_take_effect(rebind):
    model = _real_graphs(_cuda_model("torchfit_rmsprop"))
    reference = _cuda_model("torchfit_rmsprop")
    history = _fit(model, callbacks=[ScaleWeights(rebind)])
    _assert_close_cuda(model, history, reference, _fit(reference, callbacks=[ScaleWeights(rebind)]))
    _assert_replayed(model, "train")


@needs_cuda
def test_cuda_torch_adam_learning_rate_schedule_without_capturing_again():
    callbacks = [SetLearningRate(at_batch=True)]
    model = _real_graphs(_cuda_model("torch_adam"))
    reference = _cuda_model("torch_adam")
    history = _fit(model, callbacks=callbacks)
    _assert_close_cuda(model, history, reference, _fit(reference, callbacks=callbacks))
    _assert_replayed(model, "train")
    assert model._capture.stats["train"]["recaptures"] == 0


@needs_cuda
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_cuda_mixed_precision_from_graphs_equals_eager(policy):
    def make():
        net = _net()
        optimizer = torch.optim.Adam(net.parameters(), lr=0.01, fused=True)
        return _compiled(net, optimizer, device="cuda", dtype_policy=policy)

    model, reference = _real_graphs(make()), make()
    history = _fit(model)
    expected = _fit(reference)
    for key in history:
        np.testing.assert_allclose(history[key], expected[key], rtol=1e-2, atol=1e-3)
    _assert_replayed(model, "train", "test")


@needs_cuda
def test_cuda_predict_and_evaluate_from_graphs_equal_eager():
    model = _real_graphs(_cuda_model("torchfit_rmsprop"))
    reference = _cuda_model("torchfit_rmsprop")
    x, y = _data(30)
    np.testing.assert_allclose(
        model.predict(x, batch_size=4, verbose=0),
        reference.predict(x, batch_size=4, verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        model.evaluate(x, y, batch_size=4, verbose=0),
        reference.evaluate(x, y, batch_size=4, verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )
    _assert_replayed(model, "predict", "test")


@needs_cuda
def test_cuda_jit_compile_cuda_graph_end_to_end_equals_eager():
    model = _cuda_model("torchfit_rmsprop", jit_compile="cuda_graph")
    reference = _cuda_model("torchfit_rmsprop")
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        history = _fit(model)
    assert len(_capture_warnings(records)) == 1  # the experimental notice only
    _assert_close_cuda(model, history, reference, _fit(reference))
    _assert_replayed(model, "train", "test")


@needs_cuda
def test_cuda_host_sync_in_forward_is_found_and_falls_back():
    model = _real_graphs(_compiled(Syncing("cpu"), device="cuda"))
    reference = _compiled(Syncing("cpu"), device="cuda")
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        history = _fit(model)
    assert any("copies between the host and the device" in m for m in _capture_warnings(records))
    _assert_close_cuda(model, history, reference, _fit(reference))
    assert tree is not None
