"""Backs up training as it runs, so a run killed at any step resumes exactly.

Owns the backup file (what it holds, when it is written, the `.bkp` copy and
the fallback to it) and putting a resumed run back where the killed one was:
weights, optimizer state (with its iteration count, hence the position of
a learning-rate schedule), random generator states, the data order of the
interrupted epoch, the metric states, the `History` so far, epoch and batch,
and the state of every other callback of the run (their `state_dict()`).
Skipping already trained batches belongs to `loops.train_epoch` (through
`model.resume_point`); what each callback's state holds to that callback;
writing and reading files to `utils.file_utils` and `utils.torch_files`;
capturing generator states to `utils.rng_state`.
"""

import copy
import glob
import os
import warnings
from typing import Any, Optional, Union

import torch

from torchfit.callbacks.callback import Callback, Logs, check_batch_frequency
from torchfit.distribution import distribution_of
from torchfit.utils.file_utils import atomic_write, check_folder
from torchfit.utils.rng_state import get_rng_state, set_rng_state
from torchfit.utils.torch_files import cpu_state_dict, load_state, read_torch_file

__all__ = ["BackupAndRestore", "ResumePoint"]

FORMAT = "torchfit.backup"
VERSION = 1
BACKUP_NAME = "latest.pt"


class ResumePoint:
    """Where an interrupted run resumes: what `BackupAndRestore` sets as
    `model.resume_point`, and the loops read (see `loops.fit_loop`).

    Args:
        epoch: The epoch to start at (0-based).
        skip_batches: The batches of that epoch already trained on, skipped
            (its data order is drawn again as it was). Defaults to 0.
        on_resumed: Called with the first batch trained, before its step.
            Defaults to `None`.

    Example:
    >>> ResumePoint(epoch=2).skip_batches
    0
    """

    def __init__(self, epoch: int, skip_batches: int = 0, on_resumed=None):
        self.epoch = epoch
        self.skip_batches = skip_batches
        self.on_resumed = on_resumed

    def resumed(self, batch: Any) -> None:
        """The loop is about to train `batch`, the first one after the skipped ones."""
        if self.on_resumed is not None:
            self.on_resumed(batch)


def _plain_history(history: dict, epochs: list) -> dict:
    """The History as plain data (the numeric series only)."""
    values = {
        key: [float(v) if isinstance(v, (int, float)) else v for v in items]
        for key, items in history.items()
    }
    values = {
        key: items
        for key, items in values.items()
        if all(isinstance(v, (int, float)) for v in items)
    }
    return {"history": values, "epoch": list(epochs)}


def _state_keys(callbacks: list) -> list:
    """One key per callback, its class name, numbered from the second of a kind."""
    seen: dict = {}
    keys = []
    for callback in callbacks:
        name = type(callback).__name__
        count = seen.get(name, 0)
        seen[name] = count + 1
        keys.append(name if count == 0 else f"{name}_{count}")
    return keys


