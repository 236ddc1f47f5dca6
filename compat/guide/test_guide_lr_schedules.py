"""The Keras guide's "Using learning rate schedules" section, as torchfit twins.

Source: the "Training & evaluation with the built-in methods" guide:
"Passing a schedule to an optimizer" (a static schedule object as
`learning_rate`, evaluated at every optimizer step) and "Using callbacks to
implement a dynamic learning rate schedule" (`ReduceLROnPlateau`). The
guide's MNIST MLP becomes the same MLP on the bundled 8x8 digits; `keras.`
becomes `torchfit.`; the guide's code is otherwise kept as written.
"""

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit.datasets import digits


def _load():
    (x_train, y_train), _ = digits.load_data()
    x_train = x_train.reshape(-1, 64).astype("float32") / 16
    return x_train, y_train.astype("int64")


def _net():
    return nn.Sequential(
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
        nn.Softmax(dim=-1),
    )


def _compiled_model(optimizer, net=None):
    model = torchfit.Model(net if net is not None else _net(), device="cpu")
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    return model


class LearningRateLog(torchfit.callbacks.Callback):
    """Records (optimizer step, learning rate) before every training batch."""

    def on_train_begin(self, logs=None):
        self.steps, self.rates = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.steps.append(self.model.optimizer.iterations)
        self.rates.append(self.model.optimizer.learning_rate)


# --------------------------------------------- Passing a schedule to an optimizer
def test_guide_exponential_decay_schedule_drives_rmsprop():
    initial_learning_rate = 0.1
    lr_schedule = torchfit.optimizers.schedules.ExponentialDecay(
        initial_learning_rate, decay_steps=100000, decay_rate=0.96, staircase=True
    )

    optimizer = torchfit.optimizers.RMSprop(learning_rate=lr_schedule)

    # The schedule itself, as the guide defines it: a stair every 100000 steps.
    assert lr_schedule(0) == pytest.approx(0.1)
    assert lr_schedule(99999) == pytest.approx(0.1)
    assert lr_schedule(100000) == pytest.approx(0.1 * 0.96)
    assert lr_schedule(250000) == pytest.approx(0.1 * 0.96**2)

    torchfit.utils.set_random_seed(0)
    x_train, y_train = _load()
    model = _compiled_model(optimizer)
    log = LearningRateLog()
    model.fit(x_train, y_train, batch_size=64, epochs=2, callbacks=[log], verbose=0)
    assert model.optimizer is optimizer
    assert log.steps == list(range(2 * 23))  # 1437 samples: 23 steps an epoch
    assert log.rates == pytest.approx([0.1] * 46)  # far from the first stair
    assert optimizer.iterations == 46


