"""Keras guide patterns that depend on the model's weights and modes, on a real fit.

Sources: "Training & evaluation with the built-in methods" (EarlyStopping with
`restore_best_weights`), "Writing your own callbacks" (`EarlyStoppingAtMinLoss`,
which keeps the best weights with `get_weights`/`set_weights`), "Transfer
learning & fine-tuning" (`base_model(x, training=False)`) and "Customizing what
happens in fit()" (a `train_step` that adds its own logs). `keras.` becomes
`torchfit.`; the models are small torch modules.
"""

import numpy as np
import pytest
import torch
from guide_support import EarlyStoppingAtMinLoss, final_lines, log_keys
from torch import nn

import torchfit


def _line_data(n=16):
    """y = 2x on x in [0, 1): a one-weight model learns it in a few epochs."""
    x = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32)[:, None]
    return x, 2.0 * x


def _diverging_model():
    """Training loss falls for 3 epochs (learning rate 0.1), then rises (5.0: unstable)."""
    torch.manual_seed(0)
    model = torchfit.Model(nn.Linear(1, 1, bias=False), device="cpu")
    with torch.no_grad():
        model.module.weight.fill_(0.0)
    model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=0.1), loss="mse")
    schedule = torchfit.callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 if epoch < 3 else 5.0)
    return model, schedule


class WeightsAtEpochEnd(torchfit.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


class StopAt(torchfit.callbacks.Callback):
    """Another callback that ends the run."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.stop_training = True


def _assert_weights(model, expected):
    for value, wanted in zip(model.get_weights(), expected):
        np.testing.assert_array_equal(value, wanted)


def _best_epoch(losses):
    return int(np.argmin(losses))


# ------------------------------------- EarlyStopping(restore_best_weights=True)
@pytest.mark.parametrize(
    "early_stopping, extra, epochs_run",
    [
        (dict(monitor="loss", patience=2), [], 5),
        # No epoch beats the baseline: it runs `patience` epochs and restores the best of them.
        (dict(monitor="loss", patience=4, baseline=1e-9), [], 4),
        # Another callback stops the run: the best weights are restored all the same.
        (dict(monitor="loss", patience=10), [StopAt(4)], 5),
    ],
)
def test_early_stopping_restores_the_best_weights_not_the_last(early_stopping, extra, epochs_run):
    model, schedule = _diverging_model()
    recorder = WeightsAtEpochEnd()
    callback = torchfit.callbacks.EarlyStopping(restore_best_weights=True, **early_stopping)
    history = model.fit(
        *_line_data(),
        batch_size=4,
        epochs=20,
        verbose=0,
        callbacks=[schedule, recorder, callback, *extra],
    )
    losses = history.history["loss"]
    assert len(losses) == epochs_run
    best = _best_epoch(losses)
    assert best == 2 and losses[-1] > losses[best]
    _assert_weights(model, recorder.weights[best])
    assert not np.array_equal(model.get_weights()[0], recorder.weights[-1][0])


# ----------------------- "Writing your own callbacks": EarlyStoppingAtMinLoss


def test_early_stopping_at_min_loss_keeps_the_best_weights(capsys):
    model, schedule = _diverging_model()
    recorder = WeightsAtEpochEnd()
    history = model.fit(
        *_line_data(),
        batch_size=4,
        epochs=30,
        verbose=0,
        callbacks=[schedule, recorder, EarlyStoppingAtMinLoss(patience=1)],
    )
    assert len(history.history["loss"]) == 4
    _assert_weights(model, recorder.weights[2])
    assert capsys.readouterr().out.splitlines() == [
        "Restoring model weights from the end of the best epoch.",
        "Epoch 4: early stopping",
    ]


# ------------------------------------------ Transfer learning & fine-tuning
class TransferModel(torchfit.Model):
    """inputs -> base_model(x, training=False) -> Dropout(0.2) -> Dense(1), as in the guide."""

    def __init__(self, base_model):
        super().__init__(device="cpu")
        self.base_model = base_model
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(8, 1)

    def forward(self, inputs):
        # We make sure that the base_model is running in inference mode here,
        # by passing `training=False`. This is important for fine-tuning.
        x = self.base_model(inputs, training=False)
        return self.head(self.dropout(x))


def _record_modes(module, into):
    module.register_forward_hook(lambda m, args, output: into.append(m.training))


def test_transfer_learning_keeps_the_base_model_in_inference_mode_while_fine_tuning():
    torch.manual_seed(0)
    base_model = torchfit.Model(
        nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU()), device="cpu"
    )
    # Pretend it was trained: running statistics far from the fresh ones.
    with torch.no_grad():
        base_model.module[1].running_mean.fill_(0.5)
        base_model.module[1].running_var.fill_(2.0)
    statistics = [
        base_model.module[1].running_mean.clone(),
        base_model.module[1].running_var.clone(),
    ]
    batch_norm_modes, dropout_modes = [], []
    _record_modes(base_model.module[1], batch_norm_modes)
    model = TransferModel(base_model)
    _record_modes(model.dropout, dropout_modes)
    rng = np.random.default_rng(0)
    x = rng.random((32, 3), dtype=np.float32)
    y = x.sum(axis=1, keepdims=True)

    # Freeze the base_model and train the top layer.
    for parameter in base_model.parameters():
        parameter.requires_grad_(False)
    frozen = [np.array(w, copy=True) for w in base_model.get_weights()]
    model.compile(optimizer=torchfit.optimizers.Adam(), loss="mse")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for old, new in zip(frozen, base_model.get_weights()):
        np.testing.assert_array_equal(old, new)

    # Unfreeze the base_model and fine-tune end to end with a low learning rate:
    # its weights move, its BatchNormalization still runs in inference mode.
    for parameter in base_model.parameters():
        parameter.requires_grad_(True)
    model.compile(optimizer=torchfit.optimizers.Adam(1e-5), loss="mse")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert not np.array_equal(frozen[0], base_model.get_weights()[0])
    torch.testing.assert_close(base_model.module[1].running_mean, statistics[0], rtol=0, atol=0)
    torch.testing.assert_close(base_model.module[1].running_var, statistics[1], rtol=0, atol=0)
    assert batch_norm_modes == [False] * 16
    assert dropout_modes == [True] * 16  # the new top trains with its dropout on


# ------------------------------- Customizing fit(): a train_step with extra logs
class CustomModel(torchfit.Model):
    def __init__(self):
        super().__init__(device="cpu")
        self.dense = nn.Linear(3, 1)

    def forward(self, x):
        return self.dense(x)

    def train_step(self, data):
        logs = super().train_step(data)
        logs["my_metric"] = 10.0
        logs["grad_free_mean"] = self.dense.weight.detach().mean()  # a tensor, read when logged
        return logs


def test_a_train_step_with_extra_logs(capsys):
    torch.manual_seed(0)
    model = CustomModel()
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    rng = np.random.default_rng(0)
    x = rng.random((64, 3), dtype=np.float32)
    y = rng.random((64, 1), dtype=np.float32)
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=1)
    assert sorted(history.history) == ["grad_free_mean", "loss", "mae", "my_metric"]
    assert history.history["my_metric"] == [10.0] * 3
    last = history.history["grad_free_mean"][-1]
    assert last == pytest.approx(float(model.dense.weight.mean()), rel=1e-6)
    bars = final_lines(capsys.readouterr().out)
    assert [log_keys(bar) for bar in bars] == [["grad_free_mean", "loss", "mae", "my_metric"]] * 3
