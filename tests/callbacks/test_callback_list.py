import time

import pytest
import torch

from torchfit.callbacks import Callback, CallbackList, History, ProgbarLogger
from torchfit.logs import BatchLogs


class FakeModel:
    history = None
    stop_training = False


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", logs))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, dict(logs)))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("train_batch_end", batch, dict(logs)))

    def on_predict_batch_end(self, batch, logs=None):
        self.calls.append(("predict_batch_end", batch, logs))


def test_adds_history_and_progbar_like_keras():
    callbacks = CallbackList(
        [Recorder()], add_history=True, add_progbar=True, verbose=1, epochs=1, steps=1
    )
    assert [type(c) for c in callbacks] == [Recorder, History, ProgbarLogger]
    silent = CallbackList(add_history=True, add_progbar=True, verbose=0, epochs=1, steps=1)
    assert [type(c) for c in silent] == [History]


def test_keeps_user_history_and_progbar():
    history, progbar = History(), ProgbarLogger()
    callbacks = CallbackList([history, progbar], add_history=True, add_progbar=True, verbose=1)
    assert list(callbacks) == [history, progbar]


def test_set_model_sets_history_on_model():
    model = FakeModel()
    callbacks = CallbackList(add_history=True, model=model, verbose=0, epochs=1, steps=1)
    assert isinstance(model.history, History)
    assert callbacks.callbacks[0].model is model


def test_params_reach_every_callback():
    recorder = Recorder()
    CallbackList([recorder], verbose=2, epochs=3, steps=7)
    assert recorder.params == {"verbose": 2, "epochs": 3, "steps": 7}


def test_epoch_logs_become_sorted_python_floats():
    recorder = Recorder()
    callbacks = CallbackList([recorder])
    callbacks.on_train_begin()
    callbacks.on_epoch_end(0, {"loss": torch.tensor(0.5), "accuracy": torch.tensor(0.25)})
    assert recorder.calls[0] == ("train_begin", {})
    epoch_logs = recorder.calls[1][2]
    assert list(epoch_logs) == ["accuracy", "loss"]
    assert epoch_logs == {"accuracy": 0.25, "loss": 0.5}
    assert all(type(v) is float for v in epoch_logs.values())


def test_keys_added_by_a_callback_reach_the_next_ones():
    class AddsRate(Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["learning_rate"] = 0.1

    history = History()
    callbacks = CallbackList([AddsRate(), history], model=FakeModel())
    callbacks.on_train_begin()
    callbacks.on_epoch_end(0, {"loss": 1.0})
    assert history.history == {"loss": [1.0], "learning_rate": [0.1]}


def test_batch_logs_stay_lazy_until_read():
    reads = []

    def compute():
        reads.append(1)
        return {"loss": torch.tensor(2.0)}

    class Ignores(Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.got = logs

    ignorer = Ignores()
    callbacks = CallbackList([ignorer])
    callbacks.on_train_batch_end(0, BatchLogs(compute))
    assert reads == [] and isinstance(ignorer.got, BatchLogs)
    assert ignorer.got["loss"] == 2.0 and reads == [1]


def test_plain_dict_batch_logs_read_as_floats():
    recorder = Recorder()
    callbacks = CallbackList([recorder])
    callbacks.on_train_batch_end(4, {"loss": torch.tensor(0.5)})
    assert recorder.calls == [("train_batch_end", 4, {"loss": 0.5})]


def test_predict_outputs_passed_untouched():
    recorder = Recorder()
    outputs = {"a": torch.ones(2), "b": torch.zeros(2)}
    CallbackList([recorder]).on_predict_batch_end(0, {"outputs": outputs})
    assert recorder.calls[0][2]["outputs"] is outputs


def test_batch_hooks_skip_callbacks_that_do_not_override():
    callbacks = CallbackList([Callback(), History()], verbose=0)
    assert not callbacks.needs_batch_logs
    assert all(not hooks for hooks in callbacks._hooks.values())
    recorder = Recorder()
    callbacks.append(recorder)
    assert callbacks.needs_batch_logs
    assert callbacks._hooks["on_train_batch_end"] == [recorder.on_train_batch_end]


def test_alias_override_is_dispatched():
    seen = []

    class Old(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(batch)

    callbacks = CallbackList([Old()])
    callbacks.on_train_batch_end(2, {})
    callbacks.on_batch_end(3, {})
    assert seen == [2, 3]


def test_legacy_batch_hooks_pass_the_batch_and_logs_through():
    seen = []

    class Both(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(("begin", batch, logs))

        def on_train_batch_end(self, batch, logs=None):
            seen.append(("end", batch, logs))

    callbacks = CallbackList([Both()])
    callbacks.on_batch_begin(4, {"size": 2})
    callbacks.on_batch_end(5, {"loss": 1.5})
    assert seen == [("begin", 4, {"size": 2}), ("end", 5, {"loss": 1.5})]


def test_idle_batch_hook_is_nearly_free():
    callbacks = CallbackList(add_history=True, add_progbar=True, verbose=0, epochs=1, steps=1)
    logs = BatchLogs(lambda: {"loss": torch.tensor(1.0)})
    start = time.perf_counter()
    for step in range(20000):
        callbacks.on_train_batch_begin(step)
        callbacks.on_train_batch_end(step, logs)
    per_step = (time.perf_counter() - start) / 20000
    assert not logs.materialized
    assert per_step < 20e-6  # generous; it is ~0.2 µs


def test_append_flattens_and_configures():
    model = FakeModel()
    callbacks = CallbackList(model=model, verbose=1, epochs=1, steps=1)
    first, second = Recorder(), Recorder()
    callbacks.append([first, second])
    assert len(callbacks) == 2 and first.model is model and second.params["steps"] == 1


def test_rejects_non_callbacks():
    with pytest.raises(TypeError, match="callbacks"):
        CallbackList([object()])


def test_callbacks_that_say_chief_only_run_on_rank_zero_only(tmp_path):
    from torchfit.callbacks import CSVLogger
    from torchfit.distribution import SingleProcess

    class RankOne(SingleProcess):  # what a DistributedRun answers on rank 1
        rank, world_size, is_chief = 1, 2, False

    class Printer(Callback):
        chief_only = True

    model = FakeModel()
    model.distribution = RankOne()
    mine = Recorder()
    given = [mine, Printer(), CSVLogger(str(tmp_path / "log.csv")), ProgbarLogger()]
    callbacks = CallbackList(
        given, add_history=True, add_progbar=True, model=model, verbose=1, epochs=1, steps=1
    )
    assert [type(c) for c in callbacks] == [Recorder, History]
    model.distribution = SingleProcess()  # rank 0 (or one process) runs every callback
    callbacks = CallbackList(given, add_progbar=True, model=model, verbose=1, epochs=1, steps=1)
    assert [type(c) for c in callbacks] == [Recorder, Printer, CSVLogger, ProgbarLogger]
