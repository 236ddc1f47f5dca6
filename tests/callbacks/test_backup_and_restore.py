"""Tests for BackupAndRestore: exact resumption after SIGKILL, and its options."""

import concurrent.futures
import glob
import os
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
STOPPED_EPOCH = 9  # where EarlyStopping ends the uninterrupted run (of 12)


# ------------------------------------------------------------ SIGKILL suite


def _start(work_dir, **env):
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", **{k: str(v) for k, v in env.items()}}
    return subprocess.Popen(
        [sys.executable, SCRIPT, str(work_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
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


def _kill_and_restart(work_dir, kills, env):
    """Runs the script, killing it at each point in turn, then lets it finish."""
    for kill in kills:
        process = _start(work_dir, **env, **kill)
        assert _run_until_killed_or_done(process) == "killed", f"never reached {kill}"
        assert process.returncode == -signal.SIGKILL
        if "KILL_IN_WRITE" in kill:
            torn = glob.glob(os.path.join(work_dir, "backup", ".latest.pt.*.tmp"))
            assert torn, "the kill should have left a half-written temporary file"
            survivor = torch.load(work_dir / "backup" / "latest.pt", weights_only=True)
            assert (survivor["epoch"], survivor["batch"]) == (0, 5)
        assert os.path.exists(work_dir / "backup" / "latest.pt")
    assert _run_until_killed_or_done(_start(work_dir, **env)) == "done"
    return torch.load(work_dir / "result.pt", weights_only=True)


def test_sigkill_anywhere_resumes_weights_callbacks_and_files_exactly(tmp_path):
    """Killed mid-write, right after a backup, at an epoch end before its backup, and
    while ReduceLROnPlateau cools down and EarlyStopping waits, the resumed runs end as
    the uninterrupted one: weights, History (with the learning rate), best checkpoint,
    CSV rows and stopping epoch."""
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    reference = _start(reference_dir)
    chains = {
        # Backups every 5 batches (the one due after an epoch's last batch is made when
        # the next epoch begins). The second backup (batch 10) is cut halfway: the run
        # resumes from batch 5. Step 57 is in epoch 5, after the backup made when it began.
        "a": (
            {"SAVE_FREQ": 5},
            [{"KILL_IN_WRITE": 2}, {"PAUSE_AFTER_BACKUP_IN_EPOCH": 2}, {"PAUSE_AT_STEP": 57}],
        ),
        # Backups when each epoch begins; killed after an epoch's CSV row, checkpoint and
        # judgements but before its backup, and in the epoch EarlyStopping stops at.
        "b": (
            {"SAVE_FREQ": "epoch"},
            [
                {"PAUSE_AT_EPOCH_END": 1},
                {"PAUSE_AT_EPOCH_END": 8},
                {"PAUSE_AT_STEP": STOPPED_EPOCH * STEPS_PER_EPOCH + 4},
            ],
        ),
    }
    for name in chains:
        (tmp_path / name).mkdir()
    with concurrent.futures.ThreadPoolExecutor(len(chains)) as pool:
        futures = {
            name: pool.submit(_kill_and_restart, tmp_path / name, kills, env)
            for name, (env, kills) in chains.items()
        }
        results = {name: future.result() for name, future in futures.items()}
    assert _run_until_killed_or_done(reference) == "done"

    expected = torch.load(reference_dir / "result.pt", weights_only=True)
    # The uninterrupted run exercises every callback's state.
    assert expected["stopped_epoch"] == STOPPED_EPOCH and expected["best_epoch"] < STOPPED_EPOCH
    assert len(set(expected["history"]["learning_rate"])) > 2, "ReduceLROnPlateau should act"
    expected_best = torch.load(reference_dir / "best.pt", weights_only=True)
    expected_rows = (reference_dir / "log.csv").read_text()
    assert len(expected_rows.splitlines()) == STOPPED_EPOCH + 2  # header and one row per epoch
    for name, resumed in results.items():
        work_dir = tmp_path / name
        for key, value in expected["weights"].items():
            assert torch.equal(resumed["weights"][key], value), (name, key)
        assert resumed["history"] == expected["history"], name
        assert resumed["epoch"] == expected["epoch"] == list(range(STOPPED_EPOCH + 1))
        assert resumed["stopped_epoch"] == expected["stopped_epoch"], name
        assert resumed["checkpoint_best"] == expected["checkpoint_best"], name
        best = torch.load(work_dir / "best.pt", weights_only=True)
        assert all(torch.equal(best[key], value) for key, value in expected_best.items()), name
        assert (work_dir / "log.csv").read_text() == expected_rows, name
        assert not os.path.exists(work_dir / "backup"), (
            "delete_checkpoint should remove the backup and temp files"
        )


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
    model.compile(
        optimizer=torchfit.optimizers.Adam(learning_rate=schedule),
        loss=nn.CrossEntropyLoss(),
        metrics=["sparse_categorical_accuracy"],
    )
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


def _train_with_callbacks(work_dir, backup_first, interrupt_at=None, save_freq=2):
    """A run with every stateful built-in callback, BackupAndRestore first or last."""
    from torchfit import callbacks

    torchfit.utils.set_random_seed(3)
    x = np.random.rand(40, 5).astype("float32")
    y = np.random.randint(0, 3, size=(40,))
    net = nn.Sequential(nn.Linear(5, 12), nn.Dropout(0.25), nn.Tanh(), nn.Linear(12, 3))
    model = torchfit.Model(net, device="cpu")
    model.compile(
        optimizer=torchfit.optimizers.SGD(learning_rate=0.2, momentum=0.9),
        loss=nn.CrossEntropyLoss(),
        metrics=["sparse_categorical_accuracy"],
    )
    stopper = callbacks.EarlyStopping(
        monitor="loss", patience=3, min_delta=0.03, restore_best_weights=True
    )
    others = [
        callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.9),
        stopper,
        callbacks.ReduceLROnPlateau(
            monitor="loss", factor=0.5, patience=1, cooldown=2, min_delta=0.02
        ),
        callbacks.ModelCheckpoint(
            str(work_dir / "best.pt"), monitor="loss", save_best_only=True, save_weights_only=True
        ),
        callbacks.CSVLogger(work_dir / "log.csv"),
    ]
    backup = BackupAndRestore(work_dir / "backup", save_freq=save_freq)
    run = [backup, *others] if backup_first else [*others, backup]
    if interrupt_at is not None:
        run.append(_Interrupt(interrupt_at))
    history = model.fit(x, y, batch_size=8, epochs=12, verbose=0, callbacks=run)
    return net, history, stopper


@pytest.mark.parametrize("backup_first", [True, False], ids=["backup_first", "backup_last"])
@pytest.mark.parametrize("save_freq, interrupt_at", [(2, 13), ("epoch", 21), (2, 37)])
def test_resume_carries_every_callbacks_state(tmp_path, backup_first, save_freq, interrupt_at):
    reference_dir, resumed_dir = tmp_path / "reference", tmp_path / "resumed"
    reference_dir.mkdir(), resumed_dir.mkdir()
    reference, reference_history, reference_stopper = _train_with_callbacks(
        reference_dir, backup_first
    )
    # The uninterrupted run stops early (at 8 of 12), after the learning rate went down
    # more than the scheduler alone would take it. Interrupted in epoch 2 (right after a
    # reduction: cooling down), 4, or 7 (EarlyStopping waiting, cooling down again).
    assert reference_stopper.stopped_epoch == 8
    rates = reference_history.history["learning_rate"]
    assert any(later < 0.85 * earlier for earlier, later in zip(rates, rates[1:]))
    with pytest.raises(KeyboardInterrupt):
        _train_with_callbacks(
            resumed_dir, backup_first, interrupt_at=interrupt_at, save_freq=save_freq
        )
    resumed, history, stopper = _train_with_callbacks(
        resumed_dir, backup_first, save_freq=save_freq
    )
    _assert_same_weights(reference, resumed)
    assert history.history == reference_history.history
    assert stopper.stopped_epoch == reference_stopper.stopped_epoch
    assert (resumed_dir / "log.csv").read_text() == (reference_dir / "log.csv").read_text()
    best, expected = (
        torch.load(d / "best.pt", weights_only=True) for d in (resumed_dir, reference_dir)
    )
    assert all(torch.equal(best[key], value) for key, value in expected.items())


def test_backup_of_a_stopped_run_trains_no_more(tmp_path):
    def train():
        torchfit.utils.set_random_seed(5)
        x = np.random.rand(16, 3).astype("float32")
        model = torchfit.Model(nn.Linear(3, 1), device="cpu")
        model.compile(optimizer="sgd", loss="mse")
        stopper = torchfit.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=1)
        backup = BackupAndRestore(tmp_path, delete_checkpoint=False)
        return model.fit(x, x[:, :1], epochs=6, verbose=0, callbacks=[stopper, backup])

    assert train().epoch == [0, 1]
    history = train()
    assert history.epoch == [0, 1] and history.params["epochs"] == 6


def test_backup_dir_that_is_a_file_fails_before_training(tmp_path):
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(ValueError, match="`backup_dir` must be a folder, but .*taken' is a file"):
        _train(tmp_path / "taken", epochs=1)
    with pytest.raises(
        ValueError, match="`backup_dir` .*sub' cannot be a folder: .*taken' above it is a file"
    ):
        _train(tmp_path / "taken" / "sub", epochs=1)
    assert (tmp_path / "taken").read_text() == "mine"


def test_states_of_callbacks_the_resumed_run_lacks_are_named(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, interrupt_at=7)
    backup = torch.load(tmp_path / "latest.pt", weights_only=True)
    backup["callbacks"] = {"EarlyStopping": {"best": 1.0}}
    torch.save(backup, tmp_path / "latest.pt")
    with pytest.warns(UserWarning, match=r"does not have: \['EarlyStopping'\]"):
        _train(tmp_path)


def _train_counting_batches(work_dir, interrupt_at=None):
    torchfit.utils.set_random_seed(11)
    x = np.random.rand(40, 5).astype("float32")
    model = torchfit.Model(nn.Linear(5, 1), device="cpu")
    model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=0.1), loss="mse")
    # Callbacks counting batches after the backup: their count of the batch a backup
    # follows must be in that backup.
    board = torchfit.callbacks.TensorBoard(str(work_dir / "logs"), update_freq=1, write_graph=False)
    run = [
        BackupAndRestore(work_dir / "backup", save_freq=2),
        torchfit.callbacks.ModelCheckpoint(
            str(work_dir / "e{epoch}-b{batch}.pt"), save_freq=3, save_weights_only=True
        ),
        board,
    ]
    if interrupt_at is not None:
        run.append(_Interrupt(interrupt_at))
    model.fit(x, x[:, :1], batch_size=8, epochs=3, verbose=0, callbacks=run)
    return board


