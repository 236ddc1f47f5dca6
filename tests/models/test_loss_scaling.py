"""The model scales the loss through `optimizer.scale_loss` before backward, as Keras does.

Every test trains through a real `fit`: one weight `w = 1`, input 1, target 0 and
the mean squared error, so the loss is `w**2` and its gradient is 2.
"""

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit.optimizers import SGD, LossScaleOptimizer


def _float16_autocast_on_cpu() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            return torch.ones(2, 2) @ torch.ones(2, 2) is not None
    except Exception:  # noqa: BLE001 - an older torch without CPU float16 autocast
        return False


needs_cpu_float16 = pytest.mark.skipif(
    not _float16_autocast_on_cpu(), reason="this torch has no float16 autocast on CPU"
)


def _model(optimizer, loss="mse", dtype_policy=None):
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    model = torchfit.Model(net, device="cpu", dtype_policy=dtype_policy)
    model.compile(optimizer=optimizer, loss=loss)
    seen = []  # the gradient as backward produced it, before the optimizer unscales it
    net.weight.register_hook(lambda grad: seen.append(grad.detach().clone()))
    return model, net, seen


def _fit_one_step(model, x=1.0):
    x = np.full((1, 1), x, "float32")
    y = np.zeros((1, 1), "float32")
    return model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0)


def test_fit_multiplies_the_loss_by_loss_scale_factor_and_the_optimizer_divides_it_back():
    model, net, seen = _model(SGD(learning_rate=0.1, loss_scale_factor=8))
    history = _fit_one_step(model)
    assert float(seen[0]) == 16.0  # 2 * 8: backward saw the scaled loss
    assert net.weight.item() == pytest.approx(0.8)  # 1 - 0.1 * 2, not 1 - 0.1 * 2 / 8
    assert history.history["loss"] == [pytest.approx(1.0)]  # the logged loss is unscaled


def test_loss_scale_optimizer_in_fit_scales_the_loss_and_unscales_the_gradients():
    optimizer = LossScaleOptimizer(SGD(learning_rate=0.1), initial_scale=1024.0)
    model, net, seen = _model(optimizer)
    history = _fit_one_step(model)
    assert float(seen[0]) == 2048.0
    assert net.weight.item() == pytest.approx(0.8)
    assert optimizer.iterations == 1
    assert optimizer.dynamic_scale == 1024.0
    assert history.history["loss"] == [pytest.approx(1.0)]


def test_loss_scale_optimizer_in_fit_skips_an_update_whose_scaled_gradients_overflow():
    # The loss's gradient, 1e36, is finite; times the scale 2**15 it is not in float32.
    # An update skipped means the loss really was scaled in fit.
    optimizer = LossScaleOptimizer(SGD(learning_rate=0.1))
    model, net, seen = _model(optimizer, loss=lambda y_true, y_pred: (y_pred * 1e36).sum())
    _fit_one_step(model)
    assert torch.isinf(seen[0]).all()
    assert net.weight.item() == 1.0
    assert optimizer.iterations == 0
    assert optimizer.dynamic_scale == 2.0**14


# Under mixed_float16 the input is 1/64, so that the scaled float16 gradients stay
# finite: the loss is (w / 64)**2, its gradient 2 / 64**2 (powers of two: exact).
SMALL = 1.0 / 64


@needs_cpu_float16
def test_loss_scale_optimizer_under_mixed_float16_is_the_only_loss_scaling():
    # The model's own GradScaler (2**15) would scale the loss a second time.
    optimizer = LossScaleOptimizer(SGD(learning_rate=0.1), initial_scale=1024.0)
    model, net, seen = _model(optimizer, dtype_policy="mixed_float16")
    _fit_one_step(model, x=SMALL)
    assert float(seen[0]) == 2 * SMALL**2 * 1024
    assert net.weight.item() == pytest.approx(1 - 0.1 * 2 * SMALL**2, rel=1e-7)
    assert optimizer.iterations == 1


@needs_cpu_float16
def test_loss_scale_factor_under_mixed_float16_combines_with_the_model_loss_scaler():
    optimizer = SGD(learning_rate=0.1, loss_scale_factor=8)
    model, net, seen = _model(optimizer, dtype_policy="mixed_float16")
    _fit_one_step(model, x=SMALL)
    assert float(seen[0]) == 2 * SMALL**2 * 8 * 2.0**15  # both scales, both undone
    assert net.weight.item() == pytest.approx(1 - 0.1 * 2 * SMALL**2, rel=1e-7)


def _fit_mlp(optimizer):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    model = torchfit.Model(net, device="cpu")
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.RandomState(0)
    x, y = rng.rand(20, 4).astype("float32"), rng.rand(20, 2).astype("float32")
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    return model.get_weights(), history.history["loss"]


def test_loss_scale_factor_changes_nothing_but_the_gradients_backward_sees():
    # Several weights, batches (8, 8, 4) and epochs, with momentum: a factor that were
    # not divided back (or divided twice) would move every weight 8x too far (or short).
    scaled, scaled_loss = _fit_mlp(SGD(learning_rate=0.1, momentum=0.9, loss_scale_factor=8))
    plain, plain_loss = _fit_mlp(SGD(learning_rate=0.1, momentum=0.9))
    for a, b in zip(scaled, plain):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(scaled_loss, plain_loss, rtol=1e-6)
