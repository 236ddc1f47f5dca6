"""Shared base of the callbacks that watch one logged value for improvement.

Owns `mode` ("auto"/"min"/"max"), deciding the direction of a metric in
"auto" mode, `min_delta`, the best value so far (and carrying it through a
resumed run), and reading the monitored value out of the epoch logs with a
clear error when it is not there. What to do on improvement (stop, save,
lower the learning rate) belongs to the subclasses.
"""

import difflib
import operator
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Optional

from torchfit.callbacks.callback import Callback

__all__ = ["MonitorCallback"]


def plain_number(value: Any) -> Any:
    """`value` as a Python number when it is a NumPy or 0-d torch scalar.

    States go into backups loaded with `weights_only=True`, which take
    plain numbers but not NumPy scalars.

    Example:
    >>> import numpy as np
    >>> type(plain_number(np.float32(0.5)))
    <class 'float'>
    """
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


# Name fragments of metrics that improve upwards / downwards, for metrics the
# model cannot tell us about (no `_direction` attribute).
_UP_WORDS = (
    "acc",
    "auc",
    "precision",
    "recall",
    "f1",
    "fbeta",
    "fmeasure",
    "iou",
    "r2",
    "similarity",
)
_DOWN_WORDS = (
    "loss",
    "error",
    "mse",
    "mae",
    "mape",
    "msle",
    "crossentropy",
    "hinge",
    "divergence",
    "logcosh",
    "poisson",
    "squared",
    "absolute",
)


def _metric_direction(model: Any, name: str) -> Optional[str]:
    """The `_direction` ("up"/"down") of the model's metric logged as `name`."""
    for metric in getattr(model, "metrics", None) or []:
        metric_name = getattr(metric, "name", None)
        # Multi-output logs prefix the output name: "out_a_accuracy".
        if not metric_name or not (name == metric_name or name.endswith("_" + metric_name)):
            continue
        direction = getattr(metric, "_direction", None)
        if direction in ("up", "down"):
            return direction
        higher_is_better = getattr(metric, "higher_is_better", None)  # torchmetrics
        if higher_is_better is not None:
            return "up" if higher_is_better else "down"
    return None


def _name_direction(name: str) -> Optional[str]:
    lowered = name.lower()
    if lowered == "loss" or lowered.endswith("_loss"):
        return "down"
    if any(word in lowered for word in _UP_WORDS):
        return "up"
    if any(word in lowered for word in _DOWN_WORDS):
        return "down"
    return None


class MonitorCallback(Callback):
    """Base class for callbacks that act when a monitored value improves.

    Args:
        monitor: Log key to watch, e.g. `"val_loss"`. Defaults to
            `"val_loss"`.
        mode: `"min"`, `"max"`, or `"auto"`: the direction of the model's
            metric (its `_direction`), else a rule on the name (`loss`,
            errors and crossentropies go down; accuracy, AUC, precision,
            recall, F-scores, IoU go up). Defaults to `"auto"`.
        baseline: Value the monitored quantity must beat; `None` for none.
            Defaults to `None`.
        min_delta: Smallest absolute change that counts as an improvement.
            Defaults to `0`.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "auto",
        baseline: Optional[float] = None,
        min_delta: float = 0,
    ):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(
                f"{type(self).__name__} mode '{mode}' is unknown, falling back"
                " to 'auto'. Use 'auto', 'min' or 'max'.",
                stacklevel=2,
            )
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op: Optional[Callable[[Any, Any], bool]] = None

    def _set_monitor_op(self) -> None:
        if self.mode == "min":
            direction = "down"
        elif self.mode == "max":
            direction = "up"
        else:
            name = self.monitor.removeprefix("val_")
            direction = _metric_direction(self.model, name) or _name_direction(name)
            if direction is None:
                raise ValueError(
                    f"{type(self).__name__} received monitor={self.monitor!r},"
                    " but cannot tell whether that metric should be maximized"
                    " or minimized. Pass `mode='max'` to keep the highest"
                    " value, or `mode='min'` to keep the lowest."
                )
        if direction == "up":
            self.monitor_op = operator.gt
        else:
            self.monitor_op = operator.lt
            self.min_delta = -abs(self.min_delta)

    def state_dict(self) -> dict:
        """The best value so far, e.g. `{"best": 0.31}` (`None` before any).

        Example:
        >>> MonitorCallback(monitor="loss", baseline=0.5).state_dict()
        {'best': 0.5}
        """
        return {"best": plain_number(self.best)}

    def load_state_dict(self, state_dict: dict) -> None:
        """Puts back the best value of the interrupted run."""
        self.best = state_dict["best"]

    def _is_improvement(self, monitor_value: float, reference_value: Optional[float]) -> bool:
        if reference_value is None:
            return True
        return bool(self.monitor_op(monitor_value - self.min_delta, reference_value))

    def _monitor_value(self, logs: Optional[Mapping]) -> Optional[float]:
        """The monitored value, deciding the direction on first sight of it."""
        value = self.get_monitor_value(logs)
        if value is not None and self.monitor_op is None:
            # Decided here, once the model's metrics exist and the key is
            # known to be logged (a typo gets the "not in the logs" error).
            self._set_monitor_op()
        return value

    def get_monitor_value(self, logs: Optional[Mapping]) -> Optional[float]:
        """Returns `logs[monitor]`, or `None` on an epoch without validation.

        Raises:
            ValueError: If `monitor` is missing although it could be there:
                a training key that is not logged, or a `val_` key on an
                epoch that did run validation.
        """
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is not None:
            return value
        available = sorted(logs)
        validation_ran = any(key.startswith("val_") for key in available)
        if self.monitor.startswith("val_") and not validation_ran:
            # No validation this epoch (validation_freq, or none given): the
            # key may well appear later, so only warn, as Keras does.
            warnings.warn(
                f"{type(self).__name__} is conditioned on metric"
                f" `{self.monitor}` which is not available: no validation ran"
                f" this epoch. Available metrics are: {','.join(available)}."
                " Pass `validation_data` to `fit` (and check `validation_freq`)"
                " to produce it.",
                stacklevel=3,
            )
            return None
        close = difflib.get_close_matches(self.monitor, available, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"{type(self).__name__} got monitor={self.monitor!r}, which is not"
            f" in the logs. Available keys: {', '.join(available) or '(none)'}."
            f"{hint}"
        )
