"""Runs epochs of steps and calls the callbacks' hooks in Keras's order.

Owns the event order of fit, evaluate and predict (which hook, when, with
which logs), validation inside fit, and where a step's logs stop being
device tensors. Batching belongs to `data/`; what one step does belongs to
the model's `train_step`/`test_step`/`predict_step`.
"""

from collections.abc import Mapping
from typing import Any, Optional

import numpy as np
import torch

from torchfit import tree
from torchfit.logs import BatchLogs, MetricLogs, as_batch_logs, pythonify_logs
from torchfit.outputs import predictions
from torchfit.utils.arguments import is_count
from torchfit.utils.modes import run_in_mode

__all__ = [
    "Validation",
    "evaluate_loop",
    "fit_loop",
    "logs_at_epoch_end",
    "predict_loop",
]


def logs_at_epoch_end(model, step_logs: Any) -> dict:
    """The logs at the end of an epoch: the metric results when the step
    returned exactly them, else the last step's own logs (a custom step, or
    `super().train_step(data)` with keys added), as Keras."""
    if isinstance(step_logs, MetricLogs) and not step_logs.modified:
        return pythonify_logs(model.get_metrics_result())
    if step_logs is None:
        return pythonify_logs(model.get_metrics_result()) if model.metrics else {}
    metric_logs = model.get_metrics_result()
    raw = step_logs.raw() if isinstance(step_logs, BatchLogs) else step_logs
    if isinstance(raw, Mapping) and set(raw.keys()) == set(metric_logs.keys()):
        return pythonify_logs(metric_logs)
    return pythonify_logs(raw)


def _checked_validation_freq(freq: Any) -> Any:
    """`validation_freq` as an int or a list of epochs, each a count from 1."""
    epochs = freq if isinstance(freq, (list, tuple)) else [freq]
    if not all(is_count(epoch) for epoch in epochs):
        raise ValueError(
            "`validation_freq` must be an int >= 1 (validate every N epochs) or a list of"
            f" epochs counted from 1. Received: validation_freq={freq!r}."
        )
    if isinstance(freq, (list, tuple)):
        return [epoch.__index__() for epoch in freq]
    return freq.__index__()


class Validation:
    """The validation data of a fit: when it runs, and its cached iterator."""

    def __init__(self, iterator, freq: Any):
        self.iterator = iterator
        self.freq = _checked_validation_freq(freq)

    def due(self, epoch: int) -> bool:
        if isinstance(self.freq, int):
            return (epoch + 1) % self.freq == 0
        return epoch + 1 in self.freq

    def run(self, model, callbacks) -> dict:
        logs = evaluate_loop(model, self.iterator, callbacks)
        return {f"val_{key}": value for key, value in logs.items()}


def fit_loop(
    model,
    train,
    callbacks,
    *,
    epochs: int,
    initial_epoch: int = 0,
    validation: Optional[Validation] = None,
):
    """Trains for `epochs` epochs, in Keras 3's event order."""
    model.stop_training = False
    callbacks.on_train_begin()
    # BackupAndRestore may have set where an interrupted run resumes, in on_train_begin.
    resume, model.resume_point = model.resume_point, None
    if resume is not None:
        initial_epoch = resume.epoch
    training_logs = None
    with model.tracking_added_metrics(True):
        for epoch in range(initial_epoch, epochs):
            model.reset_metrics()
            callbacks.on_epoch_begin(epoch)
            model.train()
            epoch_logs = train_epoch(model, train, callbacks, resume)
            resume = None
            model.eval()
            if validation is not None and validation.due(epoch):
                epoch_logs.update(validation.run(model, callbacks))
            callbacks.on_epoch_end(epoch, epoch_logs)
            training_logs = epoch_logs
            # Under torch.distributed, every process stops at the same epoch.
            model.stop_training = model.distribution.agree(model.stop_training)
            if model.stop_training:
                break
            if train.exhausted and epoch + 1 < epochs:
                train.warn_ran_out()
                break
    finalize = getattr(model.optimizer, "finalize_variable_values", None)
    if finalize is not None and epochs > initial_epoch:
        finalize()
    # Only reached when training ends normally: after a crash, BackupAndRestore
    # must still find its backup, so on_train_end is deliberately not in a finally.
    callbacks.on_train_end(training_logs)
    return model.history


class _HookGroups:
    """Which steps open and close a group of `steps_per_execution` steps.

    With `steps_per_execution=N` the batch hooks run once per N steps, as in
    Keras: the begin hook with the group's first step, the end hook with its
    last (for a short last group, the last step there was).
    """

    __slots__ = ("size", "start")

    def __init__(self, size: int):
        self.size = size
        self.start: Optional[int] = None

    def opens(self, step: int) -> bool:
        if self.start is None:
            self.start = step
            return True
        return False

    def closes(self, step: int) -> bool:
        if step - self.start + 1 == self.size:
            self.start = None
            return True
        return False

    @property
    def open(self) -> bool:
        return self.start is not None


