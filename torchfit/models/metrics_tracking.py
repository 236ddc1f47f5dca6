"""What `torchfit.Model` tracks: its metrics, their names and their results.

Owns `model.metrics` (flat: the loss, the compiled metrics, the per-output
losses, metrics set as attributes, then `add_metric` trackers), the names
known from `compile` on, the running results read without a host sync, when
`add_metric` values count (`tracking_added_metrics`), and keeping a training
epoch's metric states across an `evaluate` a callback calls in it. What the
compiled metrics are belongs to `compiled.py`; when they are reset and read
belongs to `loops.py`.
"""

import contextlib
import copy
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from torchfit import metrics as metrics_module
from torchfit.compiled import Outputs
from torchfit.metrics.torchmetrics_adapter import TorchMetricsAdapter

__all__ = ["MetricsTracking"]


class MetricsTracking:
    """The metric bookkeeping of `torchfit.Model`, mixed into it."""

    # True while an epoch of training steps runs (`training_epoch`): an evaluate()
    # that a callback calls then keeps the epoch's metric states.
    _in_train_epoch = False

    @property
    def metrics(self) -> list:
        """Every metric the model tracks, flat: loss, compiled metrics, per-output
        losses, metrics set as attributes, then `add_metric` trackers."""
        own = [
            value
            for key, value in self.__dict__.items()
            if isinstance(value, metrics_module.Metric) and not key.startswith("_")
        ]
        result = []
        if self._loss_tracker is not None and not any(m.name == "loss" for m in own):
            result.append(self._loss_tracker)
        compiled = self._compile_metrics
        if compiled is not None:
            # Until the first batch builds them, one stand-in that builds them
            # from its first update_state (a custom train_step's walk), as Keras.
            result.extend(compiled.metrics if compiled.built else [compiled.unbuilt])
        if self._compile_loss is not None:
            result.extend(self._compile_loss.metrics)
        result.extend(own)
        result.extend(self._added_metrics.values())
        return result

    @property
    def metrics_names(self) -> list:
        """The log names of `self.metrics`, e.g. `["loss", "mean_squared_error"]`.

        Known from `compile` on: before the first batch, the compiled metrics'
        names come from the outputs' structure, read from `output_names` or a
        call of the model, else (a flat `metrics` list) taken as one output's.
        """
        compiled, compiled_loss = self._compile_metrics, self._compile_loss
        pending_losses = []
        if compiled_loss is not None and not compiled_loss.built:
            pending_losses = self._expected_names(compiled_loss)
        if compiled is None:
            anchor = self._loss_tracker
        else:
            built = compiled.built and compiled.metrics
            anchor = compiled.metrics[-1] if built else compiled.unbuilt
        names = []
        log_names = self._compiled_log_names()
        for metric in self.metrics:
            if compiled is not None and metric is compiled.unbuilt:
                names.extend(self._expected_names(compiled))
            else:
                names.append(log_names.get(id(metric), metric.name))
            if metric is anchor:
                names.extend(pending_losses)  # per-output losses follow the compiled metrics
        return names

    def _expected_names(self, part) -> list:
        """The names a compiled part will log, when the outputs are known without a batch."""
        outputs = self._output_structure
        if outputs is None and self.output_names is not None:
            outputs = Outputs.from_names(self.output_names)
        if outputs is None and part is self._compile_metrics and part.single_output_form:
            outputs = Outputs.from_names(["output"])
        return part.expected_names(outputs) if outputs is not None else []

    def _compiled_log_names(self) -> dict:
        """`id(metric)` -> log key of each built compiled metric (its name, with the
        output's prefix for several outputs: Keras adds it in the logs only)."""
        compiled = self._compile_metrics
        if compiled is None or not compiled.built:
            return {}
        return {id(metric): name for name, metric in compiled.named_metrics()}

    def reset_metrics(self) -> None:
        for metric in self.metrics:
            metric.reset_state()

    def get_metrics_result(self) -> dict:
        """The current results of `self.metrics`, as tensors (no host sync)."""
        results = {}
        log_names = self._compiled_log_names()
        for metric in self.metrics:
            value = metric.result()
            if isinstance(value, Mapping):
                results.update(value)
            else:
                results[log_names.get(id(metric), metric.name)] = value
        return results

    def _update_added_metrics(self, added: list) -> None:
        for name, value, aggregation in added:
            tracker = self._added_metrics.get(name)
            if tracker is None:
                kind = metrics_module.Mean if aggregation == "mean" else metrics_module.Sum
                tracker = self._added_metrics[name] = kind(name=name).to(self.device)
            if isinstance(value, torch.Tensor):
                value = value.detach()
            tracker.update_state(value)

    @contextlib.contextmanager
    def tracking_added_metrics(self, enabled: bool = True) -> Iterator[None]:
        """Counts (or not) the `add_metric` values of the forward passes in the block.

        The loops count them in `fit` and `evaluate` steps, not in `predict`'s
        or in a call of the model outside them. The setting before the block
        comes back after it.
        """
        tracking, self._track_added_metrics = self._track_added_metrics, enabled
        try:
            yield
        finally:
            self._track_added_metrics = tracking

    @contextlib.contextmanager
    def training_epoch(self) -> Iterator[None]:
        """Marks the block as an epoch of training steps (`loops.train_epoch`): an
        `evaluate` that a callback calls in it leaves the epoch's metric states as they were."""
        self._in_train_epoch = True
        try:
            yield
        finally:
            self._in_train_epoch = False

    @contextlib.contextmanager
    def _epoch_metrics_kept(self) -> Iterator[None]:
        """Keeps the running training epoch's metric states across the block.

        An `evaluate` that a callback calls in the middle of `fit` resets and
        updates the same metrics; Keras lets that reach the epoch's logs, torchfit
        does not. Outside a training epoch the block runs as is. The states are
        copied on the device: no host sync.
        """
        if not self._in_train_epoch:
            yield
            return
        saved = [(metric, _metric_state(metric)) for metric in self.metrics]
        added = dict(self._added_metrics)
        try:
            yield
        finally:
            self._added_metrics.clear()
            self._added_metrics.update(added)
            for metric, state in saved:
                _restore_metric_state(metric, state)
            kept = {id(metric) for metric, _ in saved}
            for metric in self.metrics:
                if id(metric) not in kept:  # built during the block: holds its values only
                    metric.reset_state()


def _metric_state(metric) -> Any:
    if isinstance(metric, TorchMetricsAdapter):
        return copy.deepcopy(metric.metric)  # torchmetrics also caches its computed value
    return [variable.detach().clone() for variable in metric.variables]


def _restore_metric_state(metric, state: Any) -> None:
    if isinstance(metric, TorchMetricsAdapter):
        metric.metric = state
        return
    variables = metric.variables
    if len(variables) != len(state) or any(v.shape != s.shape for v, s in zip(variables, state)):
        metric.reset_state()  # its state was not built yet when the block began
        return
    with torch.no_grad():
        for variable, value in zip(variables, state):
            variable.copy_(value)
