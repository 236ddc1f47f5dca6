"""LossScaleOptimizer tracks Keras 3's: weights, scale, counter and iterations, step by step.

Each step feeds gradients of the loss scaled by the current scale (as Keras's
trainer does); some steps hold an inf or a NaN, so the update is skipped and
the scale halves, and a small `dynamic_growth_steps` makes the scale double
within the run. torchfit is driven both through Keras's `apply` and through
torch's `scale_loss` / `backward` / `step`.
"""

import os

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

keras = pytest.importorskip("keras")

from optimizer_runs import ATOL, RTOL, random_data, to_numpy  # noqa: E402

import torchfit.optimizers as optimizers  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SHAPES = [(3, 4), (4,)]
NON_FINITE = {3: np.inf, 4: np.nan, 11: -np.inf}  # step -> the bad value put in one gradient

INNER = [
    ("Adam", {"learning_rate": 0.01}),
    ("SGD", {"learning_rate": 0.05, "momentum": 0.9}),
    ("Adafactor", {"learning_rate": 0.05}),
    ("Adam", {"learning_rate": 0.01, "gradient_accumulation_steps": 2, "use_ema": True}),
]


def _data(seed):
    weights, grads = random_data(SHAPES, seed)
    for step, value in NON_FINITE.items():
        grads[step][step % 2].flat[1] = value
    return weights, grads


def _run_keras(inner, options, weights, grads, growth_steps):
    optimizer = keras.optimizers.LossScaleOptimizer(
        getattr(keras.optimizers, inner)(**options),
        initial_scale=2.0**10,
        dynamic_growth_steps=growth_steps,
    )
    variables = [keras.Variable(torch.tensor(w)) for w in weights]
    optimizer.build(variables)
    records = []
    for step_grads in grads:
        scale = float(to_numpy(optimizer.dynamic_scale))
        optimizer.apply([torch.tensor(g) * scale for g in step_grads], variables)
        records.append(
            (
                [to_numpy(v) for v in variables],
                float(to_numpy(optimizer.dynamic_scale)),
                int(to_numpy(optimizer.step_counter)),
                int(to_numpy(optimizer.iterations)),
            )
        )
    return records


def _run_torchfit(inner, options, weights, grads, growth_steps, through_step):
    params = [torch.nn.Parameter(torch.tensor(w)) for w in weights]
    optimizer = optimizers.LossScaleOptimizer(
        getattr(optimizers, inner)(params, **options),
        initial_scale=2.0**10,
        dynamic_growth_steps=growth_steps,
    )
    records = []
    for step_grads in grads:
        targets = [torch.tensor(g) for g in step_grads]
        if through_step:
            # d/dw of scale * sum(w * g) is scale * g: the real torch path.
            optimizer.zero_grad()
            loss = sum((p * g.nan_to_num(0.0, 0.0, 0.0)).sum() for p, g in zip(params, targets))
            optimizer.scale_loss(loss).backward()
            for param, target in zip(params, targets):
                bad = ~torch.isfinite(target)
                param.grad[bad] = target[bad]  # a non-finite gradient, as an overflow gives
            optimizer.step()
        else:
            optimizer.apply([g * optimizer.dynamic_scale for g in targets], params)
        records.append(
            (
                [p.detach().numpy().copy() for p in params],
                optimizer.dynamic_scale,
                optimizer.step_counter,
                optimizer.iterations,
            )
        )
    return records


@pytest.mark.parametrize("through_step", [False, True], ids=["apply", "scale_loss-step"])
@pytest.mark.parametrize("growth_steps", [3, 2000])
@pytest.mark.parametrize(("inner", "options"), INNER, ids=[f"{n}-{len(o)}" for n, o in INNER])
def test_matches_keras_for_20_steps_with_non_finite_ones(
    inner, options, growth_steps, through_step
):
    weights, grads = _data(seed=growth_steps + len(options))
    expected = _run_keras(inner, options, weights, grads, growth_steps)
    actual = _run_torchfit(inner, options, weights, grads, growth_steps, through_step)
    for step, (want, got) in enumerate(zip(expected, actual)):
        assert got[1:] == want[1:], f"step {step}: (scale, counter, iterations)"
        for w, g in zip(want[0], got[0]):
            np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=f"step {step}")
    scales = [record[1] for record in expected]
    assert min(scales) < 2.0**10  # some steps were skipped...
    if growth_steps == 3:
        assert max(scales) > 2.0**10  # ...and the scale grew again


def test_scale_loss_and_config_match_keras():
    keras_optimizer = keras.optimizers.LossScaleOptimizer(
        keras.optimizers.SGD(), initial_scale=64.0, dynamic_growth_steps=7
    )
    ours = optimizers.LossScaleOptimizer(
        optimizers.SGD(), initial_scale=64.0, dynamic_growth_steps=7
    )
    assert float(to_numpy(keras_optimizer.scale_loss(torch.tensor(1.5)))) == float(
        ours.scale_loss(torch.tensor(1.5))
    )
    theirs, mine = keras_optimizer.get_config(), ours.get_config()
    assert sorted(mine) == sorted(theirs)
    assert (mine["initial_scale"], mine["dynamic_growth_steps"]) == (64.0, 7)
    assert mine["inner_optimizer"]["class_name"] == theirs["inner_optimizer"]["class_name"]