def train_epoch(model, train, callbacks, resume=None) -> dict:
    """One epoch of training steps; returns the epoch's logs as floats.

    With a `resume` point (`model.resume_point`), the epoch is the one an
    interrupted run was in: its data order was replayed (BackupAndRestore), and
    the batches already trained on are skipped.
    """
    logs = None
    step_function = model.train_step
    groups = _HookGroups(model.steps_per_execution)
    stops_after_step = model.distribution.stops_after_step  # agreed by every process
    step = -1
    model.check_targets_once_built(train)
    with model.training_epoch():  # an evaluate() from a callback keeps our metric states
        for step, batch in train.enumerate_epoch():
            if resume is not None:
                if step < resume.skip_batches:
                    continue
                resume.resumed(batch)
                resume = None
            if groups.opens(step):
                callbacks.on_train_batch_begin(step)
            if not model.training:
                model.train()  # a callback left it in eval(): every step trains in train mode
            logs = as_batch_logs(step_function(batch))
            if groups.closes(step):
                callbacks.on_train_batch_end(step, logs)
            if stops_after_step(model, step):
                break
    if groups.open:
        callbacks.on_train_batch_end(step, logs)
    model.distribution.finish_train_epoch(model, step)  # the epoch's logs over all processes
    return logs_at_epoch_end(model, logs)


def evaluate_loop(model, iterator, callbacks) -> dict:
    """Runs the test steps over `iterator` in eval mode; returns the logs as floats.

    The model's mode is put back as found, also when a callback calls
    `evaluate` in the middle of `fit`.
    """
    model.stop_evaluating = False
    with run_in_mode(model, False):
        callbacks.on_test_begin()
        model.reset_metrics()
        logs = _test_steps(model, iterator, callbacks)
        model.distribution.reduce_metrics(model.metrics)  # the logs over all processes
        epoch_logs = logs_at_epoch_end(model, logs)
        callbacks.on_test_end(epoch_logs)
    return epoch_logs


def _test_steps(model, iterator, callbacks) -> Any:
    """The test steps and their batch hooks; returns the last step's logs."""
    logs = None
    groups = _HookGroups(model.steps_per_execution)
    step = -1
    model.check_targets_once_built(iterator)
    with model.tracking_added_metrics(True), torch.no_grad():
        for step, batch in iterator.enumerate_epoch():
            if groups.opens(step):
                callbacks.on_test_batch_begin(step)
            logs = as_batch_logs(model.test_step(batch))
            if groups.closes(step):
                callbacks.on_test_batch_end(step, logs)
            if model.stop_evaluating:
                break
    if groups.open:
        callbacks.on_test_batch_end(step, logs)
    return logs


def predict_loop(model, iterator, callbacks) -> Any:
    """Runs the predict steps in eval mode (the mode is put back as found);
    returns the outputs concatenated, on the host.

    `on_predict_batch_end` receives `{"outputs": ...}`: the outputs of the
    group's steps joined, still on the device.
    """
    model.stop_predicting = False
    with run_in_mode(model, False):
        callbacks.on_predict_begin()
        collected = _predict_steps(model, iterator, callbacks)
        callbacks.on_predict_end()
    return concatenate_outputs(collected)


def _predict_steps(model, iterator, callbacks) -> list:
    """The predict steps and their batch hooks; returns every step's outputs."""
    collected = []
    groups = _HookGroups(model.steps_per_execution)
    step = -1
    # A predict inside fit adds nothing to the training epoch's add_metric values.
    with model.tracking_added_metrics(False), torch.no_grad():
        for step, batch in iterator.enumerate_epoch():
            if groups.opens(step):
                callbacks.on_predict_batch_begin(step)
                group_begins = len(collected)
            collected.append(model.predict_step(batch))
            if groups.closes(step):
                outputs = _join(collected[group_begins:])
                callbacks.on_predict_batch_end(step, {"outputs": outputs})
            if model.stop_predicting:
                break
    if groups.open:
        callbacks.on_predict_batch_end(step, {"outputs": _join(collected[group_begins:])})
    return collected


def _join(batches: list) -> Any:
    """The outputs of several steps as one batch, on the device (no copy for one), in
    the container `predict` returns (`outputs.predictions`), whatever the number of steps."""
    return _joined([predictions(batch) for batch in batches])


def _joined(batches: list) -> Any:
    if len(batches) == 1:
        return batches[0]
    first = batches[0]
    if isinstance(first, Mapping):
        return {key: _joined([batch[key] for batch in batches]) for key in first}
    if isinstance(first, tuple) and hasattr(type(first), "_fields"):  # a namedtuple
        return type(first)._make(_joined(list(parts)) for parts in zip(*batches))
    if isinstance(first, (list, tuple)):
        return type(first)(_joined(list(parts)) for parts in zip(*batches))
    if isinstance(first, torch.Tensor):
        return torch.cat(batches) if first.dim() else torch.stack(batches)
    if isinstance(first, np.ndarray):
        return np.concatenate(batches) if first.ndim else np.stack(batches)
    if first is None:
        return None
    return batches


def concatenate_outputs(batches: list) -> Any:
    """Joins per-batch outputs (tensors, lists or dicts of them) into NumPy arrays.

    A dict, dataclass or `ModelOutput` output comes back as a dict of arrays, a
    namedtuple as that namedtuple of arrays, whatever the number of batches;
    what holds no tensor (a cache, `None`) and the model's own `loss` are left
    out (see `outputs.predictions`).
    """
    if not batches:
        raise ValueError(
            "predict() received no batches: the input was empty. Check `x` and `steps`."
        )
    joined = _join(batches)

    def to_numpy(value):
        if not isinstance(value, torch.Tensor):
            return value
        value = value.detach()
        if value.dtype == torch.bfloat16:
            value = value.float()  # NumPy has no bfloat16
        # One copy to the host for the whole prediction, not one per batch.
        return value.cpu().numpy()

    return tree.map_structure(to_numpy, joined)
