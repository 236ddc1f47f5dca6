"""fit / evaluate / predict / *_on_batch: every argument and every kind of data."""

import copy
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import torchfit
from torchfit.callbacks import Callback


def _data(n=16, features=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, features), dtype=np.float32)
    y = (x @ np.arange(1, features + 1, dtype=np.float32))[:, None]
    return x, y


class Recording(torchfit.Model):
    """Records the batches its default steps receive."""

    def __init__(self, features=3):
        super().__init__(nn.Linear(features, 1), device="cpu")
        self.train_batches = []
        self.test_batches = []

    def train_step(self, data):
        self.train_batches.append(data)
        return super().train_step(data)

    def test_step(self, data):
        self.test_batches.append(data)
        return super().test_step(data)

    def train_ids(self):
        """The first feature of every training sample, batch by batch."""
        return [batch[0][:, 0].tolist() for batch in self.train_batches]

    def test_ids(self):
        return [batch[0][:, 0].tolist() for batch in self.test_batches]


def _recording(**compile_kwargs):
    torch.manual_seed(0)
    model = Recording()
    model.compile(**{"optimizer": "sgd", "loss": "mse", **compile_kwargs})
    return model


def _indexed(n):
    """x whose first feature is the sample index; y = 0."""
    x = np.zeros((n, 3), "float32")
    x[:, 0] = np.arange(n)
    return x, np.zeros((n, 1), "float32")


class StepCounter(Callback):
    def __init__(self):
        super().__init__()
        self.train, self.test, self.predict, self.epochs = [], [], [], []

    def on_train_batch_end(self, batch, logs=None):
        self.train.append(batch)

    def on_test_batch_end(self, batch, logs=None):
        self.test.append(batch)

    def on_predict_batch_end(self, batch, logs=None):
        self.predict.append(batch)

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)


# ------------------------------------------------------------------ fit args
def test_batch_size_defaults_to_32_and_keeps_the_last_partial_batch():
    model = _recording()
    model.fit(*_indexed(100), verbose=0)
    assert [len(ids) for ids in model.train_ids()] == [32, 32, 32, 4]
    model.train_batches.clear()
    model.fit(*_indexed(100), batch_size=40, verbose=0)
    assert [len(ids) for ids in model.train_ids()] == [40, 40, 20]


def test_epochs_and_initial_epoch_set_history_epochs():
    model = _recording()
    history = model.fit(*_data(), epochs=3, verbose=0)
    assert history.epoch == [0, 1, 2]
    assert len(history.history["loss"]) == 3
    assert model.history is history
    history = model.fit(*_data(), epochs=5, initial_epoch=3, verbose=0)
    assert history.epoch == [3, 4]
    assert history.params == {"verbose": 0, "epochs": 5, "steps": 1}


@pytest.mark.parametrize("epochs, initial_epoch", [(2, 5), (5, 5)])
def test_an_initial_epoch_past_epochs_warns_that_nothing_trains(epochs, initial_epoch):
    model = _recording()
    before = [np.array(w, copy=True) for w in model.get_weights()]
    with pytest.warns(
        UserWarning,
        match=rf"fit\(epochs={epochs}, initial_epoch={initial_epoch}\) trains"
        rf" nothing: `epochs` is the index of the epoch to stop at",
    ):
        history = model.fit(*_data(), epochs=epochs, initial_epoch=initial_epoch, verbose=0)
    assert history.epoch == []
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_fit_returns_loss_going_down():
    torch.manual_seed(0)
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=0.1), loss="mse", metrics=["mae"])
    history = model.fit(*_data(64), batch_size=8, epochs=5, verbose=0)
    assert sorted(history.history) == ["loss", "mae"]
    assert history.history["loss"][-1] < history.history["loss"][0] / 2


def test_counts_may_be_numpy_integers():
    # One check for every count: NumPy ints pass wherever Python ints do, as in Keras.
    model = _recording()
    x, y = _data()
    history = model.fit(
        x,
        y,
        epochs=np.int64(3),
        batch_size=np.int64(4),
        steps_per_epoch=np.int32(2),
        validation_data=(x, y),
        validation_freq=np.int64(2),
        verbose=0,
    )
    assert history.epoch == [0, 1, 2] and len(history.history["val_loss"]) == 1
    assert [len(batch[0]) for batch in model.train_batches] == [4] * 6


