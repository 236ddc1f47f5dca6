import pytest
import torch

import torchfit
from torchfit.callbacks import CallbackList, SwapEMAWeights


class SwappingOptimizer:
    """Minimal stand-in for a torchfit optimizer with use_ema=True."""

    use_ema = True

    def __init__(self, param, average):
        self.param, self.average = param, average
        self.finalized = 0

    @torch.no_grad()
    def swap_ema_weights(self):
        saved = self.param.clone()
        self.param.copy_(self.average)
        self.average.copy_(saved)

    @torch.no_grad()
    def finalize_variable_values(self):
        self.finalized += 1
        self.param.copy_(self.average)


class FakeModel:
    def __init__(self, optimizer):
        self.optimizer = optimizer


def _setup(swap_on_epoch=False, epochs=2):
    param = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = SwappingOptimizer(param, torch.tensor([5.0]))
    callback = SwapEMAWeights(swap_on_epoch=swap_on_epoch)
    callbacks = CallbackList(
        [callback], model=FakeModel(optimizer), verbose=0, epochs=epochs, steps=1
    )
    return param, optimizer, callbacks


def test_evaluate_and_predict_use_ema_weights_then_restore():
    param, _, callbacks = _setup()
    callbacks.on_test_begin()
    assert param.item() == 5.0
    callbacks.on_test_end({})
    assert param.item() == 1.0
    callbacks.on_predict_begin()
    assert param.item() == 5.0
    callbacks.on_predict_end()
    assert param.item() == 1.0


def test_swap_on_epoch_keeps_ema_from_epoch_end_to_next_begin():
    param, optimizer, callbacks = _setup(swap_on_epoch=True, epochs=2)
    callbacks.on_epoch_begin(0)
    callbacks.on_epoch_end(0, {})
    assert param.item() == 5.0
    callbacks.on_test_begin()  # already swapped in: no second swap
    assert param.item() == 5.0
    callbacks.on_epoch_begin(1)
    assert param.item() == 1.0
    callbacks.on_epoch_end(1, {})
    # Last epoch: model and average both hold the EMA weights.
    assert param.item() == 5.0 and optimizer.average.item() == 5.0


def test_with_real_torchfit_optimizer():
    optimizers = pytest.importorskip("torchfit.optimizers")
    module = torch.nn.Linear(2, 1)
    optimizer = optimizers.SGD(learning_rate=0.1, use_ema=True)
    optimizer.build(module.parameters())
    module(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    optimizer.step()
    trained = [p.detach().clone() for p in module.parameters()]
    callbacks = CallbackList([SwapEMAWeights()], model=FakeModel(optimizer))
    callbacks.on_test_begin()
    swapped = [p.detach().clone() for p in module.parameters()]
    callbacks.on_test_end({})
    assert any(not torch.equal(s, t) for s, t in zip(swapped, trained))
    assert all(torch.equal(p, t) for p, t in zip(module.parameters(), trained))


def test_requires_use_ema():
    model = FakeModel(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1))
    callbacks = CallbackList([SwapEMAWeights()], model=model)
    with pytest.raises(ValueError, match="use_ema=True"):
        callbacks.on_test_begin()


def test_real_fit_validates_with_ema_weights():
    import numpy as np

    import torchfit

    x = np.random.default_rng(0).random((16, 2)).astype("float32")
    model = torchfit.Model(torch.nn.Sequential(torch.nn.Linear(2, 1)))
    model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=0.1, use_ema=True), loss="mse")
    checks = []

    class Spy(torchfit.callbacks.Callback):
        def on_test_begin(self, logs=None):
            weight = model.module[0].weight
            # Swapped: the model holds the average, the optimizer the raw.
            self.raw = model.optimizer.state[weight]["average"].clone()
            checks.append(not torch.equal(weight.detach(), self.raw))

        def on_test_end(self, logs=None):
            checks.append(torch.equal(model.module[0].weight.detach(), self.raw))

    history = model.fit(
        x,
        x[:, :1],
        epochs=2,
        batch_size=4,
        verbose=0,
        validation_data=(x, x[:, :1]),
        callbacks=[SwapEMAWeights(), Spy()],
    )
    assert len(history.history["val_loss"]) == 2
    assert checks == [True, True, True, True]


class _EMARecorder(torchfit.callbacks.Callback):
    """At each epoch end: the model's bias and the optimizer's `average` slot of it."""

    def __init__(self):
        super().__init__()
        self.model_bias, self.slot_bias = [], []

    def on_epoch_end(self, epoch, logs=None):
        bias = self.model.module.bias
        self.model_bias.append(bias.item())
        self.slot_bias.append(self.model.optimizer.state[bias]["average"].item())


def _ema_sgd():
    return torchfit.optimizers.SGD(learning_rate=1.0, use_ema=True, ema_momentum=0.5)


def test_real_fit_validates_with_the_average_and_ends_holding_it(bias_fit):
    import numpy as np

    recorder = _EMARecorder()
    data = (np.zeros((4, 1), "float32"), np.full((4, 1), 100.0, "float32"))
    model, history, _ = bias_fit(
        [SwapEMAWeights(), recorder], epochs=3, optimizer=_ema_sgd(), validation_data=data
    )
    # Raw weights train on: 2 steps of 1.0 per epoch; the average lags behind.
    assert recorder.model_bias == [2.0, 4.0, 6.0]
    assert all(average < raw for average, raw in zip(recorder.slot_bias, recorder.model_bias))
    # Validation ran on the average: |average - 100|, not |raw - 100|.
    assert history.history["val_loss"] == pytest.approx([100 - a for a in recorder.slot_bias])
    # fit ends with the average in the model, as Keras.
    assert model.module.bias.item() == recorder.slot_bias[-1]


def test_real_fit_swap_on_epoch_checkpoints_hold_the_average(tmp_path, bias_fit):
    from torchfit.callbacks import ModelCheckpoint

    recorder = _EMARecorder()
    checkpoint = ModelCheckpoint(str(tmp_path / "e{epoch}.pt"), save_weights_only=True)
    model, _, _ = bias_fit(
        [SwapEMAWeights(swap_on_epoch=True), recorder, checkpoint], epochs=3, optimizer=_ema_sgd()
    )
    # Between epochs the model holds the average and the slot the raw weights; after
    # the last one both hold the average, which fit's end keeps.
    assert recorder.slot_bias[:2] == [2.0, 4.0]
    assert all(average < raw for average, raw in zip(recorder.model_bias, [2.0, 4.0, 6.0]))
    assert recorder.slot_bias[2] == recorder.model_bias[2]
    for epoch, average in enumerate(recorder.model_bias):
        saved = torch.load(tmp_path / f"e{epoch + 1}.pt", weights_only=True)["bias"].item()
        assert saved == average
    assert model.module.bias.item() == recorder.model_bias[-1]
