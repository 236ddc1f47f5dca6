"""Collects the losses and metrics a forward pass adds from inside the model.

Owns `torchfit.Layer`, `torchfit.add_loss` and `torchfit.add_metric`, and the
scope that gathers what one forward pass adds. Each `Model.__call__` opens a
fresh scope, so nothing leaks between steps, between training and evaluation,
or between two models. What happens to the collected values (joining the loss
total, feeding metric trackers) belongs to `models/model.py`.
"""

import threading
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["Layer", "add_loss", "add_metric", "ForwardCollection", "collect"]

_AGGREGATIONS = ("mean", "sum")


@dataclass
class ForwardCollection:
    """What one forward pass added: losses, and metric values by name."""

    losses: list = field(default_factory=list)
    metrics: list = field(default_factory=list)  # (name, value, aggregation)


class _Scopes(threading.local):
    def __init__(self):
        self.stack: list[ForwardCollection] = []


_scopes = _Scopes()


class _Scope:
    """The context `collect()` returns: a class, not a generator context, as it
    is entered once per forward pass (about 3x cheaper)."""

    __slots__ = ("collection",)

    def __init__(self):
        self.collection = ForwardCollection()

    def __enter__(self) -> ForwardCollection:
        _scopes.stack.append(self.collection)
        return self.collection

    def __exit__(self, *exc_info) -> bool:
        stack = _scopes.stack
        stack.pop()
        if stack:
            outer = stack[-1]
            outer.losses.extend(self.collection.losses)
            outer.metrics.extend(self.collection.metrics)
        return False


def collect() -> _Scope:
    """Opens a scope that gathers `add_loss`/`add_metric` calls of a forward pass.

    Scopes nest: a `torchfit.Model` called inside another model's forward
    collects into its own scope, then hands what it gathered to the outer one.

    Example:
    >>> with collect() as outer:
    ...     with collect() as inner:
    ...         add_loss(torch.tensor(1.0))
    >>> len(inner.losses), len(outer.losses)
    (1, 1)
    """
    return _Scope()


def add_loss(loss: Any) -> None:
    """Adds `loss` to the total loss of the forward pass in progress.

    Call it from inside any module's `forward` while a `torchfit.Model` runs
    it; the value joins that step's loss (summed if it is not a scalar).
    Outside a model's forward pass there is no step to add to, and the call
    does nothing, so the module still works on its own.

    Args:
        loss: A tensor (or number).

    Example:
    >>> add_loss(torch.tensor(0.5))  # outside a model: nothing to add to
    """
    if _scopes.stack:
        _scopes.stack[-1].losses.append(loss)


def add_metric(value: Any, name: str, aggregation: str = "mean") -> None:
    """Logs `value` under `name` for the forward pass in progress.

    The model keeps one tracker per name and aggregates the values over the
    epoch (`"mean"` of every value added, or `"sum"`), as tf.keras 2 did;
    validation logs it as `val_<name>`.

    Args:
        value: A tensor or number.
        name: The log key.
        aggregation: `"mean"` or `"sum"`. Defaults to `"mean"`.

    Raises:
        ValueError: For a missing name or an unknown aggregation.
    """
    check_added_metric(name, aggregation)
    if _scopes.stack:
        _scopes.stack[-1].metrics.append((name, value, aggregation))


def check_added_metric(name: Any, aggregation: Any) -> None:
    """Raises a clear error for a bad `add_metric` name or aggregation."""
    if not isinstance(name, str) or not name:
        raise ValueError(
            "`add_metric()` needs a `name`, the key the value is logged under."
            f" Received: name={name!r}."
        )
    if aggregation not in _AGGREGATIONS:
        raise ValueError(
            f"`aggregation` must be one of {_AGGREGATIONS}. Received: aggregation={aggregation!r}."
        )


class Layer(nn.Module):
    """An `nn.Module` that can add losses and metrics from its `forward`.

    The losses added by the layer's last call are in `layer.losses`; while a
    `torchfit.Model` runs, they also join that step's total loss.

    Example:
    >>> class ActivityRegularization(Layer):
    ...     def forward(self, inputs):
    ...         self.add_loss(1e-2 * inputs.sum())
    ...         return inputs
    >>> layer = ActivityRegularization()
    >>> _ = layer(torch.ones(2, 3))
    >>> [round(float(loss), 2) for loss in layer.losses]
    [0.06]
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._own_losses: list = []

    def __call__(self, *args, **kwargs):
        # A new call replaces the losses of the previous one, as in Keras.
        self._own_losses = []
        return super().__call__(*args, **kwargs)

    def add_loss(self, loss: Any) -> None:
        """Adds `loss` to this layer's losses and to the running step's total."""
        self._own_losses.append(loss)
        add_loss(loss)

    def add_metric(self, value: Any, name: str, aggregation: str = "mean") -> None:
        """Logs `value` under `name`; see `torchfit.add_metric`."""
        add_metric(value, name=name, aggregation=aggregation)

    @property
    def losses(self) -> list:
        """The losses added during this layer's last call (and its sublayers')."""
        collected = list(self._own_losses)
        for module in self.modules():
            if module is not self and isinstance(module, Layer):
                collected.extend(module._own_losses)
        return collected


def as_loss_tensor(value: Any, device: torch.device) -> torch.Tensor:
    """Returns an added loss as a float scalar tensor (summed, as Keras does)."""
    if not isinstance(value, torch.Tensor):
        value = torch.as_tensor(value, dtype=torch.float32, device=device)
    if not value.is_floating_point():
        value = value.float()
    return value.sum() if value.dim() else value
