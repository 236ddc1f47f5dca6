import copy
import warnings

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from torchfit.optimizers import SGD, Adam, RMSprop, schedules


def _param(*values):
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float32))


def _step(optimizer, params, grads):
    for param, grad in zip(params, grads):
        param.grad = torch.tensor(grad, dtype=torch.float32)
    optimizer.step()


# --- construction ------------------------------------------------------------


def test_number_first_is_the_learning_rate_and_leaves_it_unbuilt():
    optimizer = RMSprop(0.01)
    assert optimizer.learning_rate == 0.01
    assert not optimizer.built
    optimizer.zero_grad()  # an unbuilt optimizer behaves like an empty one
    assert optimizer.state_dict()["param_groups"] == []


def test_schedule_first_is_the_learning_rate():
    optimizer = SGD(schedules.ExponentialDecay(0.1, 10, 0.5))
    assert optimizer.learning_rate == pytest.approx(0.1)


def test_params_first_builds():
    w = _param(1.0)
    optimizer = RMSprop([w], learning_rate=0.01)
    assert optimizer.built
    assert optimizer.param_groups[0]["params"] == [w]


def test_learning_rate_given_twice_is_an_error():
    with pytest.raises(TypeError, match="learning rate was passed twice"):
        SGD(0.1, 0.9)


def test_module_as_params_is_an_error():
    with pytest.raises(TypeError, match="module.parameters"):
        Adam(torch.nn.Linear(2, 2))


def test_unknown_argument_names_the_closest_one():
    with pytest.raises(ValueError, match="lr.*learning_rate"):
        Adam(lr=0.1)
    with pytest.raises(ValueError, match="beta1.*beta_1"):
        Adam(beta1=0.5)


def test_decay_argument_warns_and_is_ignored():
    with pytest.warns(UserWarning, match="decay"):
        Adam(decay=0.1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clipnorm": 1.0, "clipvalue": 1.0}, "Only one of"),
        ({"gradient_accumulation_steps": 1}, "gradient_accumulation_steps"),
        ({"use_ema": True, "ema_momentum": 1.5}, "ema_momentum"),
        ({"use_ema": True, "ema_overwrite_frequency": 0}, "ema_overwrite_frequency"),
    ],
)
def test_bad_common_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SGD(**kwargs)


def test_default_names_follow_keras():
    assert RMSprop().name.startswith("rm_sprop")
    assert Adam(name="mine").name == "mine"


# --- build -------------------------------------------------------------------


def test_step_before_build_is_an_error():
    with pytest.raises(ValueError, match="build"):
        SGD().step()


def test_build_attaches_and_is_idempotent_for_the_same_params():
    w = _param(1.0, 2.0)
    optimizer = SGD(learning_rate=0.1)
    optimizer.build([w])
    optimizer.build([w])
    assert len(optimizer.param_groups) == 1
    with pytest.raises(ValueError, match="already built"):
        optimizer.build([_param(3.0)])


def test_build_with_no_params_is_an_error():
    with pytest.raises(ValueError, match="params"):
        SGD().build([])


def test_param_group_with_unsupported_key_is_an_error():
    with pytest.raises(ValueError, match="momentum"):
        SGD([{"params": [_param(1.0)], "momentum": 0.9}])


def test_per_group_learning_rates():
    a, b = _param(1.0), _param(1.0)
    optimizer = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], learning_rate=0.1)
    _step(optimizer, [a, b], [[1.0], [1.0]])
    assert a.item() == pytest.approx(0.9)
    assert b.item() == pytest.approx(0.5)


# --- learning rate and iterations ----------------------------------------------


def test_setting_the_learning_rate_updates_param_groups():
    w = _param(1.0)
    optimizer = SGD([w], learning_rate=0.1)
    optimizer.learning_rate = 0.5
    assert optimizer.param_groups[0]["lr"] == 0.5
    _step(optimizer, [w], [[1.0]])
    assert w.item() == pytest.approx(0.5)


def test_setting_a_number_on_a_schedule_is_a_type_error():
    optimizer = SGD(learning_rate=schedules.ExponentialDecay(0.1, 1, 0.5))
    with pytest.raises(TypeError, match="schedule"):
        optimizer.learning_rate = 0.1


def test_schedule_advances_per_step_and_shows_in_param_groups():
    w = _param(0.0)
    optimizer = SGD([w], learning_rate=schedules.ExponentialDecay(1.0, 1, 0.5))
    for expected_lr in (1.0, 0.5, 0.25):
        assert optimizer.learning_rate == pytest.approx(expected_lr)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected_lr)
        before = w.item()
        _step(optimizer, [w], [[1.0]])
        assert before - w.item() == pytest.approx(expected_lr)
    assert optimizer.iterations == 3