def test_bad_counts_are_errors():
    model = _recording()
    x, y = _data()
    with pytest.raises(ValueError, match=r"`epochs` must be an integer >= 0. Received: epochs=1.5"):
        model.fit(x, y, epochs=1.5, verbose=0)
    with pytest.raises(
        ValueError, match=r"`steps_per_epoch` must be an integer >= 1. Received: steps_per_epoch=0"
    ):
        model.fit(x, y, steps_per_epoch=0, verbose=0)
    with pytest.raises(ValueError, match=r"`validation_steps` must be an integer >= 1"):
        model.fit(x, y, validation_steps=-1, verbose=0)
    with pytest.raises(ValueError, match=r"`steps` must be an integer >= 1"):
        model.evaluate(x, y, steps=0, verbose=0)
    with pytest.raises(ValueError, match=r"batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)


# ------------------------------------------------------------------ verbose
def test_verbose_0_prints_nothing(capsys):
    model = _recording()
    model.fit(*_data(), epochs=2, verbose=0, validation_data=_data(4))
    model.evaluate(*_data(), verbose=0)
    model.predict(_data()[0], verbose=0)
    assert capsys.readouterr().out == ""


def test_verbose_1_prints_keras_3_progress_bars(capsys):
    model = _recording(metrics=["mae"])
    model.fit(*_data(), batch_size=4, epochs=2, verbose=1, validation_data=_data(4))
    out = capsys.readouterr().out
    lines = [line for line in out.replace("\r", "\n").splitlines() if line.strip()]
    assert lines[0] == "Epoch 1/2"
    assert "Epoch 2/2" in lines
    # Off a terminal a redraw is a new line, and a slow machine may redraw the bar at
    # step 4 before the epoch's final line: the final lines are those with val_ keys.
    final = [
        line for line in lines if line.startswith("4/4 ━━━━━━━━━━━━━━━━━━━━ ") and "val_" in line
    ]
    assert len(final) == 2
    # Sorted keys, validation included, %.4f values.
    assert final[0].split(" - ", 1)[1].split(": ")[0] == "loss"
    keys = [part.split(":")[0] for part in final[0].split(" - ")[1:]]
    assert keys == ["loss", "mae", "val_loss", "val_mae"]
    assert "/step" in final[0]


def test_verbose_2_prints_one_line_per_epoch(capsys):
    model = _recording()
    model.fit(*_data(), batch_size=4, epochs=2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    assert len(lines) == 4
    assert re.fullmatch(
        r"4/4 - \d+s - \d+(us|ms|s)/step - loss: \d+\.\d{4}(e[+-]\d\d)?", lines[1]
    ), lines[1]


def test_verbose_auto_is_2_when_stdout_is_no_terminal(capsys):
    model = _recording()
    model.fit(*_data(), batch_size=4, epochs=1)
    out = capsys.readouterr().out
    assert out.startswith("4/4 - ")
    assert "━" not in out
    assert out.count("\n") == 1


def test_single_epoch_prints_no_epoch_header_and_evaluate_predict_have_bars(capsys):
    model = _recording()
    model.fit(*_data(), batch_size=4, verbose=2)
    model.evaluate(*_data(), batch_size=8, verbose=2)
    model.predict(_data()[0], batch_size=8, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["4/4", "2/2", "2/2"]
    assert "Epoch" not in "".join(lines)


@pytest.mark.parametrize("method", ["evaluate", "predict"])
def test_verbose_1_gives_evaluate_and_predict_a_progress_bar(capsys, method):
    model = _recording()
    x, y = _data()
    if method == "evaluate":
        model.evaluate(x, y, batch_size=8, verbose=1)
    else:
        model.predict(x, batch_size=8, verbose=1)
    lines = [
        line for line in capsys.readouterr().out.replace("\r", "\n").splitlines() if line.strip()
    ]
    assert lines and lines[-1].startswith("2/2 ━━━━━━━━━━━━━━━━━━━━ "), lines
    assert ("loss: " in lines[-1]) == (method == "evaluate")


def test_bad_verbose_is_an_error():
    with pytest.raises(
        ValueError, match=r'`verbose` must be 0, 1, 2 or "auto". Received: verbose=3'
    ):
        _recording().fit(*_data(), verbose=3)


# ---------------------------------------------------------------- callbacks
def test_callbacks_get_the_model_and_params():
    seen = {}

    class Spy(Callback):
        def on_train_begin(self, logs=None):
            seen["model"] = self.model
            seen["params"] = dict(self.params)

        def on_epoch_end(self, epoch, logs=None):
            seen.setdefault("logs", []).append(dict(logs))

    model = _recording()
    model.fit(
        *_data(), batch_size=4, epochs=2, verbose=0, callbacks=[Spy()], validation_data=_data(8)
    )
    assert seen["model"] is model
    assert seen["params"] == {"verbose": 0, "epochs": 2, "steps": 4}
    assert [sorted(logs) for logs in seen["logs"]] == [["loss", "val_loss"]] * 2


def test_a_callback_can_stop_training():
    class Stop(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    history = _recording().fit(*_data(), epochs=10, verbose=0, callbacks=[Stop()])
    assert history.epoch == [0, 1]


# ------------------------------------------------------ calls inside fit
class _ModeSpy(torchfit.Model):
    """Records, at every train step, whether each of its modules is in train mode."""

    def __init__(self):
        super().__init__(
            nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 1)), device="cpu"
        )
        self.step_modes = []

    def train_step(self, data):
        self.step_modes.append(all(module.training for module in self.modules()))
        return super().train_step(data)


class _CallsMidEpoch(Callback):
    """Calls evaluate/predict (and their *_on_batch twins) around every train batch."""

    def __init__(self, x, y, hook="on_train_batch_end"):
        super().__init__()
        self.x, self.y = x, y
        setattr(self, hook, self._call_them)

    def _call_them(self, batch, logs=None):
        self.model.evaluate(self.x, self.y, verbose=0)
        self.model.predict(self.x, verbose=0)
        self.model.test_on_batch(self.x, self.y)
        self.model.predict_on_batch(self.x)


def test_every_train_step_runs_in_train_mode_around_evaluate_and_predict_from_a_callback():
    torch.manual_seed(0)
    model = _ModeSpy()
    model.compile(optimizer="sgd", loss="mse")
    x, y = _data(16)
    model.fit(x, y, batch_size=4, epochs=2, callbacks=[_CallsMidEpoch(x, y)], verbose=0)
    assert model.step_modes == [True] * 8
    # Outside fit too, evaluate and predict leave the mode as they found it.
    model.train()
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert all(module.training for module in model.modules())


def _history_with(callbacks, metrics=("mae",)):
    torch.manual_seed(0)
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    model.compile(optimizer="sgd", loss="mse", metrics=list(metrics))
    return model.fit(
        *_data(16), batch_size=4, epochs=2, shuffle=False, callbacks=callbacks, verbose=0
    ).history


@pytest.mark.parametrize("hook", ["on_train_batch_end", "on_train_batch_begin"])
def test_evaluate_from_a_batch_callback_leaves_the_epoch_metrics_alone(hook):
    # Keras resets and updates the training metrics there (epoch loss 46.5 for 0.52); torchfit
    # does not, also before the first step has built the compiled metrics.
    torchmetrics = pytest.importorskip("torchmetrics")
    far_x, far_y = _data(8, seed=3)
    calls = _CallsMidEpoch(far_x * 10, far_y * 10, hook)
    history = _history_with([calls], ("mae", torchmetrics.MeanSquaredError()))
    expected = _history_with([], ("mae", torchmetrics.MeanSquaredError()))
    assert sorted(history) == ["loss", "mae", "mean_squared_error"]
    for key in history:
        assert history[key] == pytest.approx(expected[key], rel=1e-6)


class _ExtraLogs(torchfit.Model):
    """The Keras guide's custom step: super()'s logs plus keys of its own."""

    def __init__(self):
        super().__init__(nn.Linear(3, 1), device="cpu")

    def train_step(self, data):
        logs = super().train_step(data)
        logs["my_metric"] = 10.0
        logs["scale"] = torch.tensor(3.0)
        return logs

    def test_step(self, data):
        logs = super().test_step(data)
        logs["my_metric"] = 20.0
        return logs


def test_extra_keys_of_a_custom_step_reach_history_progress_bar_and_evaluate(capsys):
    torch.manual_seed(0)
    model = _ExtraLogs()
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x, y = _data(16)
    history = model.fit(
        x, y, batch_size=4, epochs=2, shuffle=False, validation_data=(x, y), verbose=2
    ).history
    assert sorted(history) == [
        "loss",
        "mae",
        "my_metric",
        "scale",
        "val_loss",
        "val_mae",
        "val_my_metric",
    ]
    assert history["my_metric"] == [10.0, 10.0] and history["scale"] == [3.0, 3.0]
    assert history["val_my_metric"] == [20.0, 20.0]
    # The metric values are still the epoch's means, as without the extra keys.
    plain = _history_with([])
    assert history["loss"] == pytest.approx(plain["loss"], rel=1e-6)
    assert history["mae"] == pytest.approx(plain["mae"], rel=1e-6)
    lines = capsys.readouterr().out.splitlines()
    assert " - my_metric: 10.0000 - scale: 3.0000 - val_loss: " in lines[1]
    loss, mae, my_metric = model.evaluate(x, y, verbose=0)  # extra keys come last, sorted
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert my_metric == 20.0 and logs == {"loss": loss, "mae": mae, "my_metric": 20.0}


class _PlainCalls(torchfit.Model):
    """Steps that call the model without `training=`: the loop's mode decides."""

    def test_step(self, data):
        x, y = data
        self._loss_tracker.update_state(((self(x) - y) ** 2).mean())
        return self.get_metrics_result()

    def predict_step(self, data):
        return self(data[0])


@pytest.mark.parametrize("load", [True, False])
def test_evaluate_and_predict_run_a_model_fresh_from_load_model_in_eval_mode(tmp_path, load):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 1))
    model = torchfit.Model(net, device="cpu")
    model.compile(optimizer="sgd", loss="mse")
    model.fit(*_data(16), batch_size=4, verbose=0)
    model.save(tmp_path / "model.pt")
    if load:
        loaded = torchfit.models.load_model(tmp_path / "model.pt")
    else:  # the same, with steps that leave the mode to evaluate/predict
        loaded = _PlainCalls(copy.deepcopy(net).train(), device="cpu")
        loaded.compile(optimizer="sgd", loss="mse")
    assert loaded.training  # a new module is in train mode: dropout on, statistics updated
    statistics = loaded.module[1].running_mean.clone()
    x, y = _data(8, seed=1)
    reference = copy.deepcopy(loaded.module).eval()
    expected = reference(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6)
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(
        float(((expected - y) ** 2).mean()), rel=1e-5
    )
    torch.testing.assert_close(loaded.module[1].running_mean, statistics, rtol=0, atol=0)
    assert all(module.training for module in loaded.modules())  # left as found


