import numpy as np
import pytest
import torch

from torchfit.callbacks import CallbackList, History, LearningRateScheduler


class RateOptimizer:
    def __init__(self, learning_rate):
        self.learning_rate = learning_rate


class FakeModel:
    def __init__(self, optimizer):
        self.optimizer = optimizer


def _fit(callback, optimizer, epochs=3):
    history = History()
    callbacks = CallbackList(
        [callback, history], model=FakeModel(optimizer), verbose=0, epochs=epochs, steps=1
    )
    callbacks.on_train_begin()
    for epoch in range(epochs):
        callbacks.on_epoch_begin(epoch)
        callbacks.on_epoch_end(epoch, {"loss": 1.0})
    return history.history["learning_rate"]


def test_schedule_gets_epoch_and_current_rate():
    rates = _fit(
        LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr), RateOptimizer(1.0)
    )
    assert rates == [1.0, 0.5, 0.25]


def test_one_argument_schedule_and_numpy_floats():
    rates = _fit(
        LearningRateScheduler(lambda epoch: np.float32(0.1 * (epoch + 1))), RateOptimizer(1.0)
    )
    assert rates == pytest.approx([0.1, 0.2, 0.3])


def test_torch_optimizer_groups(capsys):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    _fit(LearningRateScheduler(lambda epoch, lr: 0.01, verbose=1), optimizer, epochs=1)
    assert optimizer.param_groups[0]["lr"] == 0.01
    assert (
        "Epoch 1: LearningRateScheduler setting learning rate to 0.01." in capsys.readouterr().out
    )


def test_non_float_schedule_output_is_an_error():
    with pytest.raises(ValueError, match="should be a float"):
        _fit(LearningRateScheduler(lambda epoch, lr: "fast"), RateOptimizer(1.0))


def test_real_fit_changes_torchfit_optimizer_rate():
    import torchfit

    x = np.ones((8, 2), "float32")
    model = torchfit.Model(torch.nn.Sequential(torch.nn.Linear(2, 1)))
    model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=0.1), loss="mse")
    history = model.fit(
        x,
        x[:, :1],
        epochs=3,
        batch_size=4,
        verbose=0,
        callbacks=[LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))],
    )
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    assert model.optimizer.learning_rate == pytest.approx(0.1 / 3)


def test_real_fit_trains_each_epoch_with_the_scheduled_rate(bias_fit, bias_steps):
    callback = LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr)
    model, history, snapshots = bias_fit([callback], epochs=3)
    # The bias gains the rate at each step: the epochs trained with these rates.
    assert bias_steps(snapshots) == [1.0, 0.5, 0.25]
    assert history.history["learning_rate"] == [1.0, 0.5, 0.25]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_real_fit_non_finite_rate_stops_before_the_epoch_naming_it(bias_fit, bad):
    callback = LearningRateScheduler(lambda epoch, lr: 0.1 / (2 - epoch) if epoch < 2 else bad)
    with pytest.raises(
        ValueError, match=rf"learning rate of {bad} for epoch 2 \(from 0\), given lr=0.1"
    ):
        bias_fit([callback], epochs=4)
    model = callback.model
    assert model.optimizer.iterations == 4  # two epochs trained, the third never started
    assert model.optimizer.learning_rate == pytest.approx(0.1)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_a_second_fit_schedules_from_the_current_rate(bias_fit):
    import torchfit

    callback = LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    optimizer = torchfit.optimizers.SGD(learning_rate=1.0)
    bias_fit([callback], epochs=1, optimizer=optimizer)
    assert optimizer.learning_rate == 0.5
    x = np.zeros((4, 1), "float32")
    callback.model.fit(x, x, epochs=1, verbose=0, callbacks=[callback])
    assert optimizer.learning_rate == 0.25


def test_state_dict_round_trip_repeats_the_interrupted_epochs_rate():
    callback = LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    optimizer = RateOptimizer(1.0)
    callbacks = CallbackList([callback], model=FakeModel(optimizer), verbose=0, epochs=3, steps=1)
    callbacks.on_train_begin()
    callbacks.on_epoch_begin(0)
    state = callback.state_dict()  # backed up after the rate was set for epoch 0
    assert state == {"epoch": 0, "learning_rate": 1.0} and optimizer.learning_rate == 0.5
    resumed = LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    callbacks = CallbackList([resumed], model=FakeModel(optimizer), verbose=0, epochs=3, steps=1)
    callbacks.on_train_begin()
    resumed.load_state_dict(state)
    callbacks.on_epoch_begin(0)  # the resumed run repeats epoch 0: not halved twice
    assert optimizer.learning_rate == 0.5
    callbacks.on_epoch_begin(1)
    assert optimizer.learning_rate == 0.25


@pytest.mark.parametrize("verbose", [0, 1])
def test_real_fit_prints_the_rate_set_at_verbose_1_only(bias_fit, bias_steps, capsys, verbose):
    scheduler = LearningRateScheduler(lambda epoch, lr: 0.5 / (epoch + 1), verbose=verbose)
    _, _, snapshots = bias_fit([scheduler], epochs=2)
    assert bias_steps(snapshots) == [0.5, 0.25]
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    expected = [
        f"Epoch {epoch}: LearningRateScheduler setting learning rate to {rate}."
        for epoch, rate in ((1, 0.5), (2, 0.25))
    ]
    assert lines == (expected if verbose else [])