def test_callables_with_and_without_a_step():
    assert SGD(learning_rate=lambda step: 0.1 * (step + 1)).learning_rate == pytest.approx(0.1)
    assert SGD(learning_rate=lambda: 0.3).learning_rate == pytest.approx(0.3)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_schedule_going_non_finite_stops_before_the_rate_is_used(bad):
    w = _param(1.0)
    optimizer = SGD([w], learning_rate=lambda step: 0.5 if step < 2 else bad)
    _step(optimizer, [w], [[1.0]])
    with pytest.raises(ValueError, match=rf"schedule <lambda> at step 2 is {bad}"):
        _step(optimizer, [w], [[1.0]])
    # Both applied steps used 0.5; the bad rate never reached the weight.
    assert w.item() == 0.0 and optimizer.iterations == 2


def test_real_fit_with_a_schedule_going_nan_names_the_step():
    import numpy as np

    import torchfit

    class Blows(schedules.LearningRateSchedule):
        def __call__(self, step):
            return 0.1 / (5 - step) if step < 5 else float("nan")

    module = torch.nn.Linear(2, 1)
    model = torchfit.Model(module)
    model.compile(optimizer=SGD(learning_rate=Blows()), loss="mse")
    x = np.ones((8, 2), "float32")
    with pytest.raises(ValueError, match="schedule Blows at step 5 is nan"):
        model.fit(x, x[:, :1], epochs=4, batch_size=2, verbose=0)
    assert model.optimizer.iterations == 5
    assert all(torch.isfinite(p).all() for p in module.parameters())


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_number_is_not_a_learning_rate(bad):
    with pytest.raises(ValueError, match="learning rate from `learning_rate` is"):
        SGD(learning_rate=bad)
    optimizer = SGD(learning_rate=0.1)
    with pytest.raises(ValueError, match="finite"):
        optimizer.learning_rate = bad
    assert optimizer.learning_rate == 0.1