def test_ema_weights_are_copied_into_the_model_at_the_end_of_fit():
    class LastWeights(Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.steps.append([p.detach().clone() for p in self.model.parameters()])

    recorder = LastWeights()
    recorder.steps = []
    torch.manual_seed(0)
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    model.compile(
        optimizer=torchfit.optimizers.SGD(learning_rate=0.1, use_ema=True, ema_momentum=0.5),
        loss="mse",
    )
    model.fit(*_data(16), batch_size=4, epochs=2, callbacks=[recorder], verbose=0)
    # Keras's EMA: the first step's weights, then average = 0.5 * average + 0.5 * weights.
    averages = recorder.steps[0]
    for weights in recorder.steps[1:]:
        averages = [0.5 * average + 0.5 * weight for average, weight in zip(averages, weights)]
    for parameter, average, last in zip(model.parameters(), averages, recorder.steps[-1]):
        torch.testing.assert_close(parameter.detach(), average)
        assert not torch.allclose(parameter.detach(), last)


# ---------------------------------------------------------- validation args
def test_validation_split_takes_the_last_fraction_before_shuffling():
    model = _recording()
    history = model.fit(
        *_indexed(10), batch_size=4, validation_split=0.2, shuffle=True, epochs=2, verbose=0
    )
    assert model.test_ids() == [[8.0, 9.0], [8.0, 9.0]]
    trained = sorted(i for ids in model.train_ids()[:2] for i in ids)
    assert trained == list(range(8))
    assert "val_loss" in history.history


def test_validation_split_keeps_sample_weights_aligned():
    model = _recording()
    x, y = _indexed(10)
    weights = np.arange(10, dtype="float32")
    model.fit(
        x, y, sample_weight=weights, validation_split=0.5, shuffle=False, batch_size=5, verbose=0
    )
    (train_x, _, train_w), (val_x, _, val_w) = model.train_batches[0], model.test_batches[0]
    assert train_x[:, 0].tolist() == train_w.tolist() == [0, 1, 2, 3, 4]
    assert val_x[:, 0].tolist() == val_w.tolist() == [5, 6, 7, 8, 9]


def test_validation_split_works_with_pandas():
    model = _recording()
    x, y = _indexed(10)
    model.fit(pd.DataFrame(x), pd.Series(y[:, 0]), validation_split=0.3, verbose=0)
    assert model.test_ids() == [[7.0, 8.0, 9.0]]


@pytest.mark.parametrize("kind", ["DataLoader", "Dataset", "generator"])
def test_validation_split_with_other_data_is_an_error(kind):
    x, y = _data(8)
    tensors = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    data = {
        "DataLoader": DataLoader(tensors, batch_size=4),
        "Dataset": _MapDataset(x, y),
        "generator": iter([(x, y)]),
    }[kind]
    with pytest.raises(
        ValueError,
        match=r"`validation_split` needs arrays or tensors.*Received data of type"
        r" .*Pass `validation_data=\(x_val, y_val\)` instead",
    ):
        _recording().fit(data, validation_split=0.2, verbose=0)


@pytest.mark.parametrize("split", [0.99, 1.0, 1.5, -0.1])
def test_validation_split_out_of_range_or_empty_part(split):
    with pytest.raises(ValueError, match=r"validation_split"):
        _recording().fit(*_data(8), validation_split=split, verbose=0)


def test_validation_data_overrides_validation_split():
    model = _recording()
    x_val, y_val = _indexed(3)
    model.fit(*_indexed(10), validation_split=0.5, validation_data=(x_val + 100, y_val), verbose=0)
    assert model.test_ids() == [[100.0, 101.0, 102.0]]
    assert len(model.train_ids()[0]) == 10


def test_validation_data_with_sample_weights():
    model = _recording()
    x, y = _data(8)
    weights = np.zeros(8, "float32")
    weights[0] = 8.0
    history = model.fit(x, y, batch_size=8, validation_data=(x, y, weights), verbose=0)
    assert model.test_batches[0][2].tolist() == weights.tolist()
    prediction = model.predict(x[:1], verbose=0)
    # sum_over_batch_size: sum(loss * w) / N.
    assert history.history["val_loss"][0] == pytest.approx(
        float((prediction[0, 0] - y[0, 0]) ** 2), rel=1e-4
    )


def test_validation_data_bad_tuple_is_an_error():
    x, y = _data(8)
    with pytest.raises(
        ValueError, match=r"`validation_data` must be `\(x_val, y_val\)` or .* a tuple of length 4"
    ):
        _recording().fit(x, y, validation_data=(x, y, y, y), verbose=0)


def test_validation_data_as_a_list_is_read_as_x_y():
    # Keras reads [x_val, y_val] as (x_val, y_val); it used to reach forward as two inputs.
    x, y = _data(8)
    x_val, y_val = _data(4, seed=1)
    model = _recording()
    history = model.fit(x, y, validation_data=[x_val, y_val], verbose=0)
    assert history.history["val_loss"] == [
        pytest.approx(model.evaluate(x_val, y_val, verbose=0), rel=1e-6)
    ]


@pytest.mark.parametrize("kind", ["DataLoader", "Dataset", "generator_function", "Sequence"])
def test_validation_data_of_any_kind(kind):
    x, y = _indexed(8)
    data = {
        "DataLoader": DataLoader(
            TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=4
        ),
        "Dataset": _MapDataset(x, y),
        "generator_function": _Batches(x, y, 4),
        "Sequence": _BatchSequence(x, y, 4),
    }[kind]
    model = _recording()
    history = model.fit(
        *_data(), epochs=2, validation_data=data, verbose=0, validation_batch_size=4
    )
    assert len(history.history["val_loss"]) == 2
    # Each validation run starts from the beginning of the data.
    assert sorted(i for ids in model.test_ids()[: len(model.test_ids()) // 2] for i in ids) == list(
        range(8)
    )


def test_validation_steps_limits_each_validation_run_and_restarts_it():
    model = _recording()
    val = DataLoader(TensorDataset(*map(torch.from_numpy, _indexed(20))), batch_size=4)
    model.fit(*_data(), epochs=2, validation_data=val, validation_steps=2, verbose=0)
    assert model.test_ids() == [[0, 1, 2, 3], [4, 5, 6, 7]] * 2


def test_validation_batch_size_defaults_to_batch_size():
    model = _recording()
    model.fit(*_data(), batch_size=5, validation_data=_indexed(10), verbose=0)
    assert [len(ids) for ids in model.test_ids()] == [5, 5]
    model.test_batches.clear()
    model.fit(
        *_data(), batch_size=5, validation_data=_indexed(10), validation_batch_size=3, verbose=0
    )
    assert [len(ids) for ids in model.test_ids()] == [3, 3, 3, 1]


def test_validation_freq_as_int_and_as_list():
    model = _recording()
    history = model.fit(*_data(), epochs=6, validation_data=_data(4), validation_freq=2, verbose=0)
    assert len(history.history["val_loss"]) == 3
    assert len(model.test_batches) == 3
    model.test_batches.clear()

    class Epochs(Callback):
        validated = []

        def on_epoch_end(self, epoch, logs=None):
            if "val_loss" in logs:
                self.validated.append(epoch)

    model.fit(
        *_data(),
        epochs=5,
        validation_data=_data(4),
        validation_freq=[1, 4, 5],
        callbacks=[Epochs()],
        verbose=0,
    )
    # Epochs in validation_freq count from 1; hooks count from 0.
    assert Epochs.validated == [0, 3, 4]


class _ValidatedEpochs(Callback):
    def __init__(self):
        super().__init__()
        self.validated = []

    def on_epoch_end(self, epoch, logs=None):
        self.validated.append("val_loss" in logs)


@pytest.mark.parametrize(
    "epochs, freq, validated",
    [
        (3, 3, [False, False, True]),  # counted from 1: the last epoch validates, not the first
        (4, 2, [False, True, False, True]),
        (3, 1, [True, True, True]),
    ],
)
def test_validation_freq_int_validates_every_nth_epoch_counted_from_1(epochs, freq, validated):
    epochs_seen = _ValidatedEpochs()
    _recording().fit(
        *_data(),
        epochs=epochs,
        validation_data=_data(4),
        validation_freq=freq,
        callbacks=[epochs_seen],
        verbose=0,
    )
    assert epochs_seen.validated == validated


@pytest.mark.parametrize("freq", ["2", 0, -1, [0, 2], True])
def test_bad_validation_freq_is_an_error(freq):
    # 0 was a ZeroDivisionError at the end of the first epoch.
    message = (
        r"`validation_freq` must be an int >= 1 .* or a list .*"
        rf" Received: validation_freq={re.escape(repr(freq))}\."
    )
    with pytest.raises(ValueError, match=message):
        _recording().fit(*_data(), validation_data=_data(4), validation_freq=freq, verbose=0)


# ------------------------------------------------------------------ shuffle
def test_shuffle_false_keeps_the_order():
    model = _recording()
    model.fit(*_indexed(10), batch_size=4, shuffle=False, epochs=2, verbose=0)
    assert model.train_ids() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] * 2


def test_shuffle_true_reshuffles_every_epoch():
    torch.manual_seed(0)
    model = _recording()
    model.fit(*_indexed(32), batch_size=32, shuffle=True, epochs=2, verbose=0)
    first, second = model.train_ids()
    assert sorted(first) == sorted(second) == list(range(32))
    assert first != list(range(32)) and first != second


def test_shuffle_batch_shuffles_inside_batch_sized_chunks():
    torch.manual_seed(0)
    model = _recording()
    model.fit(*_indexed(12), batch_size=4, shuffle="batch", epochs=3, verbose=0)
    epochs = [model.train_ids()[i : i + 3] for i in range(0, 9, 3)]
    for batches in epochs:
        # Each batch is one chunk of 4 consecutive samples, in some order.
        assert sorted(tuple(sorted(ids)) for ids in batches) == [
            (0, 1, 2, 3),
            (4, 5, 6, 7),
            (8, 9, 10, 11),
        ]
    assert (
        any(ids != sorted(ids) for batches in epochs for ids in batches) or epochs[0] != epochs[1]
    )


def test_bad_shuffle_is_an_error():
    with pytest.raises(
        ValueError, match=r'`shuffle` must be True, False or "batch". Received: shuffle=\'yes\''
    ):
        _recording().fit(*_data(), shuffle="yes", verbose=0)


# --------------------------------------------------------- weighting args
def _classifier():
    torch.manual_seed(0)
    model = torchfit.Model(nn.Sequential(nn.Linear(3, 3), nn.Softmax(dim=-1)), device="cpu")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def test_class_weight_equals_the_matching_sample_weight():
    x = _data(12)[0]
    y = np.array([0, 1, 2] * 4)
    class_weight = {0: 1.0, 1: 3.0, 2: 0.5}
    by_class = _classifier().fit(
        x, y, class_weight=class_weight, batch_size=4, shuffle=False, epochs=2, verbose=0
    )
    by_sample = _classifier().fit(
        x,
        y,
        sample_weight=np.array([class_weight[int(c)] for c in y]),
        batch_size=4,
        shuffle=False,
        epochs=2,
        verbose=0,
    )
    np.testing.assert_allclose(by_class.history["loss"], by_sample.history["loss"], rtol=1e-6)
    unweighted = _classifier().fit(x, y, batch_size=4, shuffle=False, epochs=2, verbose=0)
    assert unweighted.history["loss"][0] != pytest.approx(by_class.history["loss"][0])


def test_class_weight_with_one_hot_targets_and_missing_classes():
    x = _data(6)[0]
    labels = np.array([0, 1, 2, 0, 1, 2])
    model = _classifier()
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    # Class 2 is absent: weight 1.0, as in Keras.
    model.fit(
        x, np.eye(3)[labels], class_weight={0: 0.0, 1: 0.0}, batch_size=6, shuffle=False, verbose=0
    )
    model2 = _classifier()
    model2.compile(optimizer="sgd", loss="categorical_crossentropy")
    model2.fit(
        x,
        np.eye(3)[labels],
        sample_weight=(labels == 2).astype("float32"),
        batch_size=6,
        shuffle=False,
        verbose=0,
    )
    for a, b in zip(model.get_weights(), model2.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_class_weight_with_several_outputs_is_an_error():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(3, 2)

        def forward(self, x):
            return torch.softmax(self.a(x), -1), torch.softmax(self.b(x), -1)

    model = torchfit.Model(Two(), device="cpu")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = _data(4)[0]
    with pytest.raises(
        ValueError,
        match=r"class_weight is only supported for single-output models:"
        r" received `y` with 2 outputs",
    ):
        model.fit(x, [np.zeros(4), np.zeros(4)], class_weight={0: 1.0, 1: 2.0}, verbose=0)


def test_class_weight_and_sample_weight_together_is_an_error():
    x, y = _data(4)[0], np.zeros(4)
    with pytest.raises(
        ValueError, match=r"class_weight.*sample_weight|sample_weight.*class_weight"
    ):
        _classifier().fit(x, y, class_weight={0: 2.0}, sample_weight=np.ones(4), verbose=0)


def test_sample_weight_weights_the_loss_only():
    torch.manual_seed(0)
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    model.compile(optimizer="sgd", loss="mse", metrics=["mse"], weighted_metrics=["mae"])
    x, y = _data(4)
    weights = np.array([1.0, 0.0, 0.0, 0.0], "float32")
    logs = model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    errors = model.predict(x, verbose=0) - y
    assert logs["loss"] == pytest.approx(float(errors[0, 0] ** 2 / 4), rel=1e-5)
    assert logs["mse"] == pytest.approx(float((errors**2).mean()), rel=1e-5)
    assert logs["mae"] == pytest.approx(float(abs(errors[0, 0])), rel=1e-5)


def _weights(model):
    """A snapshot that cannot move with training, whatever get_weights returns."""
    return [np.array(w, copy=True) for w in model.get_weights()]


def _changed(before, model):
    return any(not np.array_equal(old, new) for old, new in zip(before, model.get_weights()))


@pytest.mark.parametrize(
    "weights, trains", [(np.zeros(4), False), (np.array([0.0, 0.0, 0.0, 0.5]), True)]
)
def test_zero_sample_weights_leave_the_weights_unchanged(weights, trains):
    # Fails when the loss ignores sample_weight: the all-zero weights would train.
    model = _recording()
    before = _weights(model)
    x, y = _data(4)
    model.fit(x, y, sample_weight=weights.astype("float32"), verbose=0)
    assert _changed(before, model) is trains


# ----------------------------------------------------------------- steps
def test_steps_per_epoch_does_not_reset_a_finite_iterator_between_epochs():
    model = _recording()
    loader = DataLoader(TensorDataset(*map(torch.from_numpy, _indexed(24))), batch_size=4)
    history = model.fit(loader, epochs=3, steps_per_epoch=2, verbose=0)
    assert len(history.epoch) == 3
    assert model.train_ids() == [[4 * b + i for i in range(4)] for b in range(6)]


def test_steps_per_epoch_with_arrays_wraps_to_a_new_pass():
    model = _recording()
    counter = StepCounter()
    model.fit(
        *_indexed(12),
        batch_size=4,
        shuffle=False,
        epochs=3,
        steps_per_epoch=2,
        callbacks=[counter],
        verbose=0,
    )
    ids = model.train_ids()
    assert ids[:3] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert all(len(batch) == 4 for batch in ids)


def test_endless_generator_needs_steps_per_epoch():
    def endless():
        x, y = _data(4)
        while True:
            yield x, y

    model = _recording()
    counter = StepCounter()
    history = model.fit(endless(), epochs=3, steps_per_epoch=5, callbacks=[counter], verbose=0)
    assert history.epoch == [0, 1, 2]
    assert counter.train == [0, 1, 2, 3, 4] * 3
    assert history.params["steps"] == 5


def test_a_generator_read_once_ends_training_with_a_warning():
    x, y = _data(8)
    model = _recording()
    batches = ((x[i : i + 4], y[i : i + 4]) for i in range(0, 8, 4))
    with pytest.warns(UserWarning, match=r"ran out of data"):
        history = model.fit(batches, epochs=3, verbose=0)
    assert history.epoch == [0]
    assert len(model.train_batches) == 2


def test_evaluate_and_predict_steps():
    model = _recording()
    x, y = _indexed(20)
    counter = StepCounter()
    model.evaluate(x, y, batch_size=4, steps=2, callbacks=[counter], verbose=0)
    assert counter.test == [0, 1]
    predictions = model.predict(x, batch_size=4, steps=3, callbacks=[counter], verbose=0)
    assert counter.predict == [0, 1, 2]
    assert predictions.shape == (12, 1)


# --------------------------------------------------------------- evaluate
def test_evaluate_returns_scalar_list_or_dict():
    model = _recording()
    x, y = _data()
    loss = model.evaluate(x, y, verbose=0)
    assert isinstance(loss, float)
    model.compile(optimizer="sgd", loss="mse", metrics=["mae", "mse"])
    results = model.evaluate(x, y, verbose=0)
    assert isinstance(results, list) and len(results) == 3
    assert results[0] == pytest.approx(loss) and results[2] == pytest.approx(loss)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "mae", "mse"]
    assert results == [logs[name] for name in model.metrics_names]


def test_evaluate_rejects_unknown_keyword_arguments():
    with pytest.raises(
        TypeError, match=r"evaluate\(\) got unexpected keyword arguments: \['workers'\]"
    ):
        _recording().evaluate(*_data(), workers=2)


def test_evaluate_does_not_train():
    model = _recording()
    before = _weights(model)
    model.evaluate(*_data(), verbose=0)
    assert not _changed(before, model)
    model.fit(*_data(), verbose=0)
    assert _changed(before, model)  # the same snapshot sees a change when there is one


# ---------------------------------------------------------------- predict
def test_predict_returns_numpy_in_order():
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    model = torchfit.Model(net, device="cpu")
    x = _data(10)[0]
    predictions = model.predict(x, batch_size=3, verbose=0)
    assert isinstance(predictions, np.ndarray) and predictions.shape == (10, 2)
    np.testing.assert_allclose(predictions, net(torch.from_numpy(x)).detach().numpy(), rtol=1e-6)


def test_predict_with_several_outputs_returns_a_list_or_dict():
    class Outputs(nn.Module):
        def __init__(self, as_dict):
            super().__init__()
            self.as_dict = as_dict
            self.a, self.b = nn.Linear(3, 1), nn.Linear(3, 2)

        def forward(self, x):
            if self.as_dict:
                return {"score": self.a(x), "cls": self.b(x)}
            return [self.a(x), self.b(x)]

    x = _data(5)[0]
    as_list = torchfit.Model(Outputs(False), device="cpu").predict(x, batch_size=2, verbose=0)
    assert isinstance(as_list, list) and [p.shape for p in as_list] == [(5, 1), (5, 2)]
    as_dict = torchfit.Model(Outputs(True), device="cpu").predict(x, batch_size=2, verbose=0)
    assert {key: value.shape for key, value in as_dict.items()} == {"score": (5, 1), "cls": (5, 2)}
    assert all(isinstance(value, np.ndarray) for value in as_dict.values())


def test_predict_ignores_targets_in_batches():
    loader = DataLoader(TensorDataset(*map(torch.from_numpy, _data(6))), batch_size=4)
    assert torchfit.Model(nn.Linear(3, 1), device="cpu").predict(loader, verbose=0).shape == (6, 1)


def test_predict_batch_end_receives_the_outputs():
    received = []

    class Outputs(Callback):
        def on_predict_batch_end(self, batch, logs=None):
            received.append(logs["outputs"].shape)

    torchfit.Model(nn.Linear(3, 2), device="cpu").predict(
        _data(5)[0], batch_size=4, callbacks=[Outputs()], verbose=0
    )
    assert received == [(4, 2), (1, 2)]


def test_predict_on_empty_input_is_an_error():
    with pytest.raises(ValueError, match=r"yielded no batches"):
        torchfit.Model(nn.Linear(3, 2), device="cpu").predict(iter([]), verbose=0)


# --------------------------------------------------------------- *_on_batch
def test_train_on_batch_trains_one_step_and_resets_metrics():
    torch.manual_seed(0)
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x, y = _data(8)
    first = model.train_on_batch(x, y)
    assert isinstance(first, list) and len(first) == 2
    second = model.train_on_batch(x, y, return_dict=True)
    assert list(second) == ["loss", "mae"]
    assert second["loss"] < first[0]
    assert model.optimizer.iterations == 2
    # Metrics are reset per call: this is the loss of this batch alone.
    predictions_before = model.predict_on_batch(x)
    logs = model.test_on_batch(x, y, return_dict=True)
    assert logs["loss"] == pytest.approx(float(((predictions_before - y) ** 2).mean()), rel=1e-5)


def test_train_on_batch_reports_its_own_batch_alone():
    # Separates "reset first" from a running mean: the batches' losses differ a lot.
    torch.manual_seed(0)
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=0.0), loss="mse", metrics=["mae"])
    x, y = _data(8)
    far = model.train_on_batch(x, y + 100.0, return_dict=True)
    near = model.train_on_batch(x, y, return_dict=True)
    errors = model.predict_on_batch(x) - y
    assert near["loss"] == pytest.approx(float((errors**2).mean()), rel=1e-5)
    assert near["mae"] == pytest.approx(float(np.abs(errors).mean()), rel=1e-5)
    assert far["loss"] > 100 * near["loss"]


