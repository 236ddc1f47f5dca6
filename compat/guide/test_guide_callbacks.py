"""The Keras guide's callback sections, as torchfit twins.

Source: the "Training & evaluation with the built-in methods" guide, sections
"Using callbacks", "Many built-in callbacks are available" and "Writing your
own callback". The guide's MNIST MLP becomes the same MLP on the bundled 8x8
digits (no download); `keras.` becomes `torchfit.`; the guide's code is
otherwise kept as written, comments included.
"""

import csv
import os

import numpy as np
import pytest
import torch
from guide_support import EarlyStoppingAtMinLoss, digits_data, get_compiled_model
from torch import nn

import torchfit


def _keras_early_stopping_epoch(val_losses, min_delta, patience):
    """Keras's EarlyStopping rule replayed on a finished history: the 0-based
    epoch at which it sets `stop_training`, or None."""
    best, wait = np.inf, 0
    for epoch, current in enumerate(val_losses):
        wait += 1
        if current + min_delta < best:  # an improvement of more than min_delta
            best, wait = current, 0
            continue
        if wait >= patience and epoch > 0:
            return epoch
    return None


# ------------------------------------------------------------ Using callbacks
def test_early_stopping_on_val_loss_stops_early_and_says_so(capsys):
    torchfit.utils.set_random_seed(0)
    # Four copies of digits: enough steps per epoch (72) for val_loss to level
    # off well within 20 epochs, as MNIST's 625 steps do in the guide.
    x_train, y_train = digits_data(copies=4)

    model = get_compiled_model(64)

    callbacks = [
        torchfit.callbacks.EarlyStopping(
            # Stop training when `val_loss` is no longer improving
            monitor="val_loss",
            # "no longer improving" being defined as "no better than 1e-2 less"
            min_delta=1e-2,
            # "no longer improving" being further defined as "for at least 2 epochs"
            patience=2,
            verbose=1,
        )
    ]
    history = model.fit(
        x_train,
        y_train,
        epochs=20,
        batch_size=64,
        callbacks=callbacks,
        validation_split=0.2,
    )

    out = capsys.readouterr().out
    val_losses = history.history["val_loss"]
    epochs_run = len(val_losses)
    assert epochs_run < 20, "val_loss never levelled off: the test data needs more steps"
    # It stopped exactly where Keras's rule says, and not before.
    assert _keras_early_stopping_epoch(val_losses, min_delta=1e-2, patience=2) == epochs_run - 1
    assert history.epoch == list(range(epochs_run))
    assert callbacks[0].stopped_epoch == epochs_run - 1
    # The guide's printout: an "Epoch i/20" line per epoch, then Keras 3's message.
    lines = out.strip().splitlines()
    assert [line for line in lines if line.startswith("Epoch ") and "/20" in line] == [
        f"Epoch {epoch}/20" for epoch in range(1, epochs_run + 1)
    ]
    assert lines[-1] == f"Epoch {epochs_run}: early stopping"
    assert " - val_loss: " in out and " - val_sparse_categorical_accuracy: " in out


def test_early_stopping_without_stopping_prints_nothing(capsys):
    torchfit.utils.set_random_seed(0)
    x_train, y_train = digits_data()
    model = get_compiled_model(64)
    callback = torchfit.callbacks.EarlyStopping(
        monitor="val_loss", min_delta=1e-2, patience=2, verbose=1
    )
    history = model.fit(
        x_train,
        y_train,
        epochs=3,
        batch_size=64,
        callbacks=[callback],
        validation_split=0.2,
        verbose=0,
    )
    assert len(history.epoch) == 3  # val_loss still falls fast after 3 epochs
    assert "early stopping" not in capsys.readouterr().out


# --------------------------------------- Many built-in callbacks are available
def _fit_with(callback, epochs=3):
    torchfit.utils.set_random_seed(0)
    x_train, y_train = digits_data()
    model = get_compiled_model(64)
    history = model.fit(
        x_train,
        y_train,
        epochs=epochs,
        batch_size=64,
        callbacks=[callback],
        validation_split=0.2,
        verbose=0,
    )
    return model, history


def test_model_checkpoint_saves_the_model_periodically(tmp_path):
    _, history = _fit_with(
        torchfit.callbacks.ModelCheckpoint(filepath=str(tmp_path / "mymodel_{epoch}"))
    )
    assert sorted(os.listdir(tmp_path)) == ["mymodel_1", "mymodel_2", "mymodel_3"]
    # Each file is the model of its epoch: the first one scores that epoch's val_loss.
    x_train, y_train = digits_data()
    x_val, y_val = x_train[1149:], y_train[1149:]  # validation_split=0.2 of 1437 samples
    restored = torchfit.models.load_model(str(tmp_path / "mymodel_1"))
    loss, accuracy = restored.evaluate(x_val, y_val, verbose=0)
    np.testing.assert_allclose(loss, history.history["val_loss"][0], rtol=1e-5)
    np.testing.assert_allclose(
        accuracy, history.history["val_sparse_categorical_accuracy"][0], rtol=1e-5
    )


