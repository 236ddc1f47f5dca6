"""Dtype policies: names, the global policy, autocast in fit, master weights, loss scaling."""

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit import mixed_precision
from torchfit.callbacks import Callback
from torchfit.mixed_precision import DTypePolicy


@pytest.fixture(autouse=True)
def restore_global_policy():
    saved = mixed_precision.global_policy()
    yield
    mixed_precision.set_global_policy(saved)


def _float16_autocast_on_cpu() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            return (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float16
    except (RuntimeError, ValueError):
        return False


needs_cpu_float16 = pytest.mark.skipif(
    not _float16_autocast_on_cpu(), reason="this torch has no float16 autocast on CPU"
)


class DtypeRecorder(nn.Module):
    """A small MLP that records the dtype of its hidden activation and its output."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 8)
        self.out = nn.Linear(8, 1)
        self.seen = []

    def forward(self, x):
        h = self.hidden(x)
        y = self.out(torch.relu(h))
        self.seen.append((h.dtype, y.dtype))
        return y


def _data(seed=0, n=32):
    rng = np.random.RandomState(seed)
    x = rng.rand(n, 4).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5], [1.5]], "float32")).astype("float32")
    return x, y


# ------------------------------------------------------------------ policies
@pytest.mark.parametrize(
    "name, compute, variable",
    [
        ("float32", "float32", "float32"),
        ("mixed_float16", "float16", "float32"),
        ("mixed_bfloat16", "bfloat16", "float32"),
        ("bfloat16", "bfloat16", "bfloat16"),
    ],
)
def test_policy_names_give_compute_and_variable_dtypes(name, compute, variable):
    policy = DTypePolicy(name)
    assert (policy.name, policy.compute_dtype, policy.variable_dtype) == (name, compute, variable)
    assert policy.is_mixed == (compute != variable)
    assert policy.needs_loss_scaling == (name == "mixed_float16")
    assert repr(policy) == f'<DTypePolicy "{name}">'


def test_keras_aliases_are_the_same_functions():
    assert mixed_precision.Policy is DTypePolicy
    assert mixed_precision.set_dtype_policy is mixed_precision.set_global_policy
    assert mixed_precision.dtype_policy is mixed_precision.global_policy


def test_set_global_policy_accepts_names_and_policies_and_none_resets():
    assert mixed_precision.global_policy() == DTypePolicy("float32")
    mixed_precision.set_global_policy("mixed_bfloat16")
    assert mixed_precision.global_policy().name == "mixed_bfloat16"
    assert DTypePolicy().name == "mixed_bfloat16"  # no name: the global one, as Keras
    mixed_precision.set_global_policy(DTypePolicy("mixed_float16"))
    assert mixed_precision.global_policy() == DTypePolicy("mixed_float16")
    mixed_precision.set_global_policy(None)
    assert mixed_precision.global_policy().name == "float32"


def test_unknown_policy_name_is_a_value_error_with_close_matches():
    with pytest.raises(ValueError, match="mixed_float61") as info:
        mixed_precision.set_global_policy("mixed_float61")
    assert "mixed_float16" in str(info.value)
    assert mixed_precision.global_policy().name == "float32"  # unchanged
    with pytest.raises(ValueError, match="mixed_float16"):
        DTypePolicy("mixed_flaot16")


def test_non_string_policy_is_rejected_naming_the_argument():
    with pytest.raises(TypeError, match="`name`.*int"):
        DTypePolicy(16)
    with pytest.raises(ValueError, match="`policy`.*int"):
        mixed_precision.set_global_policy(16)


def test_unknown_model_dtype_policy_raises_value_error():
    with pytest.raises(ValueError, match="mixed_float61"):
        model = torchfit.Model(nn.Linear(4, 1), device="cpu", dtype_policy="mixed_float61")
        model.compile(loss="mse")


# ------------------------------------------------------------ mixed_bfloat16
@pytest.mark.parametrize("how", ["global", "model"])
def test_mixed_bfloat16_fit_runs_forward_in_bfloat16_with_float32_master_weights(how):
    torch.manual_seed(0)
    net = DtypeRecorder()
    if how == "global":
        mixed_precision.set_global_policy("mixed_bfloat16")
        model = torchfit.Model(net, device="cpu")
    else:
        model = torchfit.Model(net, device="cpu", dtype_policy="mixed_bfloat16")
    model.compile(
        optimizer=torchfit.optimizers.Adam(learning_rate=0.05), loss="mse", metrics=["mae"]
    )
    x, y = _data()
    history = model.fit(x, y, batch_size=8, epochs=6, verbose=0)

    assert net.seen and set(net.seen) == {(torch.bfloat16, torch.bfloat16)}
    assert all(p.dtype == torch.float32 for p in net.parameters())
    for state in model.optimizer.state.values():
        assert all(
            t.dtype == torch.float32 for t in state.values() if torch.is_tensor(t) and t.dim()
        )
    assert all(v.dtype == torch.float32 for metric in model.metrics for v in metric.variables)
    assert model._loss_scaler is None  # bfloat16 needs no loss scaling
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0]


def test_mixed_bfloat16_loss_is_computed_in_float32():
    model = torchfit.Model(DtypeRecorder(), device="cpu", dtype_policy="mixed_bfloat16")
    model.compile(loss="mse")
    x, y = (torch.from_numpy(a) for a in _data(n=8))
    y_pred = model(x)
    assert y_pred.dtype == torch.bfloat16
    assert model.compute_loss(x, y, y_pred).dtype == torch.float32


def test_model_float32_policy_overrides_a_mixed_global_policy():
    mixed_precision.set_global_policy("mixed_bfloat16")
    net = DtypeRecorder()
    model = torchfit.Model(net, device="cpu", dtype_policy="float32")
    model.compile(loss="mse")
    x, y = _data(n=8)
    model.fit(x, y, batch_size=8, verbose=0)
    assert set(net.seen) == {(torch.float32, torch.float32)}


def test_global_policy_reset_to_none_gives_float32_models():
    mixed_precision.set_global_policy("mixed_bfloat16")
    mixed_precision.set_global_policy(None)
    net = DtypeRecorder()
    model = torchfit.Model(net, device="cpu")
    model.compile(loss="mse")
    model.fit(*_data(n=8), batch_size=8, verbose=0)
    assert set(net.seen) == {(torch.float32, torch.float32)}


def test_mixed_bfloat16_predict_returns_host_arrays():
    model = torchfit.Model(DtypeRecorder(), device="cpu", dtype_policy="mixed_bfloat16")
    model.compile(loss="mse")
    x, _ = _data(n=8)
    predictions = model.predict(x, batch_size=4, verbose=0)
    with torch.no_grad():
        expected = model.module(torch.from_numpy(x)).float().numpy()
    np.testing.assert_allclose(
        np.asarray(predictions, dtype="float32"), expected, rtol=0.02, atol=0.02
    )


@pytest.mark.parametrize("name, dtype", [("bfloat16", torch.bfloat16), ("float64", torch.float64)])
def test_non_mixed_policy_casts_weights_and_float_inputs(name, dtype):
    net = DtypeRecorder()
    model = torchfit.Model(net, device="cpu", dtype_policy=name)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(*_data(n=8), batch_size=8, verbose=0)
    assert all(p.dtype == dtype for p in net.parameters())
    assert set(net.seen) == {(dtype, dtype)}


# ------------------------------------------------------------- mixed_float16
@needs_cpu_float16
def test_mixed_float16_has_a_loss_scaler_with_keras_settings():
    model = torchfit.Model(DtypeRecorder(), device="cpu", dtype_policy="mixed_float16")
    model.compile(loss="mse")
    scaler = model._loss_scaler
    assert isinstance(scaler, torch.amp.GradScaler)
    assert scaler.get_scale() == 2.0**15
    assert scaler.get_growth_interval() == 2000
    assert scaler.get_growth_factor() == 2.0
    assert scaler.get_backoff_factor() == 0.5


@needs_cpu_float16
def test_mixed_float16_without_auto_scale_loss_has_no_scaler():
    model = torchfit.Model(DtypeRecorder(), device="cpu", dtype_policy="mixed_float16")
    model.compile(loss="mse", auto_scale_loss=False)
    assert model._loss_scaler is None


class Poisoned(nn.Module):
    """A linear model whose hidden gradient becomes non-finite while `poison` is set."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 4)
        self.out = nn.Linear(4, 1)
        self.poison = False
        self.dtypes = []

    def forward(self, x):
        h = self.hidden(x)
        self.dtypes.append(h.dtype)
        if self.poison:
            h.register_hook(lambda grad: grad * float("inf"))
        return self.out(h)


class ScaleWatcher(Callback):
    def __init__(self, poison_step):
        super().__init__()
        self.poison_step = poison_step
        self.records = []

    def on_train_batch_begin(self, batch, logs=None):
        self.model.module.poison = batch == self.poison_step

    def on_train_batch_end(self, batch, logs=None):
        weights = [w.copy() for w in self.model.get_weights()]
        self.records.append(
            (self.model._loss_scaler.get_scale(), weights, self.model.optimizer.iterations)
        )


@needs_cpu_float16
@pytest.mark.parametrize("seed", [0, 1])
def test_mixed_float16_skips_a_non_finite_step_and_halves_the_scale(seed):
    torch.manual_seed(seed)
    net = Poisoned()
    model = torchfit.Model(net, device="cpu", dtype_policy="mixed_float16")
    model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=0.01), loss="mse")
    initial = [w.copy() for w in model.get_weights()]
    # Small inputs and targets: the scaled float16 gradients stay finite on their own.
    rng = np.random.RandomState(seed)
    x = (0.1 * rng.rand(16, 4)).astype("float32")
    y = np.zeros((16, 1), "float32")
    watcher = ScaleWatcher(poison_step=2)
    model.fit(x, y, batch_size=4, shuffle=False, callbacks=[watcher], verbose=0)

    assert set(net.dtypes) == {torch.float16}
    scales = [record[0] for record in watcher.records]
    assert scales == [2.0**15, 2.0**15, 2.0**14, 2.0**14]
    weights = [initial] + [record[1] for record in watcher.records]
    for step in range(4):
        changed = any(not np.array_equal(a, b) for a, b in zip(weights[step], weights[step + 1]))
        assert changed == (step != 2), f"step {step}"
    # The skipped step never reached the optimizer.
    assert [record[2] for record in watcher.records] == [1, 2, 2, 3]
    assert all(p.dtype == torch.float32 for p in net.parameters())