def test_train_on_batch_with_class_weight_and_sample_weight():
    x, y = _data(6)[0], np.array([0, 1, 2] * 2)
    weights = {0: 2.0, 1: 0.0, 2: 1.0}
    by_class = _classifier().train_on_batch(x, y, class_weight=weights)
    by_sample = _classifier().train_on_batch(x, y, sample_weight=np.array([weights[c] for c in y]))
    assert by_class == pytest.approx(by_sample, rel=1e-6)
    with pytest.raises(
        ValueError, match=r"`sample_weight` and `class_weight` cannot be given together"
    ):
        _classifier().train_on_batch(x, y, sample_weight=np.ones(6), class_weight=weights)


def test_test_on_batch_and_predict_on_batch_do_not_train():
    model = _recording(metrics=["mae"])
    before = _weights(model)
    x, y = _data(8)
    loss, mae = model.test_on_batch(x, y)
    predictions = model.predict_on_batch(x)
    assert isinstance(predictions, np.ndarray) and predictions.shape == (8, 1)
    assert mae == pytest.approx(float(np.abs(predictions - y).mean()), rel=1e-5)
    # sample_weight weighs the loss, not the (unweighted) compiled metrics.
    assert model.test_on_batch(x, y, sample_weight=np.zeros(8)) == [0.0, pytest.approx(mae)]
    assert not _changed(before, model)
    model.train_on_batch(x, y)
    assert _changed(before, model)


