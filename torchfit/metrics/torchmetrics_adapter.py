"""Lets a `torchmetrics.Metric` stand wherever a torchfit `Metric` is expected.

Owns the one place where the argument order flips: torchfit metrics take
`(y_true, y_pred)`, torchmetrics takes `update(preds, target)`. State,
synchronisation and the value itself stay torchmetrics' own; this adapter
forwards update, compute, reset and device moves, and names the metric.
"""

import sys
from typing import Any, Optional

import torch

from .base import Metric, as_tensor, to_snake_case

__all__ = ["TorchMetricsAdapter", "is_torchmetrics_metric"]


def is_torchmetrics_metric(obj: Any) -> bool:
    """Whether `obj` is a `torchmetrics.Metric`, without importing torchmetrics.

    torchmetrics is optional and slow to import: whoever holds one of its metrics
    has imported it already, so it is only looked at once loaded.
    """
    torchmetrics = sys.modules.get("torchmetrics")
    return torchmetrics is not None and isinstance(obj, torchmetrics.Metric)


class TorchMetricsAdapter(Metric):
    """Wraps a `torchmetrics.Metric` as a torchfit metric.

    `update_state(y_true, y_pred)` calls `metric.update(y_pred, y_true)`: the
    torchmetrics order, predictions first. `result()` is `metric.compute()`,
    `reset_state()` is `metric.reset()`, and `to(device)` moves the wrapped
    metric. Inputs are detached; NumPy arrays become tensors on its device.

    Args:
        metric: A `torchmetrics.Metric` instance.
        name: Log name. Defaults to the metric's `name` attribute if it has a
            string one, else the snake_case of its class name
            (`MulticlassAccuracy` -> "multiclass_accuracy").

    Raises:
        TypeError: If `metric` is not a `torchmetrics.Metric`.

    Example:
    >>> import torchmetrics
    >>> m = TorchMetricsAdapter(torchmetrics.MeanSquaredError())
    >>> m.name
    'mean_squared_error'
    >>> float(m([0.0, 1.0], [1.0, 1.0]))
    0.5
    """

    def __init__(self, metric: Any, name: Optional[str] = None):
        if not is_torchmetrics_metric(metric):
            raise TypeError(
                "`metric` must be a torchmetrics.Metric instance."
                f" Received: metric of type {type(metric).__name__}."
            )
        own_name = getattr(metric, "name", None)
        if name is None:
            name = own_name if isinstance(own_name, str) else to_snake_case(type(metric).__name__)
        super().__init__(name=name)
        self.metric = metric
        self._device = metric.device
        higher_is_better = getattr(metric, "higher_is_better", None)
        if higher_is_better is not None:
            self._direction = "up" if higher_is_better else "down"

    @property
    def device(self) -> torch.device:
        return self.metric.device

    @property
    def variables(self) -> list[torch.Tensor]:
        """The wrapped metric's tensor states (list states are left out)."""
        states = (getattr(self.metric, key) for key in self.metric._defaults)
        return [state for state in states if isinstance(state, torch.Tensor)]

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Calls the wrapped `update(y_pred, y_true)`.

        Args:
            y_true: Targets.
            y_pred: Predictions.
            sample_weight: Not supported by torchmetrics; must be None.

        Raises:
            ValueError: If `sample_weight` is given.
        """
        if sample_weight is not None:
            raise ValueError(
                f"torchmetrics metric {self.name!r} cannot take `sample_weight`."
                " Pass it in `metrics=` rather than `weighted_metrics=`, or use a"
                " torchfit metric."
            )
        self.metric.update(self._input(y_pred), self._input(y_true))

    def _input(self, value: Any) -> torch.Tensor:
        if isinstance(value, torch.Tensor):
            value = value.detach()
            if value.device != self.metric.device:
                if self._device_pinned:
                    value = value.to(self.metric.device)
                else:
                    self.to(value.device)
            return value
        return as_tensor(value, device=self.metric.device)

    def result(self) -> Any:
        return self.metric.compute()

    def reset_state(self) -> None:
        self.metric.reset()

    def to(self, device: Any) -> "TorchMetricsAdapter":
        self._device_pinned = True
        self.metric.to(torch.device(device))
        self._device = self.metric.device
        return self

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "metric": self.metric}