def test_early_stopping_stops_when_validation_stops_improving():
    # No epoch can improve val_loss by 10: training stops after the second.
    callback = torchfit.callbacks.EarlyStopping(monitor="val_loss", min_delta=10)
    _, history = _fit_with(callback)
    assert history.epoch == [0, 1]
    assert callback.stopped_epoch == 1


def test_tensorboard_writes_train_and_validation_logs(tmp_path):
    _fit_with(torchfit.callbacks.TensorBoard(log_dir=str(tmp_path)))
    for folder in ("train", "validation"):
        names = os.listdir(tmp_path / folder)
        assert any(name.startswith("events.out.tfevents.") for name in names), folder


def test_csv_logger_streams_loss_and_metrics_to_a_csv_file(tmp_path):
    path = tmp_path / "training.log"
    _, history = _fit_with(torchfit.callbacks.CSVLogger(str(path)))
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    keys = ["loss", "sparse_categorical_accuracy", "val_loss", "val_sparse_categorical_accuracy"]
    assert list(rows[0]) == ["epoch"] + keys
    assert [row["epoch"] for row in rows] == ["0", "1", "2"]
    for key in keys:
        np.testing.assert_allclose(
            [float(row[key]) for row in rows], history.history[key], rtol=1e-6
        )


@pytest.mark.parametrize(
    "make_callback",
    [
        lambda tmp_path: torchfit.callbacks.History(),
        lambda tmp_path: torchfit.callbacks.ProgbarLogger(),
        lambda tmp_path: torchfit.callbacks.BackupAndRestore(backup_dir=str(tmp_path / "backup")),
        lambda tmp_path: torchfit.callbacks.LearningRateScheduler(
            lambda epoch, lr: lr if epoch == 0 else lr * 0.5
        ),
        lambda tmp_path: torchfit.callbacks.ReduceLROnPlateau(
            monitor="val_loss", patience=1, min_delta=10
        ),
        lambda tmp_path: torchfit.callbacks.TerminateOnNaN(),
        lambda tmp_path: torchfit.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: None),
    ],
    ids=[
        "History",
        "ProgbarLogger",
        "BackupAndRestore",
        "LearningRateScheduler",
        "ReduceLROnPlateau",
        "TerminateOnNaN",
        "LambdaCallback",
    ],
)
def test_the_rest_of_the_built_in_callbacks_run_in_a_fit(make_callback, tmp_path, capsys):
    callback = make_callback(tmp_path)
    model, history = _fit_with(callback, epochs=2)
    assert history.epoch == [0, 1]
    assert all(np.isfinite(history.history["loss"]))
    if isinstance(
        callback, (torchfit.callbacks.LearningRateScheduler, torchfit.callbacks.ReduceLROnPlateau)
    ):
        # Both halve/cut the rate after the first epoch and log it.
        assert history.history["learning_rate"][0] == pytest.approx(1e-3)
        assert model.optimizer.learning_rate < 1e-3


# ------------------------------------------------- Writing your own callback
class LossHistory(torchfit.callbacks.Callback):
    def on_train_begin(self, logs):
        self.per_batch_losses = []

    def on_batch_end(self, batch, logs):
        self.per_batch_losses.append(logs.get("loss"))


def test_loss_history_collects_the_per_batch_losses():
    torchfit.utils.set_random_seed(0)
    x_train, y_train = digits_data()  # 1437 samples: 22 batches of 64 + one of 29
    model = get_compiled_model(64)
    loss_history = LossHistory()
    history = model.fit(
        x_train, y_train, epochs=2, batch_size=64, callbacks=[loss_history], verbose=0
    )

    losses = loss_history.per_batch_losses
    assert len(losses) == 2 * 23
    assert all(isinstance(value, float) and np.isfinite(value) for value in losses)
    # As in Keras 3, `loss` in the batch logs is the epoch's running mean so
    # far: its last value in each epoch is the epoch's loss in History.
    np.testing.assert_allclose([losses[22], losses[45]], history.history["loss"], rtol=1e-6)
    assert losses[45] < losses[0]


def test_loss_history_running_mean_is_batch_size_weighted():
    # Two batches of sizes 4 and 2 with known losses: the running mean after
    # the second is (4 * l1 + 2 * l2) / 6, as Keras's loss tracker computes it.
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    model = torchfit.Model(net, device="cpu")
    model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=0.0), loss="mse")
    loss_history = LossHistory()
    x = np.ones((6, 1), "float32")
    y = np.array([[1], [1], [1], [1], [2], [2]], "float32")
    model.fit(x, y, batch_size=4, shuffle=False, callbacks=[loss_history], verbose=0)
    np.testing.assert_allclose(
        loss_history.per_batch_losses, [1.0, (4 * 1.0 + 2 * 4.0) / 6], rtol=1e-6
    )


