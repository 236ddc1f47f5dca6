import os
import re

os.environ.setdefault("KERAS_BACKEND", "torch")

import pytest

from torchfit.callbacks import CallbackList, ProgbarLogger
from torchfit.logs import BatchLogs

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def clock(monkeypatch):
    state = {"now": 1000.0}
    monkeypatch.setattr("time.time", lambda: state["now"])
    return state


def _fit_hooks(logger, clock, epochs=2, steps=4, validation=True):
    logger.on_train_begin()
    for epoch in range(epochs):
        logger.on_epoch_begin(epoch)
        for step in range(steps):
            clock["now"] += 0.03
            logger.on_train_batch_end(step, {"accuracy": 0.5 + step / 10, "loss": 1.0 / (step + 1)})
        logs = {"accuracy": 0.8, "loss": 0.25}
        if validation:
            logger.on_test_begin()
            for step in range(2):
                logger.on_test_batch_end(step, {"loss": 0.3})
            logger.on_test_end({"loss": 0.3})
            logs.update(val_accuracy=0.75, val_loss=0.3)
        clock["now"] += 0.03
        logger.on_epoch_end(epoch, logs)
    logger.on_train_end(logs)


def _make(cls, verbose, epochs, steps, dynamic):
    logger = cls()
    logger.set_params({"verbose": verbose, "epochs": epochs, "steps": steps})
    logger._test_dynamic = dynamic
    return logger


def _patch_dynamic(monkeypatch, dynamic):
    import keras.src.utils.progbar as keras_progbar

    from torchfit.utils import progbar as ours

    monkeypatch.setattr(ours, "is_dynamic_display", lambda: dynamic)
    original = keras_progbar.Progbar.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self._dynamic_display = dynamic

    monkeypatch.setattr(keras_progbar.Progbar, "__init__", init)


@pytest.mark.parametrize("verbose", [1, 2])
@pytest.mark.parametrize("epochs", [1, 3])
def test_fit_output_matches_keras(verbose, epochs, clock, capsys, monkeypatch):
    keras = pytest.importorskip("keras")
    _patch_dynamic(monkeypatch, True)
    clock["now"] = 1000.0
    _fit_hooks(_make(ProgbarLogger, verbose, epochs, 4, True), clock, epochs=epochs)
    ours = capsys.readouterr().out
    clock["now"] = 1000.0
    _fit_hooks(_make(keras.callbacks.ProgbarLogger, verbose, epochs, 4, True), clock, epochs=epochs)
    theirs = capsys.readouterr().out
    assert ours == theirs
    assert ("Epoch 1/3" in ours) == (epochs > 1)
    assert "val_loss: 0.3000" in ours


def test_fit_line_format_verbose_2(clock, capsys):
    _fit_hooks(_make(ProgbarLogger, 2, 2, 4, False), clock, epochs=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2"
    assert re.fullmatch(
        r"4/4 - 0s - \d+ms/step - accuracy: 0\.8000 - loss: 0\.2500"
        r" - val_accuracy: 0\.7500 - val_loss: 0\.3000",
        lines[1],
    )


def test_evaluate_and_predict_print_their_own_bars(clock, capsys, monkeypatch):
    keras = pytest.importorskip("keras")
    _patch_dynamic(monkeypatch, False)

    def run(cls):
        clock["now"] = 1000.0
        logger = _make(cls, 1, 1, 3, False)
        logger.on_test_begin()
        for step in range(3):
            clock["now"] += 0.1
            logger.on_test_batch_end(step, {"loss": 0.5})
        logger.on_test_end({"loss": 0.5})
        logger.on_predict_begin()
        for step in range(3):
            clock["now"] += 0.1
            logger.on_predict_batch_end(step, {"outputs": [1, 2]})
        logger.on_predict_end()
        return capsys.readouterr().out

    ours, theirs = run(ProgbarLogger), run(keras.callbacks.ProgbarLogger)
    # Off a terminal, a bar shorter than 10 s prints only its final line (Keras
    # prints a line per update, its last one twice): the same text, without colours.
    bars = ANSI.sub("", theirs).strip("\n").split("\n\n")
    assert ours == "".join("\n" + bar.split("\n")[-1].rstrip() + "\n" for bar in bars)
    assert ours.count("3/3") == 2
    assert "outputs" not in ours


def test_unknown_steps_learns_target_after_first_epoch(clock, capsys):
    logger = _make(ProgbarLogger, 2, 2, None, False)
    callbacks = CallbackList([logger], verbose=2, epochs=2, steps=None)
    callbacks.on_train_begin()
    for epoch in range(2):
        callbacks.on_epoch_begin(epoch)
        for step in range(5):
            callbacks.on_train_batch_end(step, {"loss": 1.0})
        callbacks.on_epoch_end(epoch, {"loss": 1.0})
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("5/5 - ") and lines[3].startswith("5/5 - ")


def test_batch_logs_read_only_on_redraw(clock, capsys):
    reads = []

    def compute():
        reads.append(1)
        return {"loss": 0.5}

    callbacks = CallbackList(add_progbar=True, verbose=1, epochs=1, steps=200)
    callbacks.on_train_begin()
    callbacks.on_epoch_begin(0)
    for step in range(200):
        clock["now"] += 0.001
        callbacks.on_train_batch_end(step, BatchLogs(compute))
    callbacks.on_epoch_end(0, {"loss": 0.5})
    # 200 steps of 1 ms with a 50 ms redraw interval: about 5 reads, not 200.
    assert len(reads) <= 6
    assert "200/200" in ANSI.sub("", capsys.readouterr().out)


def test_verbose_2_needs_no_batch_hook_when_steps_are_known():
    logger = _make(ProgbarLogger, 2, 1, 10, False)
    assert not logger._overrides("on_train_batch_end")
    assert _make(ProgbarLogger, 1, 1, 10, False)._overrides("on_train_batch_end")


def test_verbose_auto_resolves_by_terminal(monkeypatch):
    logger = ProgbarLogger()
    logger.set_params({"verbose": "auto", "epochs": 1, "steps": 1})
    assert logger.verbose == 2  # pytest captures stdout: not a terminal


def test_real_fit_verbose_2_lines(capsys):
    import numpy as np
    import torch

    import torchfit

    x = np.ones((8, 2), "float32")
    model = torchfit.Model(torch.nn.Sequential(torch.nn.Linear(2, 1)))
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, x[:, :1], epochs=2, batch_size=4, verbose=2, validation_data=(x, x[:, :1]))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    assert re.fullmatch(r"2/2 - \d+s - \d+(ms|us|s)/step - loss: \S+ - val_loss: \S+", lines[1])
    assert len(lines) == 4  # validation inside fit prints nothing


def test_real_evaluate_and_predict_verbose_1(capsys):
    import numpy as np
    import torch

    import torchfit

    x = np.ones((8, 2), "float32")
    model = torchfit.Model(torch.nn.Sequential(torch.nn.Linear(2, 1)))
    model.compile(optimizer="sgd", loss="mse")
    model.evaluate(x, x[:, :1], batch_size=4, verbose=1)
    model.predict(x, batch_size=4, verbose=1)
    out = ANSI.sub("", capsys.readouterr().out)
    assert re.search(r"2/2 ━{20} \d+s \d+(ms|us|s)/step - loss: \S+\n", out)
    assert re.search(r"2/2 ━{20} \d+s \d+(ms|us|s)/step\n", out)
