import os

import pytest

from torchfit.callbacks import CallbackList, ModelCheckpoint
from torchfit.logs import BatchLogs


class FakeModel:
    def __init__(self):
        self.metrics = []
        self.saved = []
        self.stop_training = False

    def save(self, path):
        self.saved.append(("model", path))
        with open(path, "w") as f:
            f.write("model")

    def save_weights(self, path):
        self.saved.append(("weights", path))
        with open(path, "w") as f:
            f.write("weights")


def _fit(callback, epoch_logs, steps=1, batch_logs=None):
    model = FakeModel()
    callbacks = CallbackList([callback], model=model, verbose=0, epochs=len(epoch_logs), steps=steps)
    callbacks.on_train_begin()
    for epoch, logs in enumerate(epoch_logs):
        callbacks.on_epoch_begin(epoch)
        for step in range(steps):
            callbacks.on_train_batch_end(step, batch_logs or {"loss": 1.0})
        callbacks.on_epoch_end(epoch, logs)
    callbacks.on_train_end()
    return model


def test_every_epoch_with_placeholders(tmp_path):
    path = str(tmp_path / "sub" / "ckpt-{epoch:02d}-{val_loss:.2f}.anything")
    model = _fit(ModelCheckpoint(path), [{"val_loss": 0.5}, {"val_loss": 0.25}])
    names = [os.path.basename(p) for _, p in model.saved]
    assert names == ["ckpt-01-0.50.anything", "ckpt-02-0.25.anything"]
    assert all(os.path.exists(p) for _, p in model.saved)


def test_save_weights_only_calls_save_weights(tmp_path):
    model = _fit(ModelCheckpoint(str(tmp_path / "w.pt"), save_weights_only=True), [{"val_loss": 1.0}])
    assert model.saved == [("weights", str(tmp_path / "w.pt"))]


def test_save_best_only(tmp_path, capsys):
    callback = ModelCheckpoint(str(tmp_path / "best-{epoch}.pt"), save_best_only=True, verbose=1)
    model = _fit(callback, [{"val_loss": 1.0}, {"val_loss": 2.0}, {"val_loss": 0.5}])
    assert [os.path.basename(p) for _, p in model.saved] == ["best-1.pt", "best-3.pt"]
    out = capsys.readouterr().out
    assert "val_loss improved from None to 1.00000" in out
    assert "val_loss did not improve from 1.00000" in out


def test_initial_value_threshold_and_max_mode(tmp_path):
    callback = ModelCheckpoint(
        str(tmp_path / "c-{epoch}.pt"), monitor="val_acc", mode="max", save_best_only=True,
        initial_value_threshold=0.7,
    )
    model = _fit(callback, [{"val_acc": 0.6}, {"val_acc": 0.8}])
    assert [os.path.basename(p) for _, p in model.saved] == ["c-2.pt"]


def test_integer_save_freq_counts_batches(tmp_path):
    callback = ModelCheckpoint(str(tmp_path / "e{epoch}-b{batch}.pt"), save_freq=3)
    model = _fit(callback, [{"loss": 1.0}] * 2, steps=4)
    assert [os.path.basename(p) for _, p in model.saved] == ["e1-b3.pt", "e2-b2.pt"]


def test_batch_save_reads_logs_only_when_saving(tmp_path):
    reads = []

    def compute():
        reads.append(1)
        return {"loss": 0.5}

    callback = ModelCheckpoint(str(tmp_path / "l{loss:.1f}.pt"), save_freq=4)
    _fit(callback, [{"loss": 1.0}], steps=8, batch_logs=BatchLogs(compute))
    assert len(reads) == 1  # the same BatchLogs object: read once, at step 4


def test_epoch_save_freq_stays_out_of_batches(tmp_path):
    assert not ModelCheckpoint(str(tmp_path / "a.pt"))._overrides("on_train_batch_end")
    assert ModelCheckpoint(str(tmp_path / "a.pt"), save_freq=2)._overrides("on_train_batch_end")


def test_bad_save_freq():
    with pytest.raises(ValueError, match="save_freq"):
        ModelCheckpoint("x.pt", save_freq="batch")


def test_missing_placeholder_key(tmp_path):
    with pytest.raises(KeyError, match="val_acc"):
        _fit(ModelCheckpoint(str(tmp_path / "{val_acc}.pt")), [{"loss": 1.0}])


def test_directory_path_is_an_error(tmp_path):
    with pytest.raises(IsADirectoryError, match="directory"):
        _fit(ModelCheckpoint(str(tmp_path)), [{"val_loss": 1.0}])


def test_real_fit_writes_loadable_weights(tmp_path):
    import numpy as np
    import torch

    import torchfit

    x = np.ones((8, 2), "float32")
    model = torchfit.Model(torch.nn.Sequential(torch.nn.Linear(2, 1)))
    model.compile(optimizer="sgd", loss="mse")
    path = str(tmp_path / "w-{epoch}-{loss:.3f}.weights.h5")
    model.fit(x, x[:, :1], epochs=2, batch_size=4, verbose=0, callbacks=[ModelCheckpoint(path, monitor="loss", save_weights_only=True)])
    files = sorted(os.listdir(tmp_path))
    assert len(files) == 2 and files[0].startswith("w-1-") and files[1].startswith("w-2-")
    state = torch.load(tmp_path / files[1], weights_only=True)
    torch.testing.assert_close(state["0.weight"], model.module[0].weight.detach())
