import copy

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit import mixed_precision
from torchfit.optimizers import SGD, Adam, LossScaleOptimizer


def _param(*values):
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float32))


def _set_grad(param, *values):
    param.grad = torch.tensor(values, dtype=torch.float32)


# --- construction ------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dynamic": False}, "dynamic=False"),
        ({"clipnorm": 1.0}, "`clipnorm`.*inner_optimizer"),
        ({"use_ema": True}, "`use_ema`"),
        ({"momentum": 0.9}, "does not support arguments: `momentum`"),
        ({"initial_scale": 0.0}, "initial_scale"),
        ({"initial_scale": float("inf")}, "initial_scale"),
        ({"dynamic_growth_steps": 0}, "dynamic_growth_steps"),
        ({"dynamic_growth_steps": 2.5}, "dynamic_growth_steps"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LossScaleOptimizer(SGD(), **kwargs)


def test_base_arguments_at_their_defaults_are_accepted_as_keras_does():
    optimizer = LossScaleOptimizer(SGD(), clipnorm=None, use_ema=False, ema_momentum=0.99)
    assert optimizer.name.startswith("loss_scale_optimizer")


@pytest.mark.parametrize("inner", ["adam", torch.optim.SGD, None])
def test_inner_must_be_a_torchfit_optimizer(inner):
    with pytest.raises(TypeError, match="inner_optimizer"):
        LossScaleOptimizer(inner)


def test_string_id_needs_an_inner_optimizer():
    with pytest.raises(TypeError, match="inner_optimizer"):
        torchfit.optimizers.get("lossscaleoptimizer")


def test_wrapping_turns_off_the_inner_loss_scale_factor():
    inner = SGD(loss_scale_factor=8.0)
    LossScaleOptimizer(inner)
    assert inner.loss_scale_factor is None


def test_parameters_state_learning_rate_and_iterations_are_the_inner_ones():
    w = _param(1.0)
    inner = Adam([w], learning_rate=0.1)
    optimizer = LossScaleOptimizer(inner)
    assert optimizer.built and optimizer.param_groups is inner.param_groups
    assert optimizer.state is inner.state
    optimizer.learning_rate = 0.5
    assert inner.learning_rate == 0.5 == optimizer.learning_rate
    _set_grad(w, 1.0)
    optimizer.step()
    assert optimizer.iterations == inner.iterations == 1
    assert optimizer.variables == inner.variables and len(inner.variables) == 2


def test_build_builds_the_inner_optimizer():
    w = _param(1.0)
    optimizer = LossScaleOptimizer(SGD())
    assert not optimizer.built
    optimizer.build([("w", w)])
    assert optimizer.built and optimizer.inner_optimizer.param_groups[0]["params"] == [w]


# --- scaling -------------------------------------------------------------------


def test_step_unscales_only_a_loss_that_scale_loss_scaled():
    # The same update whether or not the loss went through scale_loss: the
    # gradients of an unscaled loss are not divided by the scale.
    results = []
    for scaled in (True, False, None):
        w = _param(1.0, -1.0)
        inner = SGD([w], learning_rate=0.1)
        optimizer = inner if scaled is None else LossScaleOptimizer(inner)
        loss = (w * torch.tensor([2.0, 3.0])).sum()
        (optimizer.scale_loss(loss) if scaled else loss).backward()
        optimizer.step()
        results.append(w.detach().clone())
    torch.testing.assert_close(results[0], torch.tensor([0.8, -1.3]), rtol=0, atol=1e-7)
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=0)
    torch.testing.assert_close(results[2], results[0], rtol=0, atol=0)


def test_scale_loss_multiplies_by_the_current_scale():
    optimizer = LossScaleOptimizer(SGD(), initial_scale=4.0)
    assert float(optimizer.scale_loss(torch.tensor(1.5))) == 6.0


def test_apply_takes_gradients_of_a_scaled_loss_as_keras_does():
    w = _param(1.0)
    optimizer = LossScaleOptimizer(SGD(learning_rate=0.5), initial_scale=8.0)
    optimizer.apply([np.array([16.0], dtype="float32")], [w])
    assert w.item() == 0.0  # 1 - 0.5 * 16 / 8
    assert w.grad is None