def test_schedule_is_evaluated_at_every_optimizer_step():
    # The guide's schedule with stairs every 10 steps, so they show within a fit.
    lr_schedule = torchfit.optimizers.schedules.ExponentialDecay(
        0.1, decay_steps=10, decay_rate=0.96, staircase=True
    )
    torchfit.utils.set_random_seed(0)
    x_train, y_train = _load()
    model = _compiled_model(torchfit.optimizers.RMSprop(learning_rate=lr_schedule))
    log = LearningRateLog()
    model.fit(x_train, y_train, batch_size=64, epochs=2, callbacks=[log], verbose=0)
    expected = [0.1 * 0.96 ** (step // 10) for step in range(46)]
    assert log.rates == pytest.approx(expected, rel=1e-6)
    assert model.optimizer.learning_rate == pytest.approx(0.1 * 0.96 ** (46 // 10), rel=1e-6)


def test_scheduled_fit_equals_a_hand_written_loop_setting_the_rate_each_step():
    # The schedule changes the updates themselves, step by step: a plain loop
    # that sets a constant-rate RMSprop's rate from the schedule before every
    # step ends with the very same weights.
    lr_schedule = torchfit.optimizers.schedules.ExponentialDecay(
        0.01, decay_steps=5, decay_rate=0.5, staircase=True
    )
    x_train, y_train = _load()
    x_train, y_train = x_train[:640], y_train[:640]
    torchfit.utils.set_random_seed(0)
    fitted_net = _net()
    looped_net = _net()
    looped_net.load_state_dict(fitted_net.state_dict())

    model = _compiled_model(torchfit.optimizers.RMSprop(learning_rate=lr_schedule), fitted_net)
    model.fit(x_train, y_train, batch_size=64, epochs=2, shuffle=False, verbose=0)

    optimizer = torchfit.optimizers.RMSprop(learning_rate=0.01)
    optimizer.build(list(looped_net.parameters()))
    loss_fn = torchfit.losses.SparseCategoricalCrossentropy()
    for step in range(20):
        start = (step % 10) * 64
        x, y = (
            torch.from_numpy(x_train[start : start + 64]),
            torch.from_numpy(y_train[start : start + 64]),
        )
        optimizer.learning_rate = lr_schedule(step)
        optimizer.zero_grad()
        loss_fn(y, looped_net(x)).backward()
        optimizer.step()

    for fitted, looped in zip(fitted_net.parameters(), looped_net.parameters()):
        torch.testing.assert_close(fitted, looped, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "lr_schedule",
    [
        torchfit.optimizers.schedules.ExponentialDecay(0.01, decay_steps=7, decay_rate=0.5),
        torchfit.optimizers.schedules.PiecewiseConstantDecay(
            boundaries=[10, 30], values=[0.01, 0.005, 0.001]
        ),
        torchfit.optimizers.schedules.PolynomialDecay(
            0.01, decay_steps=40, end_learning_rate=1e-4, power=2.0
        ),
        torchfit.optimizers.schedules.InverseTimeDecay(0.01, decay_steps=10, decay_rate=0.5),
    ],
    ids=["ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay", "InverseTimeDecay"],
)
def test_each_built_in_schedule_the_guide_lists_is_followed_per_step(lr_schedule):
    torchfit.utils.set_random_seed(0)
    x_train, y_train = _load()
    model = _compiled_model(torchfit.optimizers.RMSprop(learning_rate=lr_schedule))
    log = LearningRateLog()
    history = model.fit(x_train, y_train, batch_size=64, epochs=2, callbacks=[log], verbose=0)
    assert log.rates == pytest.approx([float(lr_schedule(step)) for step in range(46)], rel=1e-6)
    assert len(set(np.round(log.rates, 12))) > 2  # it really moved
    assert all(np.isfinite(history.history["loss"]))


# ------------------------- Using callbacks to implement a dynamic learning rate schedule
def test_reduce_lr_on_plateau_lowers_the_rate_and_logs_it(capsys):
    torchfit.utils.set_random_seed(0)
    x_train, y_train = _load()
    model = _compiled_model(torchfit.optimizers.RMSprop())
    # min_delta=10: no epoch counts as an improvement after the first, so
    # with patience=1 every later epoch is a plateau.
    callback = torchfit.callbacks.ReduceLROnPlateau(
        monitor="val_loss", factor=0.5, patience=1, min_delta=10, verbose=1
    )
    log = LearningRateLog()
    history = model.fit(
        x_train,
        y_train,
        batch_size=64,
        epochs=4,
        validation_split=0.2,
        callbacks=[callback, log],
        verbose=0,
    )

    # `learning_rate` in the logs is the rate the epoch trained with.
    assert history.history["learning_rate"] == pytest.approx([1e-3, 1e-3, 5e-4, 2.5e-4])
    assert model.optimizer.learning_rate == pytest.approx(1.25e-4)
    # The optimizer really trained each epoch with the logged rate.
    steps_per_epoch = 18  # 1149 training samples after the split
    assert log.rates[::steps_per_epoch] == pytest.approx(history.history["learning_rate"])
    assert model.optimizer.param_groups[0]["lr"] == pytest.approx(1.25e-4)
    out = capsys.readouterr().out
    for epoch, rate in [(2, "0.0005"), (3, "0.00025"), (4, "0.000125")]:
        assert f"Epoch {epoch}: ReduceLROnPlateau reducing learning rate to {rate}" in out


def test_reduce_lr_on_plateau_waits_for_patience_epochs():
    torchfit.utils.set_random_seed(0)
    x_train, y_train = _load()
    model = _compiled_model(torchfit.optimizers.RMSprop())
    # Epoch 1 sets the best; epochs 2 and 3 fail to beat it by 10: the rate
    # is halved only after the second of them.
    callback = torchfit.callbacks.ReduceLROnPlateau(
        monitor="loss", factor=0.5, patience=2, min_delta=10
    )
    history = model.fit(x_train, y_train, batch_size=64, epochs=4, callbacks=[callback], verbose=0)
    assert history.history["learning_rate"] == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4])
    assert model.optimizer.learning_rate == pytest.approx(5e-4)


def test_reduce_lr_on_plateau_leaves_the_rate_alone_while_improving():
    torchfit.utils.set_random_seed(0)
    x_train, y_train = _load()
    model = _compiled_model(torchfit.optimizers.RMSprop())
    # The training loss falls by far more than min_delta (1e-4) every epoch.
    callback = torchfit.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0)
    history = model.fit(x_train, y_train, batch_size=64, epochs=3, callbacks=[callback], verbose=0)
    assert np.all(np.diff(history.history["loss"]) < -1e-4)
    assert history.history["learning_rate"] == pytest.approx([1e-3] * 3)
    assert model.optimizer.learning_rate == pytest.approx(1e-3)


def test_a_schedule_cannot_be_changed_by_reduce_lr_on_plateau():
    # The guide: static schedule objects cannot react to validation metrics.
    # As in Keras, an optimizer built on a schedule refuses a new number.
    lr_schedule = torchfit.optimizers.schedules.ExponentialDecay(
        0.1, decay_steps=100000, decay_rate=0.96, staircase=True
    )
    x_train, y_train = _load()
    model = _compiled_model(torchfit.optimizers.RMSprop(learning_rate=lr_schedule))
    callback = torchfit.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=0, min_delta=10)
    with pytest.raises(TypeError, match="schedule"):
        model.fit(
            x_train,
            y_train,
            batch_size=64,
            epochs=2,
            validation_split=0.2,
            callbacks=[callback],
            verbose=0,
        )
