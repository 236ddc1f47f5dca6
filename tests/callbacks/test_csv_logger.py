import os

from torchfit.callbacks import CallbackList, CSVLogger


def _fit(logger, epoch_logs):
    callbacks = CallbackList([logger], verbose=0, epochs=len(epoch_logs), steps=1)
    callbacks.on_train_begin()
    for epoch, logs in enumerate(epoch_logs):
        callbacks.on_epoch_end(epoch, logs)
    callbacks.on_train_end()


def test_epoch_column_from_zero_then_sorted_keys(tmp_path):
    path = tmp_path / "log.csv"
    _fit(
        CSVLogger(path),
        [
            {"loss": 0.5, "acc": 0.25, "val_loss": 0.75, "val_acc": 0.5},
            {"loss": 0.25, "acc": 0.5, "val_loss": 0.5, "val_acc": 0.75},
        ],
    )
    assert path.read_text().splitlines() == [
        "epoch,acc,loss,val_acc,val_loss",
        "0,0.25,0.5,0.5,0.75",
        "1,0.5,0.25,0.75,0.5",
    ]


def test_no_validation_first_epoch_adds_val_columns_and_na(tmp_path):
    path = tmp_path / "log.csv"
    _fit(CSVLogger(path, separator=";"), [{"loss": 1.0}, {"loss": 0.5, "val_loss": 0.6}])
    assert path.read_text().splitlines() == ["epoch;loss;val_loss", "0;1.0;NA", "1;0.5;0.6"]


def test_append_writes_header_once(tmp_path):
    path = tmp_path / "log.csv"
    _fit(CSVLogger(path, append=True), [{"loss": 1.0}])
    _fit(CSVLogger(path, append=True), [{"loss": 0.5}])
    assert path.read_text().splitlines() == ["epoch,loss,val_loss", "0,1.0,NA", "0,0.5,NA"]


def test_overwrites_without_append(tmp_path):
    path = tmp_path / "log.csv"
    _fit(CSVLogger(path), [{"loss": 1.0}])
    _fit(CSVLogger(path), [{"loss": 0.5}])
    assert path.read_text().splitlines() == ["epoch,loss,val_loss", "0,0.5,NA"]


def test_rows_are_on_disk_before_training_ends(tmp_path):
    path = tmp_path / "log.csv"
    logger = CSVLogger(path)
    logger.on_train_begin()
    logger.on_epoch_end(0, {"loss": 1.0})
    # A crash now (no on_train_end) still leaves a complete file.
    assert path.read_text() == "epoch,loss,val_loss\n0,1.0,NA\n"
    logger.on_train_end()


def test_list_values_are_quoted(tmp_path):
    path = tmp_path / "log.csv"
    _fit(CSVLogger(path), [{"loss": 1.0, "val_loss": 1.0, "per_class": [1, 2]}])
    assert '"[1, 2]"' in path.read_text()


def test_real_fit_with_validation(tmp_path):
    import numpy as np
    import torch

    import torchfit

    x = np.ones((8, 2), "float32")
    model = torchfit.Model(torch.nn.Sequential(torch.nn.Linear(2, 1)))
    model.compile(optimizer="sgd", loss="mse")
    path = tmp_path / "training.csv"
    model.fit(
        x,
        x[:, :1],
        epochs=3,
        batch_size=4,
        verbose=0,
        validation_data=(x, x[:, :1]),
        callbacks=[CSVLogger(path)],
    )
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,loss,val_loss"
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "1", "2"]


def test_append_onto_other_columns_is_refused_naming_both(tmp_path):
    import pytest

    path = tmp_path / "log.csv"
    _fit(CSVLogger(path), [{"loss": 1.0, "acc": 0.5}])
    before = path.read_bytes()
    with pytest.raises(
        ValueError,
        match=r"columns are \['epoch', 'acc', 'loss', 'val_acc', 'val_loss'\], this run"
        r" logs \['epoch', 'loss', 'mae', 'val_loss', 'val_mae'\]",
    ):
        _fit(CSVLogger(path, append=True), [{"loss": 0.5, "mae": 0.1}])
    assert path.read_bytes() == before


def test_append_onto_the_same_columns_in_another_order_follows_the_file(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,val_loss,loss\n0,2.0,1.0\n")
    _fit(CSVLogger(path, append=True), [{"loss": 0.5, "val_loss": 0.7}])
    assert path.read_text().splitlines() == ["epoch,val_loss,loss", "0,2.0,1.0", "0,0.7,0.5"]


def test_real_fit_failing_before_the_first_row_leaves_the_old_file(tmp_path, bias_fit):
    import pytest

    import torchfit

    path = tmp_path / "log.csv"
    path.write_text("epoch,loss\n0,1.0\n")

    class Crash(torchfit.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        bias_fit([CSVLogger(path), Crash()], epochs=2)
    assert path.read_text() == "epoch,loss\n0,1.0\n"
    bias_fit([CSVLogger(path)], epochs=1)
    assert path.read_text().splitlines()[0] == "epoch,loss,val_loss"
    assert os.listdir(tmp_path) == ["log.csv"]


def test_folder_as_filename_fails_before_training(tmp_path, bias_fit):
    import pytest

    logger = CSVLogger(tmp_path)
    with pytest.raises(ValueError, match="`filename` must be a file path"):
        bias_fit([logger], epochs=1)
    assert logger.model.optimizer.iterations == 0


def test_resumed_logger_keeps_the_backed_up_rows_and_drops_later_ones(tmp_path):
    path = tmp_path / "log.csv"
    logger = CSVLogger(path)
    logger.on_train_begin()
    logger.on_epoch_end(0, {"loss": 1.0})
    state = logger.state_dict()
    logger.on_epoch_end(1, {"loss": 0.5})  # after the backup, before the kill
    resumed = CSVLogger(path)
    resumed.on_train_begin()
    resumed.load_state_dict(state)
    assert path.read_text().count("\n") == 3  # nothing is lost before the first row
    resumed.on_epoch_end(1, {"loss": 0.25})
    resumed.on_train_end()
    assert path.read_text().splitlines() == ["epoch,loss,val_loss", "0,1.0,NA", "1,0.25,NA"]


def test_resumed_logger_without_its_file_starts_afresh_and_says_so(tmp_path):
    import pytest

    path = tmp_path / "log.csv"
    resumed = CSVLogger(path)
    resumed.on_train_begin()
    resumed.load_state_dict({"keys": ["loss", "val_loss"], "size": 40})
    with pytest.warns(UserWarning, match="missing or shorter"):
        resumed.on_epoch_end(3, {"loss": 0.25})
    resumed.on_train_end()
    assert path.read_text().splitlines() == ["epoch,loss,val_loss", "3,0.25,NA"]
