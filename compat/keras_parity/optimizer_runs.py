"""What the optimizer parity tests share: the random weights and gradients, one run of
them through a Keras optimizer and through a torchfit one, and the step-by-step check.

Each test module builds its own optimizers and variables (and reads anything else it
compares, such as Muon's choice of parameters); a run here only applies the gradients
and records the weights after every step, the EMA averages and the iteration count.
"""

import numpy as np
import torch

STEPS = 20
RTOL, ATOL = 1e-5, 1e-6


def random_data(shapes, seed, steps=STEPS):
    """Float32 weights of `shapes` and `steps` lists of gradients of the same shapes."""
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(shape).astype("float32") for shape in shapes]
    grads = [[rng.standard_normal(s).astype("float32") for s in shapes] for _ in range(steps)]
    return weights, grads


def to_numpy(value):
    """A Keras variable or torch tensor as NumPy, without Keras's __array__ path."""
    value = getattr(value, "value", value)
    return value.detach().cpu().numpy().copy()


def run_keras(optimizer, variables, grads, use_ema):
    """(weights after each step, EMA averages or None, iterations) of a Keras optimizer."""
    history = []
    for step_grads in grads:
        optimizer.apply([torch.tensor(g) for g in step_grads], variables)
        history.append([to_numpy(v) for v in variables])
    averages = None
    if use_ema:
        averages = [to_numpy(a) for a in optimizer._model_variables_moving_average]
    return history, averages, int(to_numpy(optimizer.iterations))


def run_torchfit(optimizer, params, grads, use_ema):
    """The same record for a torchfit optimizer, fed through `.grad` and `step()`."""
    history = []
    for step_grads in grads:
        for param, grad in zip(params, step_grads):
            param.grad = torch.tensor(grad)
        optimizer.step()
        history.append([to_numpy(p) for p in params])
    averages = None
    if use_ema:
        averages = [to_numpy(optimizer.state[p]["average"]) for p in params]
    return history, averages, optimizer.iterations


def assert_same_runs(expected, actual, names):
    """Keras's record against torchfit's: every step's weights, the averages, iterations."""
    expected_history, expected_averages, expected_iterations = expected
    history, averages, iterations = actual
    assert iterations == expected_iterations
    for step, (want, got) in enumerate(zip(expected_history, history)):
        for name, w, g in zip(names, want, got):
            np.testing.assert_allclose(
                g, w, rtol=RTOL, atol=ATOL, err_msg=f"step {step}, variable {name}"
            )
    if expected_averages is not None:
        for w, g in zip(expected_averages, averages):
            np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg="EMA average")