# ------------------------------------------------------------- data kinds
class _MapDataset(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index], self.y[index]


class _Batches:
    """An iterable of batches that restarts on every iter()."""

    def __init__(self, x, y, batch_size):
        self.x, self.y, self.batch_size = x, y, batch_size

    def __iter__(self):
        for start in range(0, len(self.x), self.batch_size):
            yield self.x[start : start + self.batch_size], self.y[start : start + self.batch_size]


class _BatchSequence(torchfit.utils.Sequence):
    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size
        self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        window = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[window], self.y[window]

    def on_epoch_end(self):
        self.epochs_ended += 1


def _fit_kind(kind):
    x, y = _indexed(8)
    return {
        "numpy": ((x, y), {"batch_size": 4}),
        "float64 numpy": ((x.astype("float64"), y.astype("float64")), {"batch_size": 4}),
        "tensors": ((torch.from_numpy(x), torch.from_numpy(y)), {"batch_size": 4}),
        "pandas": ((pd.DataFrame(x, columns=list("abc")), pd.Series(y[:, 0])), {"batch_size": 4}),
        "TensorDataset": (
            (TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),),
            {"batch_size": 4},
        ),
        "Dataset": ((_MapDataset(x, y),), {"batch_size": 4}),
        "DataLoader": ((DataLoader(_MapDataset(x, y), batch_size=4),), {}),
        "iterable": ((_Batches(x, y, 4),), {}),
        "Sequence": ((_BatchSequence(x, y, 4),), {}),
        "threaded Sequence": ((_BatchSequence(x, y, 4, workers=2),), {}),
    }[kind]


