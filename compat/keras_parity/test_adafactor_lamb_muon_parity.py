"""Adafactor, Lamb and Muon, with each option, track Keras 3 step for step.

Both sides start from the same weights and receive the same 20 random
gradients; weights (and EMA averages) must agree to rtol 1e-5 after every
step. The variables carry names, so Muon's choice between its own step and
its Adam fallback (by rank, by "embedding" in the name, by `exclude_layers`)
is checked against Keras's choice too.
"""

import os

os.environ["KERAS_BACKEND"] = "torch"

import pytest  # noqa: E402
import torch  # noqa: E402

keras = pytest.importorskip("keras")

from optimizer_runs import assert_same_runs, random_data, run_keras, run_torchfit  # noqa: E402

import torchfit.optimizers as optimizers  # noqa: E402
from torchfit.optimizers import schedules  # noqa: E402

# Keras's own torch backend converts through NumPy's legacy __array__ path.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


# (Keras name scope, Keras variable name, torch parameter name, shape): a
# matrix, a vector, a 3-D kernel, an embedding, a tall output matrix, a
# square matrix.
VARIABLES = [
    ("dense", "kernel", "dense.weight", (3, 4)),
    ("dense", "bias", "dense.bias", (4,)),
    ("conv", "kernel", "conv.weight", (2, 3, 2)),
    ("embedding", "embeddings", "embedding.weight", (5, 3)),
    ("output_dense", "kernel", "output_dense.weight", (6, 2)),
    ("hidden", "kernel", "hidden.weight", (4, 4)),
]

BASE = {
    "Adafactor": {"learning_rate": 0.05},
    "Lamb": {"learning_rate": 0.01},
    "Muon": {"learning_rate": 0.01},
}

SPECIFIC = [
    ("Adafactor", {"learning_rate": 0.5}),
    ("Adafactor", {"beta_2_decay": -0.5, "epsilon_2": 0.5, "clip_threshold": 0.5}),
    ("Adafactor", {"relative_step": False, "epsilon_1": 1e-3}),
    ("Lamb", {"beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3}),
    ("Muon", {"exclude_layers": ["output_dense"]}),
    ("Muon", {"exclude_layers": ["^hid", "dense\\b"], "exclude_embeddings": False}),
    ("Muon", {"nesterov": False, "momentum": 0.8, "ns_steps": 3}),
    ("Muon", {"rms_rate": None, "adam_lr_ratio": 0.5}),
    ("Muon", {"weight_decay": 0.1, "adam_weight_decay": 0.3}),
    ("Muon", {"weight_decay": None, "adam_weight_decay": 0.3}),
    ("Muon", {"adam_beta_1": 0.5, "adam_beta_2": 0.9, "epsilon": 1e-3, "muon_a": 3.0}),
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
        "gradient_accumulation_steps": 2, "use_ema": True, "clipnorm": 0.7, "weight_decay": 0.02,
    },
}  # fmt: skip

CASES = [(name, {}) for name in BASE] + SPECIFIC
CASES += [(name, dict(options)) for name in BASE for options in COMMON.values()]
IDS = [
    f"{name}-{'-'.join(f'{k}={v}' for k, v in options.items()) or 'defaults'}"
    for name, options in CASES
]


def _data(seed):
    return random_data([shape for *_, shape in VARIABLES], seed)


def _run_keras(name, options, weights, grads, schedule=None):
    """Keras's record (see `optimizer_runs`) and, for Muon, which variables took the fallback."""
    kwargs = {**BASE[name], **options}
    if schedule is not None:
        kwargs["learning_rate"] = keras.optimizers.schedules.ExponentialDecay(**schedule)
    optimizer = getattr(keras.optimizers, name)(**kwargs)
    variables = []
    for (scope, variable_name, _, _), weight in zip(VARIABLES, weights):
        with keras.name_scope(scope):
            variables.append(keras.Variable(torch.tensor(weight), name=variable_name))
    run = run_keras(optimizer, variables, grads, kwargs.get("use_ema"))
    fallback = None
    if name == "Muon":
        fallback = [v is not None for v in optimizer.adam_velocities]
    return run, fallback


def _run_torchfit(name, options, weights, grads, schedule=None):
    """torchfit's record and Muon's fallback choice, on named parameters."""
    kwargs = {**BASE[name], **options}
    if schedule is not None:
        kwargs["learning_rate"] = schedules.ExponentialDecay(**schedule)
    params = [torch.nn.Parameter(torch.tensor(w)) for w in weights]
    named = [(torch_name, p) for (_, _, torch_name, _), p in zip(VARIABLES, params)]
    optimizer = getattr(optimizers, name)(named, **kwargs)
    run = run_torchfit(optimizer, params, grads, kwargs.get("use_ema"))
    fallback = None
    if name == "Muon":
        fallback = ["velocity" in optimizer.state[p] for p in params]
    return run, fallback


def _assert_same_runs(expected, actual):
    (expected_run, expected_fallback), (run, fallback) = expected, actual
    assert fallback == expected_fallback
    assert_same_runs(expected_run, run, names=[torch_name for _, _, torch_name, _ in VARIABLES])


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
        "initial_learning_rate": BASE[name]["learning_rate"], "decay_steps": 4, "decay_rate": 0.7,
    }  # fmt: skip
    options = {"weight_decay": 0.05} if seed else {"gradient_accumulation_steps": 2}
    expected = _run_keras(name, options, weights, grads, schedule)
    _assert_same_runs(expected, _run_torchfit(name, options, weights, grads, schedule))


def test_muon_sends_the_parameters_keras_does_to_its_adam_fallback():
    # The vector, the 3-D kernel and the embedding take the fallback by
    # default; exclude_layers adds the output matrix; the others take Muon.
    weights, grads = _data(seed=5)
    options = {"exclude_layers": ["output"]}
    _, fallback = _run_keras("Muon", options, weights, grads[:1])
    assert fallback == [False, True, True, True, True, False]
    assert _run_torchfit("Muon", options, weights, grads[:1])[1] == fallback


@pytest.mark.parametrize("name", ["Adafactor", "Muon", "Lamb"])
def test_string_ids_and_config_keys_follow_keras(name):
    try:
        keras.optimizers.get(name.lower())
        keras_has_id = True
    except ValueError:
        keras_has_id = False
    if keras_has_id:
        assert type(optimizers.get(name.lower())).__name__ == name
    else:
        with pytest.raises(ValueError, match="no string id"):
            optimizers.get(name.lower())
    theirs = getattr(keras.optimizers, name)().get_config()
    ours = getattr(optimizers, name)().get_config()
    assert sorted(ours) == sorted(theirs)
    for key, value in theirs.items():
        if key not in ("name", "learning_rate"):
            assert ours[key] == value, key
    assert ours["learning_rate"] == pytest.approx(theirs["learning_rate"])
