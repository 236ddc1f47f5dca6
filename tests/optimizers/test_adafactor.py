import numpy as np
import pytest
import torch

from torchfit.optimizers import Adafactor


def _keras_rule(weights, grads, lr, beta_2_decay=-0.8, epsilon_1=1e-30, epsilon_2=1e-3,
                clip_threshold=1.0):  # fmt: skip
    """Keras's Adafactor in float64 NumPy, for one parameter."""
    w = np.array(weights, dtype="float64")
    r = c = v = None
    for step, g in enumerate(grads, start=1):
        g = np.array(g, dtype="float64")
        rho = min(lr, 1 / np.sqrt(step))
        alpha = max(epsilon_2, np.sqrt(np.mean(w**2))) * rho
        g2 = g**2 + epsilon_1
        beta = 1 - step**beta_2_decay
        if w.ndim >= 2:
            r = (0 if r is None else beta * r) + (1 - beta) * g2.mean(axis=-1)
            c = (0 if c is None else beta * c) + (1 - beta) * g2.mean(axis=-2)
            v = (r / r.mean(axis=-1, keepdims=True))[..., None] * c[..., None, :]
        else:
            v = (0 if v is None else beta * v) + (1 - beta) * g2
        u = g / np.sqrt(v)
        u = u / max(1.0, np.sqrt(np.mean(u**2)) / clip_threshold)
        w = w - alpha * u
    return w


def _run(weights, grads, **kwargs):
    w = torch.nn.Parameter(torch.tensor(weights, dtype=torch.float32))
    optimizer = Adafactor([w], **kwargs)
    for g in grads:
        w.grad = torch.tensor(g, dtype=torch.float32)
        optimizer.step()
    return w.detach().double().numpy(), optimizer


@pytest.mark.parametrize("learning_rate", [0.3, 0.9])  # 0.9: capped at 1 / sqrt(t) from t = 2
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 2), (5,), ()])
def test_three_steps_follow_keras_rule(shape, learning_rate):
    rng = np.random.default_rng(len(shape))
    weights = rng.normal(size=shape)
    grads = [rng.normal(size=shape) for _ in range(3)]
    got, _ = _run(weights, grads, learning_rate=learning_rate)
    expected = _keras_rule(weights, grads, lr=learning_rate)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_matrices_keep_row_and_column_averages_vectors_a_full_velocity():
    matrix, cube, vector = (torch.nn.Parameter(torch.ones(s)) for s in [(3, 4), (2, 3, 5), (6,)])
    optimizer = Adafactor([matrix, cube, vector])
    for p in (matrix, cube, vector):
        p.grad = torch.ones_like(p)
    optimizer.step()
    shapes = {k: tuple(v.shape) for p in (matrix, cube) for k, v in optimizer.state[p].items()}
    assert sorted(optimizer.state[matrix]) == ["c", "r"]
    assert tuple(optimizer.state[matrix]["r"].shape) == (3,)
    assert tuple(optimizer.state[matrix]["c"].shape) == (4,)
    assert shapes == {"r": (2, 3), "c": (2, 5)}  # the cube's last two axes
    assert sorted(optimizer.state[vector]) == ["velocity"]


def test_row_and_column_states_are_averages_of_the_squared_gradient():
    w = torch.nn.Parameter(torch.ones(2, 3))
    optimizer = Adafactor([w])
    w.grad = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]])
    optimizer.step()  # beta_2_t = 0 at the first step: the states are the averages
    torch.testing.assert_close(optimizer.state[w]["r"], torch.tensor([14 / 3, 12.0]))
    torch.testing.assert_close(optimizer.state[w]["c"], torch.tensor([0.5, 2.0, 22.5]))


def test_clip_threshold_bounds_the_update_rms():
    # At the first step of a vector u = sign(g), of RMS 1: a threshold of 0.1
    # makes the step ten times smaller.
    steps = {}
    for threshold in (1.0, 0.1):
        w, _ = _run([1.0, -2.0], [[0.3, -5.0]], learning_rate=0.5, clip_threshold=threshold)
        steps[threshold] = w - np.array([1.0, -2.0])
    np.testing.assert_allclose(steps[0.1], steps[1.0] / 10, rtol=1e-6)


def test_step_size_is_the_weights_rms_times_the_capped_learning_rate():
    # rms(w) = 5, u = sign(g), and the rate 10 is capped at 1 / sqrt(1) = 1.
    w, _ = _run([5.0, -5.0, 5.0, -5.0], [[1.0, -1.0, 1.0, 1.0]], learning_rate=10.0)
    np.testing.assert_allclose(w, [0.0, 0.0, 0.0, -10.0], atol=1e-6)
    w, _ = _run([0.0, 0.0], [[1.0, -1.0]], learning_rate=10.0, epsilon_2=0.25)
    np.testing.assert_allclose(w, [-0.25, 0.25], rtol=1e-6)  # zero weights: epsilon_2


def test_relative_step_changes_no_number_as_in_keras():
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(2, 3)) for _ in range(4)]
    on, _ = _run(np.ones((2, 3)), grads, learning_rate=0.9, relative_step=True)
    off, _ = _run(np.ones((2, 3)), grads, learning_rate=0.9, relative_step=False)
    np.testing.assert_array_equal(on, off)


def test_config_has_keras_keys_and_round_trips():
    optimizer = Adafactor(beta_2_decay=-0.5, epsilon_2=0.01, relative_step=False)
    config = optimizer.get_config()
    assert config["beta_2_decay"] == -0.5 and config["relative_step"] is False
    assert Adafactor.from_config(config).get_config() == config
