"""Every torchfit optimizer, with each option, tracks Keras 3 step for step.

Both sides start from the same weights and receive the same 20 random
gradients; weights (and EMA averages) must agree to rtol 1e-5 after every step.
"""

import os

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

keras = pytest.importorskip("keras")

from optimizer_runs import (  # noqa: E402
    ATOL,
    RTOL,
    assert_same_runs,
    random_data,
    run_keras,
    run_torchfit,
    to_numpy,
)

import torchfit.optimizers as optimizers  # noqa: E402
from torchfit.optimizers import schedules  # noqa: E402

# Keras's own torch backend converts through NumPy's legacy __array__ path.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SHAPES = [(3, 4), (4,), (2, 3, 2)]

# Learning rates large enough for the updates to matter over 20 steps.
BASE = {
    "SGD": {"learning_rate": 0.05},
    "RMSprop": {"learning_rate": 0.01},
    "Adam": {"learning_rate": 0.01},
    "AdamW": {"learning_rate": 0.01},
    "Adagrad": {"learning_rate": 0.05},
    "Adadelta": {"learning_rate": 1.0},
    "Adamax": {"learning_rate": 0.01},
    "Nadam": {"learning_rate": 0.01},
    "Lion": {"learning_rate": 0.01},
    "Ftrl": {"learning_rate": 0.1},
}

SPECIFIC = [
    ("SGD", {"momentum": 0.9}),
    ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("RMSprop", {"momentum": 0.9}),
    ("RMSprop", {"centered": True}),
    ("RMSprop", {"centered": True, "momentum": 0.5, "rho": 0.8}),
    ("Adam", {"amsgrad": True}),
    ("Adam", {"beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3}),
    ("AdamW", {"weight_decay": 0.1, "amsgrad": True}),
    ("Adagrad", {"initial_accumulator_value": 0.5, "epsilon": 1e-3}),
    ("Adadelta", {"rho": 0.5}),
    ("Adamax", {"beta_1": 0.5, "beta_2": 0.9}),
    ("Nadam", {"beta_1": 0.8, "beta_2": 0.95}),
    ("Lion", {"beta_1": 0.5, "beta_2": 0.9}),
    (
        "Ftrl",
        {
            "learning_rate_power": -0.7,
            "l1_regularization_strength": 0.01,
            "l2_regularization_strength": 0.05,
            "l2_shrinkage_regularization_strength": 0.02,
            "beta": 0.3,
        },
    ),
]

COMMON = {
    "weight_decay": {"weight_decay": 0.05},
    "clipnorm": {"clipnorm": 0.5},
    "clipvalue": {"clipvalue": 0.3},
    "global_clipnorm": {"global_clipnorm": 0.8},
    "accumulation": {"gradient_accumulation_steps": 3},
    "ema": {"use_ema": True, "ema_momentum": 0.9},
    "ema_overwrite": {"use_ema": True, "ema_momentum": 0.8, "ema_overwrite_frequency": 3},
    "loss_scale": {"loss_scale_factor": 8.0},
    "accumulation_ema_clip": {
        "gradient_accumulation_steps": 2,
        "use_ema": True,
        "clipnorm": 0.7,
        "weight_decay": 0.02,
    },
}

CASES = [(name, {}) for name in BASE] + SPECIFIC
CASES += [(name, dict(options)) for name in BASE for options in COMMON.values()]
IDS = [
    f"{name}-{'-'.join(f'{k}={v}' for k, v in options.items()) or 'defaults'}"
    for name, options in CASES
]


def _data(seed):
    return random_data(SHAPES, seed)


def _run_keras(name, options, weights, grads, schedule=None):
    kwargs = {**BASE[name], **options}
    if schedule is not None:
        kwargs["learning_rate"] = keras.optimizers.schedules.ExponentialDecay(**schedule)
    optimizer = getattr(keras.optimizers, name)(**kwargs)
    variables = [keras.Variable(torch.tensor(w)) for w in weights]
    return run_keras(optimizer, variables, grads, kwargs.get("use_ema"))


def _run_torchfit(name, options, weights, grads, schedule=None):
    kwargs = {**BASE[name], **options}
    if schedule is not None:
        kwargs["learning_rate"] = schedules.ExponentialDecay(**schedule)
    params = [torch.nn.Parameter(torch.tensor(w)) for w in weights]
    optimizer = getattr(optimizers, name)(params, **kwargs)
    return run_torchfit(optimizer, params, grads, kwargs.get("use_ema"))


def _assert_same_runs(expected, actual):
    assert_same_runs(expected, actual, names=range(len(SHAPES)))


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_matches_keras_for_20_steps(name, options):
    weights, grads = _data(seed=len(name) + len(options))
    expected = _run_keras(name, options, weights, grads)
    _assert_same_runs(expected, _run_torchfit(name, options, weights, grads))


@pytest.mark.parametrize("name", list(BASE))
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_keras_with_a_schedule(name, seed):
    weights, grads = _data(seed)
    schedule = {
        "initial_learning_rate": BASE[name]["learning_rate"],
        "decay_steps": 4,
        "decay_rate": 0.7,
    }
    options = {"weight_decay": 0.05} if seed else {"gradient_accumulation_steps": 2}
    expected = _run_keras(name, options, weights, grads, schedule)
    _assert_same_runs(expected, _run_torchfit(name, options, weights, grads, schedule))


def test_finalize_variable_values_matches_keras():
    weights, grads = _data(seed=3)
    kwargs = {"learning_rate": 0.01, "use_ema": True, "ema_momentum": 0.9}
    keras_optimizer = keras.optimizers.Adam(**kwargs)
    variables = [keras.Variable(torch.tensor(w)) for w in weights]
    params = [torch.nn.Parameter(torch.tensor(w)) for w in weights]
    optimizer = optimizers.Adam(params, **kwargs)
    for step_grads in grads:
        keras_optimizer.apply([torch.tensor(g) for g in step_grads], variables)
        optimizer.apply([torch.tensor(g) for g in step_grads], params)
    keras_optimizer.finalize_variable_values(variables)
    optimizer.finalize_variable_values()
    for variable, param in zip(variables, params):
        np.testing.assert_allclose(param.detach().numpy(), to_numpy(variable), rtol=RTOL, atol=ATOL)
