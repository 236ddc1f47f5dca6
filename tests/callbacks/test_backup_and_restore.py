"""Tests for BackupAndRestore: exact resumption after SIGKILL, and its options."""

import concurrent.futures
import glob
import os
import random
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit.callbacks import BackupAndRestore, Callback

SCRIPT = os.path.join(os.path.dirname(__file__), "_resume_script.py")
STEPS_PER_EPOCH = 11  # 88 samples, batch_size 8, in _resume_script.py
EPOCHS = 3


# ------------------------------------------------------------ SIGKILL suite

def _start(backup_dir, output_file, **env):
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", **{k: str(v) for k, v in env.items()}}
    return subprocess.Popen(
        [sys.executable, SCRIPT, str(backup_dir), str(output_file)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment,
    )


def _run_until_killed_or_done(process) -> str:
    """Reads the script's markers; SIGKILLs it when it pauses. Returns how it ended."""
    output = []
    try:
        for line in process.stdout:
            output.append(line)
            if line.startswith("PAUSED"):
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=60)
                return "killed"
            if line.startswith("KILLED_IN_WRITE"):
                process.wait(timeout=60)
                return "killed"
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode != 0:
        raise AssertionError("the training script failed:\n" + "".join(output[-40:]))
    return "done"


def _kill_and_restart(backup_dir, output, kill_steps, kill_in_write=None):
    """Runs the script, killing it at each step in turn, then lets it finish."""
    if kill_in_write is not None:
        process = _start(backup_dir, output, KILL_IN_WRITE=kill_in_write)
        assert _run_until_killed_or_done(process) == "killed"
        assert process.returncode == -signal.SIGKILL
        torn = glob.glob(os.path.join(backup_dir, ".latest.pt.*.tmp"))
        assert torn, "the kill should have left a half-written temporary file"
        survivor = torch.load(backup_dir / "latest.pt", weights_only=True)
        assert (survivor["epoch"], survivor["batch"]) == (0, 5)
    for step in kill_steps:
        process = _start(backup_dir, output, PAUSE_AT_STEP=step)
        assert _run_until_killed_or_done(process) == "killed", f"never reached step {step}"
        assert process.returncode == -signal.SIGKILL
        assert os.path.exists(backup_dir / "latest.pt")
    assert _run_until_killed_or_done(_start(backup_dir, output)) == "done"
    return torch.load(output, weights_only=True)


def test_sigkill_at_random_steps_and_mid_write_resumes_bitwise(tmp_path):
    reference = _start(tmp_path / "reference_backup", tmp_path / "reference.pt")
    # Six kills in two chains run side by side: one halfway through writing
    # the second backup (made at step 10; the run resumes from step 5), then
    # five at random optimizer steps, each chain killed at increasing steps.
    rng = random.Random(20240607)
    steps = rng.sample(range(6, EPOCHS * STEPS_PER_EPOCH + 1), 5)
    chains = [
        (tmp_path / "backup_a", tmp_path / "resumed_a.pt", sorted(steps[:2]), 2),
        (tmp_path / "backup_b", tmp_path / "resumed_b.pt", sorted(steps[2:]), None),
    ]
    with concurrent.futures.ThreadPoolExecutor(len(chains)) as pool:
        results = [future.result() for future in [pool.submit(_kill_and_restart, *chain) for chain in chains]]
    assert _run_until_killed_or_done(reference) == "done"

    expected = torch.load(tmp_path / "reference.pt", weights_only=True)
    for (backup_dir, _, _, _), resumed in zip(chains, results):
        for key, value in expected["weights"].items():
            assert torch.equal(resumed["weights"][key], value), key
        assert resumed["history"] == expected["history"]
        assert resumed["epoch"] == expected["epoch"] == list(range(EPOCHS))
        assert not os.path.exists(backup_dir), "delete_checkpoint should remove the backup and temp files"


# --------------------------------------------------------- in-process tests