@pytest.mark.parametrize(
    "kind",
    [
        "numpy",
        "float64 numpy",
        "tensors",
        "pandas",
        "TensorDataset",
        "Dataset",
        "DataLoader",
        "iterable",
        "Sequence",
        "threaded Sequence",
    ],
)
def test_fit_evaluate_predict_on_every_data_kind(kind):
    args, kwargs = _fit_kind(kind)
    model = _recording()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shuffle ignored for loaders and iterables
        history = model.fit(*args, epochs=2, verbose=0, shuffle=False, **kwargs)
    assert len(history.history["loss"]) == 2
    assert model.train_ids() == [[0, 1, 2, 3], [4, 5, 6, 7]] * 2
    assert all(batch[0].dtype == torch.float32 for batch in model.train_batches)
    args, kwargs = _fit_kind(kind)
    assert isinstance(model.evaluate(*args, verbose=0, **kwargs), float)
    args, kwargs = _fit_kind(kind)
    assert model.predict(args[0], verbose=0, **kwargs).shape == (8, 1)


def test_sequence_on_epoch_end_runs_each_epoch():
    x, y = _indexed(8)
    sequence = _BatchSequence(x, y, 4)
    _recording().fit(sequence, epochs=3, verbose=0)
    assert sequence.epochs_ended == 3