def test_apply_and_apply_gradients_take_any_iterables():
    net = nn.Linear(2, 1)
    optimizer = LossScaleOptimizer(SGD(learning_rate=0.5), initial_scale=2.0)
    before = [p.detach().clone() for p in net.parameters()]
    optimizer.apply((torch.full_like(p, 2.0) for p in net.parameters()), net.parameters())
    for old, new in zip(before, net.parameters()):
        torch.testing.assert_close(new.detach(), old - 0.5)
    assert optimizer.apply_gradients(zip([torch.full((1,), 4.0)], [net.bias])) == 2
    torch.testing.assert_close(net.bias.detach(), before[1] - 1.5)
    assert optimizer.apply_gradients(zip([], [])) == 2


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_update_is_skipped_and_halves_the_scale(bad):
    w, v = _param(1.0, 2.0), _param(3.0)
    inner = Adam([w, v], learning_rate=0.1)
    optimizer = LossScaleOptimizer(inner, initial_scale=16.0, dynamic_growth_steps=5)
    _set_grad(w, 0.5, 0.5)
    _set_grad(v, 1.0)
    optimizer.step()
    before = [w.detach().clone(), v.detach().clone()]
    moments = [t.clone() for t in inner.variables]
    _set_grad(w, 0.5, bad)  # one bad entry in one parameter skips every update
    _set_grad(v, 1.0)
    optimizer.step()
    assert torch.equal(w, before[0]) and torch.equal(v, before[1])
    assert all(torch.equal(a, b) for a, b in zip(inner.variables, moments))
    assert (optimizer.iterations, optimizer.dynamic_scale, optimizer.step_counter) == (1, 8.0, 0)


def test_scale_doubles_after_dynamic_growth_steps_finite_updates_in_a_row():
    w = _param(1.0)
    optimizer = LossScaleOptimizer(SGD([w], learning_rate=0.01), initial_scale=4.0,
                                   dynamic_growth_steps=3)  # fmt: skip
    scales = []
    for value in [1.0, 1.0, float("inf"), 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]:
        _set_grad(w, value)
        optimizer.step()
        scales.append(optimizer.dynamic_scale)
    # The skip resets the count: the third finite update after it doubles.
    assert scales == [4.0, 4.0, 2.0, 2.0, 2.0, 4.0, 4.0, 4.0, 8.0]
    assert optimizer.iterations == 8


def test_growth_steps_of_one_doubles_every_finite_update():
    w = _param(1.0)
    optimizer = LossScaleOptimizer(SGD([w]), initial_scale=1.0, dynamic_growth_steps=1)
    for _ in range(3):
        _set_grad(w, 1.0)
        optimizer.step()
    assert optimizer.dynamic_scale == 8.0


# --- state and config --------------------------------------------------------


def test_state_dict_round_trip_resumes_exactly():
    torch.manual_seed(0)
    grads = [torch.randn(3) for _ in range(8)]
    grads[2][1] = float("nan")

    def run(optimizer, w, steps):
        for grad in steps:
            w.grad = grad.clone()
            optimizer.step()

    w = _param(1.0, 2.0, 3.0)
    reference = LossScaleOptimizer(Adam([w], learning_rate=0.1), dynamic_growth_steps=2)
    run(reference, w, grads[:4])
    saved_w, saved_state = w.detach().clone(), copy.deepcopy(reference.state_dict())
    # Doubled after two finite updates, halved by the NaN, one finite since.
    assert saved_state["loss_scale"] == {"dynamic_scale": 2.0**15, "step_counter": 1}
    run(reference, w, grads[4:])

    resumed_w = torch.nn.Parameter(saved_w)
    resumed = LossScaleOptimizer(Adam([resumed_w], learning_rate=0.1), dynamic_growth_steps=2)
    resumed.load_state_dict(saved_state)
    assert "loss_scale" in saved_state  # the caller's dict is left as it was
    assert (resumed.dynamic_scale, resumed.step_counter, resumed.iterations) == (2.0**15, 1, 3)
    run(resumed, resumed_w, grads[4:])
    assert torch.equal(resumed_w, w)
    assert resumed.dynamic_scale == reference.dynamic_scale == 2.0**17