def test_early_stopping_restore_best_weights_brings_back_the_best_val_loss():
    torchfit.utils.set_random_seed(0)
    x_train, y_train = digits_data()
    model = get_compiled_model(64)
    model.compile(
        optimizer=torchfit.optimizers.RMSprop(learning_rate=0.05),
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    callback = torchfit.callbacks.EarlyStopping(
        monitor="val_loss", patience=2, restore_best_weights=True
    )
    history = model.fit(
        x_train,
        y_train,
        epochs=30,
        batch_size=64,
        callbacks=[callback],
        validation_split=0.2,
        verbose=0,
    )
    val_losses = history.history["val_loss"]
    assert callback.stopped_epoch > 0 and callback.best_epoch == int(np.argmin(val_losses))
    assert callback.best_epoch < len(val_losses) - 1, "the last epoch should not be the best"
    # The model scores the best epoch's val_loss, not the last one's.
    x_val, y_val = x_train[1149:], y_train[1149:]  # validation_split=0.2 of 1437 samples
    loss, _ = model.evaluate(x_val, y_val, verbose=0)
    np.testing.assert_allclose(loss, min(val_losses), rtol=1e-5)


# -------------------------- The "Writing your own callbacks" guide's examples


class _Snapshots(torchfit.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def _guide_regression_model():
    # The guide's `keras.Sequential([keras.layers.Dense(1)])` on flattened images.
    model = torchfit.Model(nn.Linear(64, 1), device="cpu")
    model.compile(
        optimizer=torchfit.optimizers.RMSprop(learning_rate=0.1),
        loss="mean_squared_error",
        metrics=["mean_absolute_error"],
    )
    return model


def test_early_stopping_at_min_loss_restores_the_best_weights(capsys):
    torchfit.utils.set_random_seed(0)
    x_train, y_train = digits_data()
    model = _guide_regression_model()
    snapshots = _Snapshots()
    # The guide's steps_per_epoch=5 over MNIST: 5 batches of 64 an epoch here.
    history = model.fit(
        x_train[:320],
        y_train[:320].astype("float32"),
        batch_size=64,
        epochs=30,
        verbose=0,
        callbacks=[snapshots, EarlyStoppingAtMinLoss()],
    )
    losses = history.history["loss"]
    assert len(losses) < 30, "the loss never went up: no early stop to test"
    best = int(np.argmin(losses))
    assert best == len(losses) - 2  # patience=0: stops at the first worse epoch
    for restored, saved in zip(model.get_weights(), snapshots.weights[best]):
        np.testing.assert_array_equal(restored, saved)
    assert not np.array_equal(model.get_weights()[0], snapshots.weights[-1][0])
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        "Restoring model weights from the end of the best epoch.",
        f"Epoch {len(losses)}: early stopping",
    ]


class CustomLearningRateScheduler(torchfit.callbacks.Callback):
    """Learning rate scheduler which sets the learning rate according to schedule.

    Arguments:
        schedule: a function that takes an epoch index
            (integer, indexed from 0) and current learning rate
            as inputs and returns a new learning rate as output (float).
    """

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self.model.optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        # Get the current learning rate from model's optimizer.
        lr = self.model.optimizer.learning_rate
        # Call schedule function to get the scheduled learning rate.
        scheduled_lr = self.schedule(epoch, lr)
        # Set the value back to the optimizer before this epoch starts
        self.model.optimizer.learning_rate = scheduled_lr
        print(f"\nEpoch {epoch}: Learning rate is {float(np.array(scheduled_lr))}.")


LR_SCHEDULE = [
    # (epoch to start, learning rate) tuples
    (3, 0.05),
    (6, 0.01),
    (9, 0.005),
    (12, 0.001),
]


def lr_schedule(epoch, lr):
    """Helper function to retrieve the scheduled learning rate based on epoch."""
    if epoch < LR_SCHEDULE[0][0] or epoch > LR_SCHEDULE[-1][0]:
        return lr
    for i in range(len(LR_SCHEDULE)):
        if epoch == LR_SCHEDULE[i][0]:
            return LR_SCHEDULE[i][1]
    return lr


def test_custom_learning_rate_scheduler_sets_the_rate_each_epoch_trains_with(capsys):
    torchfit.utils.set_random_seed(0)
    x_train, y_train = digits_data()
    model = _guide_regression_model()

    class Rates(torchfit.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.rates = []

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:  # the rate the epoch's steps use
                self.rates.append(self.model.optimizer.param_groups[0]["lr"])

    rates = Rates()
    model.fit(
        x_train[:320],
        y_train[:320].astype("float32"),
        batch_size=64,
        epochs=15,
        verbose=0,
        callbacks=[CustomLearningRateScheduler(lr_schedule), rates],
    )
    expected = [0.1] * 3 + [0.05] * 3 + [0.01] * 3 + [0.005] * 3 + [0.001] * 3
    assert rates.rates == pytest.approx(expected)
    out = capsys.readouterr().out
    assert "Epoch 3: Learning rate is 0.05." in out and "Epoch 14: Learning rate is 0.001." in out
