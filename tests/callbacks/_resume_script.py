"""Trains a tiny model with BackupAndRestore; the fault-tolerance tests kill and restart it.

Usage: python _resume_script.py WORK_DIR

The run has EarlyStopping (restoring the best weights), ModelCheckpoint
(save_best_only), BackupAndRestore, CSVLogger and ReduceLROnPlateau, in that
order, so callbacks both before and after BackupAndRestore must be resumed.
Everything is written under WORK_DIR: the backup (`backup/`), the best
checkpoint (`best.pt`), the CSV log (`log.csv`) and, on completion, the
final weights, History and the callbacks' results (`result.pt`).

Environment (all optional):
    SAVE_FREQ: BackupAndRestore's save_freq, an int or "epoch". Defaults to 5.
    PAUSE_AT_STEP: after the batch that makes this many optimizer steps,
        print "PAUSED" and wait to be killed.
    PAUSE_AT_EPOCH_END: the same, once every callback has seen the end of
        this epoch (from 0): its CSV row and checkpoint are written, its
        backup is not yet.
    PAUSE_AFTER_BACKUP_IN_EPOCH: the same, right after writing the first
        backup of this epoch (from 0).
    KILL_IN_WRITE: SIGKILL this process itself halfway through writing its
        n-th backup of this run (a test-only hook, patched in from here).
"""

import contextlib
import io
import os
import signal
import sys
import time

import numpy as np
import torch
from torch import nn

import torchfit
from torchfit.callbacks import backup_and_restore

EPOCHS = 12


def _kill_while_writing(nth: int) -> None:
    """Patches the callback's atomic_write: the n-th write stops half done, killed."""
    real_atomic_write = backup_and_restore.atomic_write
    calls = [0]

    @contextlib.contextmanager
    def atomic_write(path, mode="wb"):
        calls[0] += 1
        if calls[0] != nth:
            with real_atomic_write(path, mode) as file:
                yield file
            return
        buffer = io.BytesIO()
        yield buffer
        with real_atomic_write(path, mode) as file:
            data = buffer.getvalue()
            file.write(data[: len(data) // 2])
            file.flush()
            os.fsync(file.fileno())
            print("KILLED_IN_WRITE", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    backup_and_restore.atomic_write = atomic_write


def _pause() -> None:
    print("PAUSED", flush=True)
    while True:
        time.sleep(1)


class _PauseAt(torchfit.callbacks.Callback):
    def __init__(self, step=None, epoch_end=None):
        super().__init__()
        self.step, self.epoch_end = step, epoch_end

    def on_train_batch_end(self, batch, logs=None):
        if self.model.optimizer.iterations == self.step:
            _pause()

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch_end:
            _pause()


class _PausingBackup(backup_and_restore.BackupAndRestore):
    """Pauses right after writing the first backup of epoch `pause_epoch`."""

    def __init__(self, *args, pause_epoch=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.pause_epoch = pause_epoch

    def _save(self, epoch, batch):
        super()._save(epoch, batch)
        if epoch == self.pause_epoch:
            _pause()


def _env_int(name):
    value = os.environ.get(name)
    return None if value is None else int(value)


def main(work_dir: str) -> None:
    torch.set_num_threads(1)
    save_freq = os.environ.get("SAVE_FREQ", "5")
    save_freq = save_freq if save_freq == "epoch" else int(save_freq)
    if os.environ.get("KILL_IN_WRITE"):
        _kill_while_writing(int(os.environ["KILL_IN_WRITE"]))

    torchfit.utils.set_random_seed(1234)
    x = np.random.rand(88, 6).astype("float32")
    y = (x.sum(axis=1, keepdims=True) > 3).astype("float32")
    x_val = np.random.rand(40, 6).astype("float32")
    y_val = (x_val.sum(axis=1, keepdims=True) > 3).astype("float32")
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
    model = torchfit.Model(net, device="cpu")
    model.compile(
        optimizer=torchfit.optimizers.RMSprop(learning_rate=0.01),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = torchfit.callbacks
    stopper = callbacks.EarlyStopping(patience=3, min_delta=0.005, restore_best_weights=True)
    checkpoint = callbacks.ModelCheckpoint(
        os.path.join(work_dir, "best.pt"), save_best_only=True, save_weights_only=True
    )
    backup = _PausingBackup(
        os.path.join(work_dir, "backup"),
        save_freq=save_freq,
        pause_epoch=_env_int("PAUSE_AFTER_BACKUP_IN_EPOCH"),
    )
    run_callbacks = [
        stopper,
        checkpoint,
        backup,
        callbacks.CSVLogger(os.path.join(work_dir, "log.csv")),
        callbacks.ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2, min_delta=0.01),
        _PauseAt(step=_env_int("PAUSE_AT_STEP"), epoch_end=_env_int("PAUSE_AT_EPOCH_END")),
    ]
    history = model.fit(
        x,
        y,
        batch_size=8,
        epochs=EPOCHS,
        validation_data=(x_val, y_val),
        shuffle=True,
        verbose=0,
        callbacks=run_callbacks,
    )
    torch.save(
        {
            "weights": net.state_dict(),
            "history": history.history,
            "epoch": history.epoch,
            "stopped_epoch": stopper.stopped_epoch,
            "best_epoch": stopper.best_epoch,
            "checkpoint_best": checkpoint.best,
        },
        os.path.join(work_dir, "result.pt"),
    )
    print("DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