def test_resume_keeps_batch_counting_callbacks_in_step(tmp_path):
    reference_dir, resumed_dir = tmp_path / "reference", tmp_path / "resumed"
    reference = _train_counting_batches(reference_dir)
    with pytest.raises(KeyboardInterrupt):
        _train_counting_batches(resumed_dir, interrupt_at=8)  # resumes after batch 8
    resumed = _train_counting_batches(resumed_dir)
    assert resumed.state_dict() == reference.state_dict() == {"global_train_batch": 15}
    names = sorted(name for name in os.listdir(reference_dir) if name.endswith(".pt"))
    assert names == ["e1-b3.pt", "e2-b1.pt", "e2-b4.pt", "e3-b2.pt", "e3-b5.pt"]
    assert sorted(name for name in os.listdir(resumed_dir) if name.endswith(".pt")) == names
    for name in names:
        expected = torch.load(reference_dir / name, weights_only=True)
        saved = torch.load(resumed_dir / name, weights_only=True)
        assert all(torch.equal(saved[key], value) for key, value in expected.items()), name


@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="needs torch.distributed with Gloo",
)
def test_under_torch_distributed_rank_zero_writes_the_backup(tmp_path):
    # A one-process Gloo group: this process is rank 0, the one that writes
    # (tests/distribution runs two ranks under torchrun).
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        _, history = _train(tmp_path / "backup", epochs=2, delete_checkpoint=False)
    finally:
        torch.distributed.destroy_process_group()
    backup = torch.load(tmp_path / "backup" / "latest.pt", weights_only=True)
    assert backup["epoch"] == 2 and history.epoch == [0, 1]
