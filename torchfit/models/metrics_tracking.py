"""What `torchfit.Model` tracks: its metrics, their names and their results.

Owns `model.metrics` (flat: the loss, the compiled metrics, the per-output
losses, metrics set as attributes, then `add_metric` trackers), the names
known from `compile` on, and the running results read without a host sync.
What the compiled metrics are belongs to `compiled.py`; when they are reset
and read belongs to `loops.py`.
"""

from collections.abc import Mapping

import torch

from torchfit import metrics as metrics_module
from torchfit.compiled import Outputs

__all__ = ["MetricsTracking"]


class MetricsTracking:
    """The metric bookkeeping of `torchfit.Model`, mixed into it."""

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
        for metric in self.metrics:
            if compiled is not None and metric is compiled.unbuilt:
                names.extend(self._expected_names(compiled))
            else:
                names.append(metric.name)
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

    def reset_metrics(self) -> None:
        for metric in self.metrics:
            metric.reset_state()

    def get_metrics_result(self) -> dict:
        """The current results of `self.metrics`, as tensors (no host sync)."""
        results = {}
        for metric in self.metrics:
            value = metric.result()
            if isinstance(value, Mapping):
                results.update(value)
            else:
                results[metric.name] = value
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
