from torchfit.callbacks import CallbackList, CSVLogger


def _fit(logger, epoch_logs):
    callbacks = CallbackList([logger], verbose=0, epochs=len(epoch_logs), steps=1)
    callbacks.on_train_begin()
    for epoch, logs in enumerate(epoch_logs):
        callbacks.on_epoch_end(epoch, logs)
    callbacks.on_train_end()


def test_epoch_column_from_zero_then_sorted_keys(tmp_path):
    path = tmp_path / "log.csv"
    _fit(CSVLogger(path), [{"loss": 0.5, "acc": 0.25, "val_loss": 0.75, "val_acc": 0.5}, {"loss": 0.25, "acc": 0.5, "val_loss": 0.5, "val_acc": 0.75}])
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
    model.fit(x, x[:, :1], epochs=3, batch_size=4, verbose=0, validation_data=(x, x[:, :1]), callbacks=[CSVLogger(path)])
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,loss,val_loss"
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "1", "2"]