def test_torch_lr_scheduler_drives_the_learning_rate():
    w = _param(0.0)
    optimizer = SGD([w], learning_rate=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    _step(optimizer, [w], [[1.0]])
    scheduler.step()
    assert optimizer.learning_rate == pytest.approx(0.5)
    _step(optimizer, [w], [[1.0]])
    assert w.item() == pytest.approx(-1.5)


def test_step_without_gradients_is_a_no_op():
    w = _param(1.0)
    optimizer = Adam([w])
    optimizer.step()
    assert optimizer.iterations == 0
    assert w.item() == 1.0


def test_step_returns_the_closure_loss():
    w = _param(2.0)
    optimizer = SGD([w], learning_rate=0.1)

    def closure():
        optimizer.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        return loss

    assert optimizer.step(closure).item() == pytest.approx(4.0)
    assert w.item() == pytest.approx(1.6)


# --- pipeline ------------------------------------------------------------------


def test_gradient_accumulation_applies_the_mean_every_n_calls():
    w = _param(0.0)
    optimizer = SGD([w], learning_rate=1.0, gradient_accumulation_steps=2)
    _step(optimizer, [w], [[1.0]])
    assert w.item() == 0.0 and optimizer.iterations == 0
    _step(optimizer, [w], [[3.0]])
    assert w.item() == pytest.approx(-2.0) and optimizer.iterations == 1
    assert optimizer.state[w]["gradient_accumulator"].item() == 0.0


def test_clipnorm_clips_each_variable():
    a, b = _param(0.0, 0.0), _param(0.0)
    optimizer = SGD([a, b], learning_rate=1.0, clipnorm=1.0)
    _step(optimizer, [a, b], [[3.0, 4.0], [0.5]])
    assert a.tolist() == pytest.approx([-0.6, -0.8])
    assert b.item() == pytest.approx(-0.5)


def test_global_clipnorm_clips_all_variables_together():
    a, b = _param(0.0), _param(0.0)
    optimizer = SGD([a, b], learning_rate=1.0, global_clipnorm=1.0)
    _step(optimizer, [a, b], [[3.0], [4.0]])
    assert (a.item(), b.item()) == pytest.approx((-0.6, -0.8))


def test_clipvalue_clips_each_element():
    w = _param(0.0, 0.0)
    optimizer = SGD([w], learning_rate=1.0, clipvalue=0.5)
    _step(optimizer, [w], [[2.0, -0.25]])
    assert w.tolist() == pytest.approx([-0.5, 0.25])


def test_clipping_leaves_grad_untouched():
    w = _param(0.0, 0.0)
    optimizer = SGD([w], clipnorm=1.0)
    _step(optimizer, [w], [[3.0, 4.0]])
    assert w.grad.tolist() == [3.0, 4.0]


def test_weight_decay_is_decoupled_and_scaled_by_lr():
    w = _param(1.0)
    optimizer = SGD([w], learning_rate=0.1, weight_decay=0.5)
    _step(optimizer, [w], [[0.0]])
    assert w.item() == pytest.approx(0.95)


def test_exclude_from_weight_decay_by_variable_and_by_name():
    net = torch.nn.Linear(1, 1)
    with torch.no_grad():
        net.weight.fill_(1.0)
        net.bias.fill_(1.0)
    optimizer = SGD(net.named_parameters(), learning_rate=0.1, weight_decay=0.5)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    _step(optimizer, [net.weight, net.bias], [[[0.0]], [0.0]])
    assert (net.weight.item(), net.bias.item()) == pytest.approx((0.95, 1.0))
    optimizer.exclude_from_weight_decay(var_list=[net.weight])
    _step(optimizer, [net.weight, net.bias], [[[0.0]], [0.0]])
    assert (net.weight.item(), net.bias.item()) == pytest.approx((0.95, 0.95))


def test_exclude_by_name_needs_named_parameters():
    optimizer = SGD([_param(1.0)], weight_decay=0.1)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    with pytest.raises(ValueError, match="named_parameters"):
        _step(optimizer, optimizer.param_groups[0]["params"], [[1.0]])


def test_loss_scale_factor_scales_loss_and_unscales_gradients():
    w = _param(0.0)
    optimizer = SGD([w], learning_rate=1.0, loss_scale_factor=4.0)
    assert optimizer.scale_loss(torch.tensor(2.0)).item() == 8.0
    _step(optimizer, [w], [[8.0]])
    assert w.item() == pytest.approx(-2.0)


# --- EMA -----------------------------------------------------------------------


def test_ema_average_swap_and_finalize():
    w = _param(0.0)
    optimizer = SGD([w], learning_rate=1.0, use_ema=True, ema_momentum=0.5)
    _step(optimizer, [w], [[-1.0]])  # w = 1, first average = w = 1
    _step(optimizer, [w], [[-2.0]])  # w = 3, average = 0.5 * 1 + 0.5 * 3 = 2
    assert optimizer.state[w]["average"].item() == pytest.approx(2.0)
    optimizer.swap_ema_weights()
    assert w.item() == pytest.approx(2.0)
    optimizer.swap_ema_weights()
    assert w.item() == pytest.approx(3.0)
    optimizer.finalize_variable_values()
    assert w.item() == pytest.approx(2.0)


def test_ema_overwrite_frequency():
    w = _param(0.0)
    optimizer = SGD(
        [w], learning_rate=1.0, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=2
    )
    _step(optimizer, [w], [[-1.0]])
    assert w.item() == pytest.approx(1.0)
    _step(optimizer, [w], [[-2.0]])
    assert w.item() == pytest.approx(2.0)  # overwritten with the average


def test_swap_without_ema_is_an_error():
    with pytest.raises(ValueError, match="use_ema"):
        SGD([_param(1.0)]).swap_ema_weights()


# --- apply -------------------------------------------------------------------


def test_apply_builds_and_leaves_grad_alone():
    w = _param(1.0)
    optimizer = SGD(learning_rate=0.5)
    optimizer.apply([torch.tensor([1.0])], [w])
    assert optimizer.built and w.grad is None
    assert w.item() == pytest.approx(0.5)
    optimizer.apply([torch.tensor([1.0])])
    assert w.item() == pytest.approx(0.0)


def test_apply_gradients_returns_iterations():
    w = _param(1.0)
    optimizer = SGD(learning_rate=0.5)
    assert optimizer.apply_gradients(zip([torch.tensor([1.0])], [w])) == 1


def test_apply_skips_none_and_rejects_all_none():
    a, b = _param(1.0), _param(1.0)
    optimizer = SGD([a, b], learning_rate=0.5)
    with pytest.warns(UserWarning, match="Gradients do not exist"):
        optimizer.apply([None, torch.tensor([1.0])], [a, b])
    assert (a.item(), b.item()) == (1.0, 0.5)
    with pytest.raises(ValueError, match="No gradients"):
        optimizer.apply([None, None], [a, b])


def test_apply_errors_name_the_problem():
    w = _param(1.0, 2.0)
    optimizer = SGD([w])
    with pytest.raises(ValueError, match="shape"):
        optimizer.apply([torch.ones(3)], [w])
    with pytest.raises(ValueError, match="same length"):
        optimizer.apply([torch.ones(2), torch.ones(2)], [w])
    with pytest.raises(ValueError, match="Unknown variable"):
        optimizer.apply([torch.ones(1)], [_param(1.0)])


# --- state ---------------------------------------------------------------------


def _train(optimizer, params, grads):
    for step_grads in grads:
        _step(optimizer, params, step_grads)


def test_state_dict_round_trip_resumes_exactly():
    torch.manual_seed(0)
    grads = [[torch.randn(3).tolist()] for _ in range(10)]
    kwargs = {
        "learning_rate": schedules.ExponentialDecay(0.1, 2, 0.5),
        "use_ema": True,
        "gradient_accumulation_steps": 3,
    }
    w = _param(1.0, 2.0, 3.0)
    reference = Adam([w], **kwargs)
    _train(reference, [w], grads[:5])
    saved_weights, saved_state = w.detach().clone(), copy.deepcopy(reference.state_dict())
    _train(reference, [w], grads[5:])

    resumed_w = torch.nn.Parameter(saved_weights)
    resumed = Adam([resumed_w], **kwargs)
    resumed.load_state_dict(saved_state)
    assert resumed._iterations == 5 and resumed.iterations == 1
    _train(resumed, [resumed_w], grads[5:])
    torch.testing.assert_close(resumed_w, w, rtol=0, atol=0)
    torch.testing.assert_close(resumed.state[resumed_w]["average"], reference.state[w]["average"])


def test_load_state_dict_needs_a_built_optimizer():
    with pytest.raises(ValueError, match="build"):
        Adam().load_state_dict(Adam([_param(1.0)]).state_dict())


def test_deepcopy_keeps_the_keras_attributes():
    w = _param(1.0)
    optimizer = Adam([w], learning_rate=0.1, clipnorm=2.0)
    _step(optimizer, [w], [[1.0]])
    clone = copy.deepcopy(optimizer)
    assert (clone.iterations, clone.clipnorm, clone.learning_rate) == (1, 2.0, 0.1)


def test_plain_torch_loop_with_model_parameters_learns():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    optimizer = Adam(model.parameters(), learning_rate=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
    assert loss.item() < 1e-3


def test_no_warning_in_a_normal_step():
    w = _param(1.0)
    optimizer = Adam([w])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _step(optimizer, [w], [[1.0]])


# --- torch's step hooks and profiler ranges (step and zero_grad skip torch's wrapper when
# nothing watches) ------------------------------------------------------------------


def test_step_hooks_run_once_per_step_in_torchs_order():
    w = _param(1.0)
    optimizer = SGD([w], learning_rate=0.1)
    seen = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append("pre"))
    optimizer.register_step_post_hook(lambda opt, args, kwargs: seen.append("post"))
    handle = register_optimizer_step_post_hook(lambda opt, args, kwargs: seen.append("global post"))
    try:
        _step(optimizer, [w], [[1.0]])
    finally:
        handle.remove()
    _step(optimizer, [w], [[1.0]])
    assert seen == ["pre", "post", "global post", "pre", "post"]
    assert w.item() == pytest.approx(0.8)


def test_a_subclass_step_calling_super_runs_the_hooks_once():
    class Counted(SGD):
        def step(self, closure=None):
            return super().step(closure)

    w = _param(1.0)
    optimizer = Counted([w], learning_rate=0.1)
    seen = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append("pre"))
    optimizer.zero_grad()  # torch wraps a subclass's own `step` here
    _step(optimizer, [w], [[1.0]])
    assert seen == ["pre"]
    assert w.item() == pytest.approx(0.9)


def test_a_profiler_sees_torchs_step_and_zero_grad_ranges():
    w = _param(1.0)
    optimizer = RMSprop([w])
    w.grad = torch.ones(1)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        optimizer.step()
        optimizer.zero_grad()
    names = {event.name for event in profile.events()}
    assert {"Optimizer.step#RMSprop.step", "Optimizer.zero_grad#RMSprop.zero_grad"} <= names
    assert w.grad is None


def test_zero_grad_sets_none_or_zeros():
    w = _param(1.0, 2.0)
    optimizer = SGD([w])
    w.grad = torch.ones(2)
    optimizer.zero_grad(set_to_none=False)
    assert w.grad is not None and w.grad.tolist() == [0.0, 0.0]
    optimizer.zero_grad()
    assert w.grad is None