class BackupAndRestore(Callback):
    """Backs up the training state so that an interrupted `fit` resumes exactly.

    At the end of each epoch (or every `save_freq` batches) it writes
    `backup_dir/latest.pt`: the weights, the optimizer state (with its
    iteration count, hence the position of a learning-rate schedule), the
    states of torch's (CPU and CUDA), NumPy's and Python's random generators,
    the `History` so far, the epoch and batch reached and, mid-epoch, the
    metric states and the generator states at the start of the epoch, and
    the `state_dict()` of every other callback of the run (`EarlyStopping`'s
    wait and best weights, `ModelCheckpoint`'s best value,
    `ReduceLROnPlateau`'s wait and cooldown, how far `CSVLogger` has written
    its file, ...). Run the same script again: `fit` starts where the backup
    was made, redraws the same shuffling order for the interrupted epoch,
    skips the batches already trained on, and ends with the same weights,
    the same checkpoints, CSV rows and stopping epoch as a run never
    interrupted (bitwise on CPU with a fixed seed). Files are written to a
    temporary file and renamed, so a kill while writing leaves the previous
    backup intact.

    A backup is taken once every callback has seen the epoch (or batch) it
    follows: the one due at an epoch's end is written when the next epoch
    begins (or when training ends, with `delete_checkpoint=False`), the one
    due after a batch when the next batch begins. A callback's state is
    given back after its `on_train_begin` and before its first
    `on_epoch_begin`, whatever the order of the callbacks.

    Not restored: the data order of sources that do not draw it from torch's
    global generator at the start of an epoch (generators, `steps_per_epoch`
    shorter than the data).

    Args:
        backup_dir: Folder for the backup; created if missing. Use a
            different folder for each run.
        save_freq: `"epoch"`, or an integer: back up every that many batches
            (a backup due at the last batch of an epoch is made at the end
            of that epoch instead). Defaults to `"epoch"`.
        double_checkpoint: Keep the previous backup as `latest.pt.bkp`, and
            fall back to it when the latest one cannot be read. Defaults to
            `False`.
        delete_checkpoint: Delete the backup files when training ends
            normally (other files in `backup_dir` are left alone; the folder
            is removed if then empty). Defaults to `True`.

    Raises:
        ValueError: For an empty `backup_dir` or a `save_freq` that is
            neither `"epoch"` nor a positive integer; when training starts,
            if `backup_dir` (or a folder above it) is a file, or holds a
            backup that cannot be read.

    Example:
    >>> import tempfile
    >>> callback = BackupAndRestore(backup_dir=tempfile.mkdtemp(), save_freq=100)
    >>> os.path.basename(callback._backup_path)
    'latest.pt'
    """

    def __init__(
        self,
        backup_dir: Union[str, os.PathLike],
        save_freq: Union[str, int] = "epoch",
        double_checkpoint: bool = False,
        delete_checkpoint: bool = True,
    ):
        super().__init__()
        if not backup_dir:
            raise ValueError(
                f"`backup_dir` must be a folder path. Received: backup_dir={backup_dir!r}."
            )
        check_batch_frequency("save_freq", save_freq)
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self._backup_path = os.path.join(self.backup_dir, BACKUP_NAME)
        self._previous_path = self._backup_path + ".bkp"
        self._callbacks: list = []
        self._reset_run_state()

    def set_callbacks(self, callbacks: list) -> None:
        """Gives the callbacks of the run (this one among them), whose states
        the backup carries. `CallbackList` calls it.

        Args:
            callbacks: The run's callbacks, in the order their hooks are called.
        """
        self._callbacks = callbacks

    def _reset_run_state(self) -> None:
        self._current_epoch = 0
        self._batches_since_saving = 0
        self._save_at_epoch_end = False
        self._pending: Optional[tuple] = None  # (epoch, batch) of a backup due
        self._epoch_start_rng: Optional[dict] = None
        self._restored: Optional[dict] = None  # applied at the first epoch begin
        self._states_to_restore: list = []  # callbacks after this one, and their states

    def _overrides(self, hook: str) -> bool:
        if hook in ("on_train_batch_begin", "on_batch_begin", "on_train_batch_end", "on_batch_end"):
            return self.save_freq != "epoch"
        return super()._overrides(hook)

    # ---------------------------------------------------------------- restore

    def on_train_begin(self, logs: Logs = None) -> None:
        check_folder("backup_dir", self.backup_dir)
        self._reset_run_state()
        backup = self._read_backup()
        if backup is None:
            return
        model = self.model
        load_state(model.weights_module, backup["weights"], self._backup_path)
        if backup.get("optimizer") is not None and model.optimizer is not None:
            model.optimizer.load_state_dict(backup["optimizer"])
        model.resume_point = self._resume_point(backup)
        self._current_epoch = backup["epoch"]
        self._batches_since_saving = backup.get("batches_since_saving", 0)
        self._restore_callbacks(backup.get("callbacks") or {})
        # The generator states, History and metric states are put back at the
        # start of the first epoch, right before its data order is drawn: other
        # callbacks' on_train_begin must not shift the generators.
        self._restored = backup

    def _resume_point(self, backup: dict) -> ResumePoint:
        if backup.get("stop_training"):
            # The run had stopped early (EarlyStopping): train no more epochs.
            return ResumePoint(max(backup["epoch"], (self.params or {}).get("epochs", 0)))
        if backup["batch"] is None:
            return ResumePoint(backup["epoch"])
        # The interrupted epoch's data order is drawn again (on_epoch_begin); the
        # batches already trained on are skipped, then the metric states restored.
        return ResumePoint(
            backup["epoch"], backup["batch"], lambda batch: self._on_resumed(batch, backup)
        )

    def _restore_callbacks(self, states: dict) -> None:
        """Gives each callback its state: now to those whose on_train_begin has
        run, at the first epoch begin to those after this one."""
        others = [(index, c) for index, c in enumerate(self._callbacks) if c is not self]
        own_index = next(
            (i for i, c in enumerate(self._callbacks) if c is self), len(self._callbacks)
        )
        keys = _state_keys([callback for _, callback in others])
        unknown = set(states) - set(keys)
        if unknown and self._is_writer():
            warnings.warn(
                f"The backup in {self.backup_dir!r} holds the state of callbacks this run"
                f" does not have: {sorted(unknown)}. They are not restored.",
                stacklevel=3,
            )
        for (index, callback), key in zip(others, keys):
            if key not in states:
                continue
            if index < own_index:
                callback.load_state_dict(states[key])
            else:
                self._states_to_restore.append((callback, states[key]))

    def _restore_later_callbacks(self) -> None:
        pending, self._states_to_restore = self._states_to_restore, []
        for callback, state in pending:
            callback.load_state_dict(state)

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        self._write_pending()
        self._restore_later_callbacks()
        backup, self._restored = self._restored, None
        if backup is not None and backup["epoch"] == epoch:
            self._restore_history(backup["history"])
            # Redraw the interrupted epoch's data order: the loop then resumes after
            # the batches already trained on (see `ResumePoint`).
            set_rng_state(backup["rng"] if backup["batch"] is None else backup["epoch_rng"])
        self._epoch_start_rng = get_rng_state()

    def _on_resumed(self, batch: Any, backup: dict) -> None:
        self.model.build_compiled_from(batch)
        self._restore_metrics(backup.get("metrics"))
        set_rng_state(backup["rng"])

    def _restore_history(self, saved: dict) -> None:
        history = getattr(self.model, "history", None)
        if history is None or not hasattr(history, "history"):
            return
        history.history = copy.deepcopy(saved["history"])
        history.epoch = list(saved["epoch"])

    def _is_writer(self) -> bool:
        # Under torch.distributed, every rank restores but only rank 0 writes.
        return distribution_of(self.model).is_chief

    def _metric_states(self) -> list:
        """The metric states of the interrupted epoch, summed over all ranks
        under torch.distributed (so one rank's restore covers everyone's)."""
        model = self.model
        return distribution_of(model).metric_states(model.metrics)

    def _restore_metrics(self, saved: Optional[list]) -> None:
        if saved is None:
            return
        metrics = self.model.metrics
        if not self._is_writer():
            # The backup holds the sums over all ranks: rank 0 carries them alone.
            for metric in metrics:
                metric.reset_state()
            return
        shapes_match = len(saved) == len(metrics) and all(
            len(values) == len(metric.variables)
            and all(tuple(v.shape) == tuple(t.shape) for v, t in zip(values, metric.variables))
            for values, metric in zip(saved, metrics)
        )
        if not shapes_match:
            warnings.warn(
                f"The backup in {self.backup_dir!r} holds metric states that do not fit"
                " this model's metrics; the interrupted epoch's metrics restart from zero.",
                stacklevel=2,
            )
            return
        with torch.no_grad():
            for values, metric in zip(saved, metrics):
                for value, variable in zip(values, metric.variables):
                    variable.copy_(value)

    def _read_backup(self) -> Optional[dict]:
        errors = []
        for path in (self._backup_path, self._previous_path):
            if not os.path.exists(path):
                continue
            try:
                backup = read_torch_file(path, argument="backup file")
            except ValueError as err:
                errors.append(str(err))
                continue
            if (
                isinstance(backup, dict)
                and backup.get("format") == FORMAT
                and backup.get("version") == VERSION
            ):
                if errors:
                    warnings.warn(
                        f"Resuming from the previous backup {path!r}: {errors[0]}", stacklevel=3
                    )
                return backup
            errors.append(f"{path!r} is not a torchfit backup")
        if errors:
            raise ValueError(
                f"`backup_dir` {self.backup_dir!r} holds a backup that cannot be read: "
                + "; ".join(errors)
                + ". Delete it to start training from scratch."
            )
        return None

    # ------------------------------------------------------------------- save

    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None:
        # Every callback has now seen the batch the pending backup follows.
        self._write_pending()

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        if self.save_freq == "epoch":
            return
        self._batches_since_saving += 1
        if self._batches_since_saving < self.save_freq:
            return
        self._batches_since_saving = 0
        steps = (self.params or {}).get("steps")
        if steps is not None and batch + 1 >= steps:
            # After the last batch the next state worth keeping is the
            # epoch's end (its logs, validation): back up there instead.
            self._save_at_epoch_end = True
            return
        self._pending = (self._current_epoch, batch + 1)

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        self._current_epoch = epoch + 1
        # A backup due after the last batch of an epoch of unknown length
        # becomes the epoch's backup.
        batch_due = self._pending is not None
        if self.save_freq == "epoch" or self._save_at_epoch_end or batch_due:
            self._save_at_epoch_end = False
            # Written when the next epoch begins, once every callback has seen
            # this epoch's end (EarlyStopping's wait, the CSV row, ...).
            self._pending = (epoch + 1, None)

    def _write_pending(self) -> None:
        if self._pending is not None:
            (epoch, batch), self._pending = self._pending, None
            self._save(epoch=epoch, batch=batch)

    def _callback_states(self) -> dict:
        callbacks = [c for c in self._callbacks if c is not self]
        states = {}
        for callback, key in zip(callbacks, _state_keys(callbacks)):
            state = callback.state_dict()
            if state:
                states[key] = state
        return states

    def _save(self, epoch: int, batch: Optional[int]) -> None:
        # Every rank takes part in summing the metric states, then rank 0 writes.
        metric_states = self._metric_states() if batch is not None else None
        if not self._is_writer():
            return
        model = self.model
        history = getattr(model, "history", None)
        optimizer = model.optimizer
        backup = {
            "format": FORMAT,
            "version": VERSION,
            "epoch": epoch,
            "batch": batch,
            "batches_since_saving": self._batches_since_saving,
            "weights": cpu_state_dict(model.weights_module),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "rng": get_rng_state(),
            "epoch_rng": self._epoch_start_rng if batch is not None else None,
            "history": _plain_history(
                getattr(history, "history", {}), getattr(history, "epoch", [])
            ),
            "metrics": metric_states,
            "callbacks": self._callback_states(),
            "stop_training": bool(getattr(model, "stop_training", False)),
        }
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.exists(self._backup_path):
            # While only the .bkp exists (a kill right here), it is restored.
            os.replace(self._backup_path, self._previous_path)
        with atomic_write(self._backup_path) as file:
            torch.save(backup, file)

    # -------------------------------------------------------------------- end

    def on_train_end(self, logs: Logs = None) -> None:
        self._restore_later_callbacks()
        backup, self._restored = self._restored, None
        if backup is not None:
            # The backup was made after the last epoch: no epoch ran to restore it in.
            self._restore_history(backup["history"])
        if not self.delete_checkpoint:
            self._write_pending()
        self._pending = None
        if not (self.delete_checkpoint and self._is_writer()):
            return
        stale = glob.glob(os.path.join(glob.escape(self.backup_dir), f".{BACKUP_NAME}*.tmp"))
        for path in (self._backup_path, self._previous_path, *stale):
            if os.path.exists(path):
                os.remove(path)
        if os.path.isdir(self.backup_dir) and not os.listdir(self.backup_dir):
            os.rmdir(self.backup_dir)