def test_generator_of_batches_for_one_epoch():
    x, y = _indexed(8)
    model = _recording()
    model.fit(((x[i : i + 4], y[i : i + 4]) for i in range(0, 8, 4)), verbose=0)
    assert model.train_ids() == [[0, 1, 2, 3], [4, 5, 6, 7]]


@pytest.mark.parametrize("weight, trains", [(0.0, False), (0.25, True)])
def test_batches_may_carry_sample_weights(weight, trains):
    x, y = _data(8)
    weights = np.full(8, weight, "float32")
    model = _recording()
    before = _weights(model)
    model.fit(
        DataLoader(TensorDataset(*map(torch.from_numpy, (x, y, weights))), batch_size=4), verbose=0
    )
    assert _changed(before, model) is trains
    assert len(model.train_batches[0]) == 3


def test_list_and_dict_inputs():
    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.image, self.meta = nn.Linear(3, 1), nn.Linear(2, 1)

        def forward(self, image, meta):
            return self.image(image) + self.meta(meta)

    torch.manual_seed(0)
    model = torchfit.Model(TwoInputs(), device="cpu")
    model.compile(optimizer="sgd", loss="mse")
    image, meta, y = _data(8)[0], np.ones((8, 2), "float32"), np.zeros((8, 1), "float32")
    model.fit([image, meta], y, batch_size=4, verbose=0)
    model.fit({"image": image, "meta": meta}, y, batch_size=4, verbose=0)
    by_list = model.predict([image, meta], verbose=0)
    np.testing.assert_allclose(model.predict({"meta": meta, "image": image}, verbose=0), by_list)
    np.testing.assert_allclose(model.predict((image, meta), verbose=0), by_list)