def test_config_round_trip_rebuilds_the_inner_optimizer():
    optimizer = LossScaleOptimizer(Adam(learning_rate=0.05, beta_1=0.5), initial_scale=256.0,
                                   dynamic_growth_steps=10, name="scaled")  # fmt: skip
    config = torchfit.optimizers.serialize(optimizer)
    assert config["class_name"] == "LossScaleOptimizer" and config["registered_name"] is None
    rebuilt = torchfit.optimizers.deserialize(config)
    assert rebuilt.get_config() == optimizer.get_config()
    direct = LossScaleOptimizer.from_config(config["config"])
    assert config["config"] == optimizer.get_config()  # from_config left it as it was
    assert direct.get_config() == optimizer.get_config()
    assert isinstance(rebuilt.inner_optimizer, Adam) and rebuilt.inner_optimizer.beta_1 == 0.5
    assert rebuilt.dynamic_scale == 256.0


# --- with a Model --------------------------------------------------------------


def _linear_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 3)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5]], "float32")).astype("float32")
    return x, y


def _fit(optimizer, x, y, init):
    net = nn.Linear(3, 1)
    net.load_state_dict(init)
    model = torchfit.Model(net, device="cpu")
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    return net


def test_fit_skips_a_batch_with_non_finite_gradients_and_trains_on_the_others():
    x, y = _linear_data()
    init = nn.Linear(3, 1).state_dict()
    poisoned = x.copy()
    poisoned[9, 1] = np.inf  # in the third batch of 4
    optimizer = LossScaleOptimizer(Adam(learning_rate=0.05))
    net = _fit(optimizer, poisoned, y, init)
    # The same as Adam never shown that batch.
    keep = np.r_[0:8, 12:24]
    clean_x = np.concatenate([x[keep], x[keep]])
    clean_y = np.concatenate([y[keep], y[keep]])
    reference = nn.Linear(3, 1)
    reference.load_state_dict(init)
    model = torchfit.Model(reference, device="cpu")
    model.compile(optimizer=Adam(learning_rate=0.05), loss="mse")
    model.fit(clean_x, clean_y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert optimizer.iterations == 10
    assert (optimizer.dynamic_scale, optimizer.step_counter) == (2.0**13, 3)  # two skips


def test_fit_with_the_wrapper_trains_as_the_inner_optimizer_alone():
    x, y = _linear_data()
    init = nn.Linear(3, 1).state_dict()
    wrapped = _fit(LossScaleOptimizer(Adam(learning_rate=0.05)), x, y, init)
    alone = _fit(Adam(learning_rate=0.05), x, y, init)
    for a, b in zip(wrapped.parameters(), alone.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _float16_autocast_on_cpu() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            return (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float16
    except (RuntimeError, ValueError):
        return False


@pytest.mark.skipif(not _float16_autocast_on_cpu(), reason="no float16 autocast on CPU")
def test_mixed_float16_model_scaling_is_not_undone_twice():
    # The model's own GradScaler scales the loss and unscales the gradients;
    # the wrapper must not divide them again.
    x, y = _linear_data()
    init = nn.Linear(3, 1).state_dict()
    saved = mixed_precision.global_policy()
    mixed_precision.set_global_policy("mixed_float16")
    try:
        wrapped = _fit(LossScaleOptimizer(Adam(learning_rate=0.05)), x, y, init)
        alone = _fit(Adam(learning_rate=0.05), x, y, init)
    finally:
        mixed_precision.set_global_policy(saved)
    for a, b in zip(wrapped.parameters(), alone.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(wrapped.weight, init["weight"])


def test_fit_finalizes_the_inner_ema_weights():
    x, y = _linear_data()
    init = nn.Linear(3, 1).state_dict()
    inner = Adam(learning_rate=0.05, use_ema=True, ema_momentum=0.5)
    net = _fit(LossScaleOptimizer(inner), x, y, init)
    for param in net.parameters():
        torch.testing.assert_close(param, inner.state[param]["average"], rtol=0, atol=0)


def test_mixed_precision_exports_the_wrapper_as_keras_does():
    assert mixed_precision.LossScaleOptimizer is LossScaleOptimizer
