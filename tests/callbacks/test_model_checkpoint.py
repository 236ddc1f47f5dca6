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
    callbacks = CallbackList(
        [callback], model=model, verbose=0, epochs=len(epoch_logs), steps=steps
    )
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
    model = _fit(
        ModelCheckpoint(str(tmp_path / "w.pt"), save_weights_only=True), [{"val_loss": 1.0}]
    )
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
        str(tmp_path / "c-{epoch}.pt"),
        monitor="val_acc",
        mode="max",
        save_best_only=True,
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
    with pytest.raises(ValueError, match="`filepath` must be a file path"):
        _fit(ModelCheckpoint(str(tmp_path)), [{"val_loss": 1.0}])


def test_path_formatted_into_a_directory_is_an_error(tmp_path):
    (tmp_path / "ckpt-1").mkdir()
    with pytest.raises(IsADirectoryError, match="directory"):
        _fit(ModelCheckpoint(str(tmp_path / "ckpt-{epoch}")), [{"val_loss": 1.0}])


def test_real_fit_writes_loadable_weights(tmp_path):
    import numpy as np
    import torch

    import torchfit

    x = np.ones((8, 2), "float32")
    model = torchfit.Model(torch.nn.Sequential(torch.nn.Linear(2, 1)))
    model.compile(optimizer="sgd", loss="mse")
    path = str(tmp_path / "w-{epoch}-{loss:.3f}.weights.h5")
    model.fit(
        x,
        x[:, :1],
        epochs=2,
        batch_size=4,
        verbose=0,
        callbacks=[ModelCheckpoint(path, monitor="loss", save_weights_only=True)],
    )
    files = sorted(os.listdir(tmp_path))
    assert len(files) == 2 and files[0].startswith("w-1-") and files[1].startswith("w-2-")
    state = torch.load(tmp_path / files[1], weights_only=True)
    torch.testing.assert_close(state["0.weight"], model.module[0].weight.detach())


def _bias(path):
    import torch

    return float(torch.load(path, weights_only=True)["bias"][0])


def test_real_fit_save_best_only_keeps_the_best_epochs_weights(tmp_path, bias_fit, scripted):
    scores = [3.0, 2.0, 2.5, 1.0, 1.5]
    best = ModelCheckpoint(
        str(tmp_path / "best.pt"),
        monitor="score",
        mode="min",
        save_best_only=True,
        save_weights_only=True,
    )
    numbered = ModelCheckpoint(
        str(tmp_path / "best-{epoch}.pt"),
        monitor="score",
        mode="min",
        save_best_only=True,
        save_weights_only=True,
    )
    _, _, snapshots = bias_fit([scripted(scores), best, numbered], epochs=len(scores))
    assert sorted(os.listdir(tmp_path)) == ["best-1.pt", "best-2.pt", "best-4.pt", "best.pt"]
    biases = [float(weights[1][0]) for weights in snapshots.weights]
    for epoch in (0, 1, 3):
        assert _bias(tmp_path / f"best-{epoch + 1}.pt") == biases[epoch]
    # The best epoch (3), not the last one, is in best.pt.
    assert _bias(tmp_path / "best.pt") == biases[3] != biases[4]
    assert best.best == 1.0


def test_real_fit_batch_frequency_saves_the_weights_of_that_batch(tmp_path, bias_fit):
    callback = ModelCheckpoint(
        str(tmp_path / "e{epoch}-b{batch}.pt"), save_freq=3, save_weights_only=True
    )
    bias_fit([callback], epochs=3)  # 2 batches per epoch: saves after batches 3 and 6
    assert sorted(os.listdir(tmp_path)) == ["e2-b1.pt", "e3-b2.pt"]
    # Each step adds the learning rate (1.0) to the bias.
    assert _bias(tmp_path / "e2-b1.pt") == 3.0 and _bias(tmp_path / "e3-b2.pt") == 6.0


@pytest.mark.parametrize(
    "monitor, validation, close", [("val_los", True, "'val_loss'"), ("los", False, "'loss'")]
)
def test_real_fit_unknown_monitor_fails_fast_naming_the_closest_key(
    tmp_path, bias_fit, monitor, validation, close
):
    import numpy as np

    callback = ModelCheckpoint(str(tmp_path / "best.pt"), monitor=monitor, save_best_only=True)
    data = (np.zeros((4, 1), "float32"), np.full((4, 1), 100.0, "float32"))
    with pytest.raises(
        ValueError, match=f"monitor='{monitor}', which is not in the logs.*Did you mean {close}"
    ):
        bias_fit([callback], epochs=3, validation_data=data if validation else None)
    assert os.listdir(tmp_path) == []