def test_dict_targets_for_named_outputs():
    class Named(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 1), nn.Linear(3, 1)

        def forward(self, x):
            return {"score": self.a(x), "other": self.b(x)}

    torch.manual_seed(0)
    model = torchfit.Model(Named(), device="cpu")
    model.compile(optimizer="sgd", loss={"score": "mse", "other": "mae"})
    x, y = _data(8)
    history = model.fit(x, {"score": y, "other": y}, verbose=0)
    assert sorted(history.history) == ["loss", "other_loss", "score_loss"]


def test_x_y_length_mismatch_is_an_error():
    x, y = _data(8)
    with pytest.raises(ValueError, match=r"x has 8 samples, y has 6 samples"):
        _recording().fit(x, y[:6], verbose=0)
    with pytest.raises(ValueError, match=r"sample"):
        _recording().fit(x, y, sample_weight=np.ones(5), verbose=0)


def test_y_with_a_dataloader_is_an_error():
    loader = DataLoader(TensorDataset(*map(torch.from_numpy, _data(8))), batch_size=4)
    with pytest.raises(ValueError, match=r"When `x` is a DataLoader, `y` should not be passed"):
        _recording().fit(loader, np.zeros(8), verbose=0)


def test_class_weight_with_a_dataloader_is_an_error():
    loader = DataLoader(TensorDataset(*map(torch.from_numpy, _data(8))), batch_size=4)
    with pytest.raises(ValueError, match=r"`class_weight` is not supported for a torch DataLoader"):
        _recording().fit(loader, class_weight={0: 1.0}, verbose=0)


def test_unrecognized_data_is_an_error():
    with pytest.raises(ValueError, match=r"Unrecognized data type for `x`: int"):
        _recording().fit(5, verbose=0)
    with pytest.raises(ValueError, match=r"`fit\(\)` needs data: `x` is None"):
        _recording().fit(verbose=0)


def test_fit_batch_size_is_not_said_ignored_by_validation_data_that_makes_batches():
    val = DataLoader(TensorDataset(*map(torch.from_numpy, _indexed(8))), batch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fit's batch_size was for the training arrays
        _recording().fit(*_data(), batch_size=4, validation_data=val, verbose=0)
    with pytest.warns(UserWarning, match=r"`batch_size=2` was passed, but will be ignored"):
        _recording().fit(
            *_data(), batch_size=4, validation_data=val, validation_batch_size=2, verbose=0
        )
