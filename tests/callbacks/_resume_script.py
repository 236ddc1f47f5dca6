"""Trains a tiny model with BackupAndRestore; the fault-tolerance tests kill and restart it.

Usage: python _resume_script.py BACKUP_DIR OUTPUT_FILE

Environment (all optional):
    SAVE_FREQ: BackupAndRestore's save_freq, an int or "epoch". Defaults to 5.
    PAUSE_AT_STEP: after the batch that makes this many optimizer steps,
        print "PAUSED" and wait to be killed.
    KILL_IN_WRITE: SIGKILL this process itself halfway through writing its
        n-th backup of this run (a test-only hook, patched in from here).

On completion it writes the final state_dict and the History to OUTPUT_FILE.
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


class _PauseAt(torchfit.callbacks.Callback):
    def __init__(self, step: int):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if self.model.optimizer.iterations == self.step:
            print("PAUSED", flush=True)
            while True:
                time.sleep(1)


def main(backup_dir: str, output_file: str) -> None:
    torch.set_num_threads(1)
    save_freq = os.environ.get("SAVE_FREQ", "5")
    save_freq = save_freq if save_freq == "epoch" else int(save_freq)
    if os.environ.get("KILL_IN_WRITE"):
        _kill_while_writing(int(os.environ["KILL_IN_WRITE"]))

    torchfit.utils.set_random_seed(1234)
    x = np.random.rand(88, 6).astype("float32")
    y = (x.sum(axis=1, keepdims=True) > 3).astype("float32")
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
    model = torchfit.Model(net, device="cpu")
    model.compile(optimizer=torchfit.optimizers.RMSprop(learning_rate=0.01),
                  loss="binary_crossentropy", metrics=["accuracy"])
    callbacks = [backup_and_restore.BackupAndRestore(backup_dir, save_freq=save_freq)]
    if os.environ.get("PAUSE_AT_STEP"):
        callbacks.append(_PauseAt(int(os.environ["PAUSE_AT_STEP"])))
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=True, verbose=0, callbacks=callbacks)
    torch.save({"weights": net.state_dict(), "history": history.history, "epoch": history.epoch},
               output_file)
    print("DONE", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