class _Interrupt(Callback):
    """Raises once the optimizer has made `step` steps (a crash, in-process)."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if self.model.optimizer.iterations == self.step:
            raise KeyboardInterrupt("interrupted")


def _train(backup_dir, interrupt_at=None, epochs=4, **backup_kwargs):
    torchfit.utils.set_random_seed(7)
    x = np.random.rand(40, 5).astype("float32")
    y = np.random.randint(0, 3, size=(40,))
    net = nn.Sequential(nn.Linear(5, 12), nn.Dropout(0.25), nn.Tanh(), nn.Linear(12, 3))
    model = torchfit.Model(net, device="cpu")
    schedule = torchfit.optimizers.schedules.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.7)
    model.compile(optimizer=torchfit.optimizers.Adam(learning_rate=schedule),
                  loss=nn.CrossEntropyLoss(), metrics=["sparse_categorical_accuracy"])
    callbacks = [BackupAndRestore(backup_dir, **backup_kwargs)]
    if interrupt_at is not None:
        callbacks.append(_Interrupt(interrupt_at))
    history = model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, callbacks=callbacks)
    return net, history


def _assert_same_weights(net_a, net_b):
    for (name, a), b in zip(net_a.state_dict().items(), net_b.state_dict().values()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("save_freq, interrupt_at", [("epoch", 12), (3, 13), (2, 10)])
def test_resume_after_crash_matches_uninterrupted_run(tmp_path, save_freq, interrupt_at):
    reference, reference_history = _train(tmp_path / "reference", save_freq=save_freq)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "backup", interrupt_at=interrupt_at, save_freq=save_freq)
    assert os.path.exists(tmp_path / "backup" / "latest.pt")
    resumed, history = _train(tmp_path / "backup", save_freq=save_freq)
    _assert_same_weights(reference, resumed)
    assert history.history == reference_history.history
    assert history.epoch == reference_history.epoch == [0, 1, 2, 3]


def test_epoch_backup_resumes_at_next_epoch(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, interrupt_at=11)  # 5 steps per epoch: in the third epoch
    backup = torch.load(tmp_path / "latest.pt", weights_only=True)
    assert (backup["epoch"], backup["batch"]) == (2, None)
    assert backup["history"]["epoch"] == [0, 1]
    assert backup["optimizer"]["torchfit"]["iterations"] == 10
    assert set(backup["rng"]) >= {"torch", "numpy", "python", "cuda"}


def test_batch_backup_holds_epoch_start_rng_and_metric_states(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, interrupt_at=7, save_freq=2)
    backup = torch.load(tmp_path / "latest.pt", weights_only=True)
    assert (backup["epoch"], backup["batch"]) == (1, 1)  # steps 6 = epoch 1, one batch in
    assert backup["epoch_rng"] is not None
    assert len(backup["metrics"]) == 2  # loss tracker, accuracy


def test_backup_due_at_last_batch_waits_for_epoch_end(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, interrupt_at=6, save_freq=5)
    backup = torch.load(tmp_path / "latest.pt", weights_only=True)
    assert (backup["epoch"], backup["batch"]) == (1, None)


def test_double_checkpoint_falls_back_to_previous_backup(tmp_path):
    reference, _ = _train(tmp_path / "reference")
    backup_dir = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        _train(backup_dir, interrupt_at=16, double_checkpoint=True)
    latest, previous = backup_dir / "latest.pt", backup_dir / "latest.pt.bkp"
    assert torch.load(previous, weights_only=True)["epoch"] == 2
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 3])
    with pytest.warns(UserWarning, match="previous backup"):
        resumed, history = _train(backup_dir, double_checkpoint=True)
    _assert_same_weights(reference, resumed)
    assert history.epoch == [0, 1, 2, 3]


def test_unreadable_backup_without_previous_is_a_clear_error(tmp_path):
    (tmp_path / "latest.pt").write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(ValueError, match="cannot be read.*Delete it"):
        _train(tmp_path)


@pytest.mark.parametrize("delete_checkpoint", [True, False])
def test_delete_checkpoint(tmp_path, delete_checkpoint):
    _train(tmp_path / "backup", epochs=1, delete_checkpoint=delete_checkpoint)
    assert os.path.exists(tmp_path / "backup" / "latest.pt") is not delete_checkpoint
    assert os.path.exists(tmp_path / "backup") is not delete_checkpoint


def test_delete_checkpoint_leaves_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    _train(tmp_path, epochs=1)
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_finished_backup_trains_no_more_epochs(tmp_path):
    reference, _ = _train(tmp_path / "reference", epochs=2)
    _train(tmp_path / "backup", epochs=2, delete_checkpoint=False)
    resumed, history = _train(tmp_path / "backup", epochs=2, delete_checkpoint=False)
    _assert_same_weights(reference, resumed)
    assert history.epoch == [0, 1]


@pytest.mark.parametrize("save_freq", [0, -3, 1.5, "batch", True])
def test_bad_save_freq(tmp_path, save_freq):
    with pytest.raises(ValueError, match="save_freq"):
        BackupAndRestore(tmp_path, save_freq=save_freq)


def test_empty_backup_dir():
    with pytest.raises(ValueError, match="backup_dir"):
        BackupAndRestore("")