def test_real_fit_epochs_without_validation_keep_the_best_file(tmp_path, bias_fit):
    import numpy as np

    callback = ModelCheckpoint(
        str(tmp_path / "best-{epoch}.pt"), save_best_only=True, save_weights_only=True
    )
    data = (np.zeros((4, 1), "float32"), np.full((4, 1), 100.0, "float32"))
    with pytest.warns(UserWarning, match="no validation ran this epoch"):
        bias_fit([callback], epochs=4, validation_data=data, validation_freq=2)
    # Validated epochs (2 and 4) only; Keras would also save the unvalidated ones.
    assert sorted(os.listdir(tmp_path)) == ["best-2.pt", "best-4.pt"]


def test_best_only_at_batch_ends_on_a_validation_key_fails_before_training(tmp_path, bias_fit):
    callback = ModelCheckpoint(str(tmp_path / "best.pt"), save_best_only=True, save_freq=2)
    with pytest.raises(ValueError, match="save_freq=2.*'val_loss'.*never"):
        bias_fit([callback], epochs=2)
    assert callback.model.optimizer.iterations == 0


@pytest.mark.parametrize(
    "pattern",
    ["ckpt-{epoch:02q}.pt", "ckpt-{epoch.pt", "ckpt-epoch}.pt", "ckpt-{}.pt", "ckpt-{loss!x}.pt"],
)
def test_bad_filepath_pattern_fails_before_training(tmp_path, bias_fit, pattern):
    import warnings

    callback = ModelCheckpoint(str(tmp_path / pattern))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no misleading warning on the way
        with pytest.raises(ValueError, match="`filepath`"):
            bias_fit([callback], epochs=2)
    assert callback.model.optimizer.iterations == 0 and os.listdir(tmp_path) == []


def test_filepath_under_a_file_fails_before_training(tmp_path, bias_fit):
    (tmp_path / "taken").write_text("mine")
    callback = ModelCheckpoint(str(tmp_path / "taken" / "ckpt.pt"))
    with pytest.raises(ValueError, match="`filepath`.*'.*taken' above it is a file"):
        bias_fit([callback], epochs=1)
    assert callback.model.optimizer.iterations == 0


def test_a_save_failing_halfway_leaves_the_previous_best_file(
    tmp_path, bias_fit, scripted, monkeypatch
):
    import torch

    path = tmp_path / "best.pt"
    real_save = torch.save

    class FailingSecondSave(ModelCheckpoint):
        def _save_model(self, epoch, batch, logs):
            if epoch == 1:

                def half_then_fail(obj, file):
                    real_save(obj, file)
                    file.truncate(10)
                    raise OSError("disk full")

                monkeypatch.setattr(torch, "save", half_then_fail)
            super()._save_model(epoch, batch, logs)

    callback = FailingSecondSave(
        str(path), monitor="score", mode="min", save_best_only=True, save_weights_only=True
    )
    with pytest.raises(OSError, match="disk full"):
        bias_fit([scripted([2.0, 1.0]), callback], epochs=2)
    assert _bias(path) == 2.0  # epoch 1's weights (two steps of 1.0), intact
    assert os.listdir(tmp_path) == ["best.pt"]  # no temporary file left behind


def test_state_dict_round_trip_keeps_best_and_batch_count(tmp_path):
    callback = ModelCheckpoint(
        str(tmp_path / "b{batch}.pt"), monitor="loss", save_best_only=True, save_freq=3
    )
    _fit(callback, [{"loss": 1.0}], steps=2)
    state = callback.state_dict()
    assert state == {"best": None, "batches_seen_since_last_saving": 2, "last_batch_seen": 1}
    resumed = ModelCheckpoint(
        str(tmp_path / "b{batch}.pt"), monitor="loss", save_best_only=True, save_freq=3
    )
    resumed.load_state_dict({**state, "best": 0.5})
    model = _fit(resumed, [{"loss": 1.0}], steps=2, batch_logs={"loss": 0.4})
    # One more batch makes 3: due at the first batch, where 0.4 beats 0.5.
    assert model.saved == [("model", str(tmp_path / "b1.pt"))] and resumed.best == 0.4


def _messages(path, save_best_only):
    if save_best_only:  # the score is 1.0, then 2.0
        return [
            f"Epoch 1: score improved from None to 1.00000, saving model to {path}",
            f"Epoch 1: finished saving model to {path}",
            "Epoch 2: score did not improve from 1.00000",
        ]
    return [
        f"Epoch {epoch}: {what} model to {path}"
        for epoch in (1, 2)
        for what in ("saving", "finished saving")
    ]


@pytest.mark.parametrize("save_best_only", [False, True])
@pytest.mark.parametrize("verbose", [0, 1])
def test_real_fit_prints_keras_messages_at_verbose_1_only(
    tmp_path, bias_fit, scripted, capsys, verbose, save_best_only
):
    path = str(tmp_path / "model.pt")
    callback = ModelCheckpoint(
        path,
        monitor="score",
        mode="min",
        save_best_only=save_best_only,
        save_weights_only=True,
        verbose=verbose,
    )
    bias_fit([scripted([1.0, 2.0]), callback], epochs=2)
    assert os.path.exists(path)
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert lines == (_messages(path, save_best_only) if verbose else [])
