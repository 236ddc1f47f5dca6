"""Keras's LossScaleOptimizer: dynamic loss scaling around another optimizer.

Owns the wrapper: the loss scale (halved, with the update skipped, on a
non-finite gradient; doubled after `dynamic_growth_steps` finite updates),
`scale_loss`, unscaling, and what it shares with the inner optimizer
(parameters, state, learning rate, iterations, EMA finalisation). The update
rule is the inner optimizer's; string ids and (de)serialization belong to
`__init__.py`; the model's own float16 loss scaling (a torch `GradScaler`
with the same settings) belongs to `torchfit.mixed_precision`.
"""

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any, Optional

import numpy as np
import torch

from torchfit.optimizers.base import Optimizer, deserialize, serialize

__all__ = ["LossScaleOptimizer"]

# Keras accepts the base optimizer arguments at their defaults (old configs
# carry them) and refuses any other value: they belong to the inner optimizer.
_BASE_DEFAULTS = {
    "weight_decay": None,
    "clipnorm": None,
    "global_clipnorm": None,
    "clipvalue": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}


def _shared(attribute: str) -> property:
    """An attribute that is the inner optimizer's; the base constructor's placeholder is dropped."""

    def get(self):
        return getattr(self.inner_optimizer, attribute)

    def set_(self, value):
        if "inner_optimizer" in vars(self):
            setattr(self.inner_optimizer, attribute, value)

    return property(get, set_, doc=f"The inner optimizer's `{attribute}`.")


class LossScaleOptimizer(Optimizer):
    """Wraps an optimizer with Keras's dynamic loss scaling.

    `scale_loss(loss)` multiplies the loss by the current scale; the next
    update divides the gradients by it. An update whose gradients hold an
    inf or NaN is skipped (the inner optimizer does not move or count it)
    and halves the scale; after `dynamic_growth_steps` finite updates in a
    row the scale doubles. `learning_rate`, `iterations`, the parameters and
    the state are the inner optimizer's.

    `Model.fit` calls `scale_loss(loss)` before backward and `step()` after,
    as Keras's torch trainer does, and under `mixed_float16` a model whose
    optimizer is a `LossScaleOptimizer` uses no `GradScaler` of its own: the
    loss is scaled once. `apply(grads, variables)` takes gradients of a
    scaled loss, as Keras's does. `step()` (torch's API) divides by the
    scale only when `scale_loss` scaled the loss since the last update:
    gradients of an unscaled loss (a hand-written loop that does not call
    `scale_loss`) are taken as they are, so nothing is unscaled twice.
    Deciding to skip reads one flag on the host per update, as Keras and
    torch's `GradScaler` do.

    Args:
        inner_optimizer: The torchfit optimizer to wrap; its
            `loss_scale_factor` is set to `None`.
        initial_scale: The first loss scale. Defaults to `2.0**15`.
        dynamic_growth_steps: Finite updates in a row before the scale
            doubles. Defaults to `2000`.
        name: Name of the optimizer. Defaults to `"loss_scale_optimizer"`.
        **kwargs: Only the base optimizer arguments at their defaults, which
            Keras accepts for old configs.

    Raises:
        TypeError: If `inner_optimizer` is not a torchfit optimizer.
        ValueError: For `dynamic=False`, a base optimizer argument (set it
            on the inner optimizer), an unknown argument, a non-positive
            scale or growth steps below 1.

    Example:

    >>> from torchfit.optimizers import SGD
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = LossScaleOptimizer(SGD([w], learning_rate=0.1))
    >>> loss = opt.scale_loss((2.0 * w).sum())  # times 2**15
    >>> loss.backward()
    >>> _ = opt.step()  # unscales: the gradient is 2.0
    >>> round(w.item(), 4), opt.iterations, opt.dynamic_scale
    (0.8, 1, 32768.0)
    >>> w.grad = torch.tensor([float("inf")])
    >>> _ = opt.step()  # skipped, and the scale halves
    >>> round(w.item(), 4), opt.iterations, opt.dynamic_scale
    (0.8, 1, 16384.0)
    """

    param_groups = _shared("param_groups")
    state = _shared("state")
    defaults = _shared("defaults")
    _built = _shared("_built")
    _excluded_cache = _shared("_excluded_cache")
    _group_index_cache = _shared("_group_index_cache")

    def __init__(
        self,
        inner_optimizer: Optimizer,
        initial_scale: float = 2.0**15,
        dynamic_growth_steps: int = 2000,
        name: Optional[str] = None,
        **kwargs: Any,
    ):
        _check_kwargs(kwargs)
        _check_inner(inner_optimizer)
        _check_scale(initial_scale, dynamic_growth_steps)
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = inner_optimizer
        self.initial_scale = initial_scale
        self.dynamic_growth_steps = dynamic_growth_steps
        # Keras: otherwise the gradients would be unscaled twice.
        inner_optimizer.loss_scale_factor = None
        # Keras keeps the scale in a float32 variable: doubling and halving are exact.
        self._dynamic_scale = float(np.float32(initial_scale))
        self._step_counter = 0
        self._pending_scale: Optional[float] = None

    # ---------------------------------------------------- shared with the inner

    def build(self, params: Iterable) -> None:
        """Builds the inner optimizer on `params` (see `Optimizer.build`)."""
        self.inner_optimizer.build(params)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Adds a param group to the inner optimizer."""
        self.inner_optimizer.add_param_group(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Resets the gradients of the inner optimizer's parameters."""
        self.inner_optimizer.zero_grad(set_to_none=set_to_none)

    @property
    def learning_rate(self) -> float:
        """The inner optimizer's learning rate (assignable)."""
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate: Any) -> None:
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self) -> int:
        """The inner optimizer's update count (skipped updates do not count)."""
        return self.inner_optimizer.iterations

    @property
    def variables(self) -> list[torch.Tensor]:
        """The inner optimizer's state tensors."""
        return self.inner_optimizer.variables

    def finalize_variable_values(self, var_list: Optional[Iterable] = None) -> None:
        """The inner optimizer's `finalize_variable_values` (EMA weights into the model)."""
        self.inner_optimizer.finalize_variable_values(var_list)

    # ------------------------------------------------------------------ scale

    @property
    def dynamic_scale(self) -> float:
        """The current loss scale."""
        return self._dynamic_scale

    @property
    def step_counter(self) -> int:
        """Finite updates since the scale last changed."""
        return self._step_counter

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """Multiplies `loss` by the current scale; the next `step()` divides the gradients by it."""
        self._pending_scale = self._dynamic_scale
        return loss * self._dynamic_scale

    # ----------------------------------------------------------- entry points

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """Applies the `.grad` of the inner optimizer's parameters, or skips a non-finite update.

        Args:
            closure: Optional callable that re-evaluates the model and returns
                the loss. Defaults to `None`.

        Returns:
            The closure's loss, or `None`.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._require_built("step")
        scale, self._pending_scale = self._pending_scale, None
        params = [p for p in self._all_params() if p.grad is not None]
        if params:
            self._apply_scaled([p.grad for p in params], params, scale)
        return loss

    def apply(self, grads: Iterable, trainable_variables: Optional[Iterable] = None) -> None:
        """Applies gradients of a scaled loss to `trainable_variables` (Keras's `apply`).

        Args:
            grads: Gradients, one per variable; `None` entries are skipped.
            trainable_variables: The parameters, in the same order; `None`
                means all of the inner optimizer's. Defaults to `None`.

        Raises:
            ValueError: If lengths differ, or as the inner optimizer's `apply`.
        """
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None:
            self._require_built("apply")
            variables = self._all_params()
        else:
            variables = list(trainable_variables)
            if not self.built:
                self.build(variables)
        if len(grads) != len(variables):
            raise ValueError(
                "`grads` and `trainable_variables` must have the same length."
                f" Received: {len(grads)} gradients for {len(variables)} variables."
            )
        grads = [
            g if g is None or isinstance(g, torch.Tensor)
            else torch.as_tensor(g, dtype=v.dtype, device=v.device)
            for g, v in zip(grads, variables)
        ]  # fmt: skip
        self._pending_scale = None
        self._apply_scaled(grads, variables, self._dynamic_scale)

    def apply_gradients(self, grads_and_vars: Iterable) -> int:
        """Applies `(gradient, variable)` pairs; returns `iterations` (tf.keras style)."""
        pairs = list(grads_and_vars)
        if pairs:
            grads, variables = zip(*pairs)
            self.apply(grads, variables)
        return self.iterations

    def _apply_scaled(self, grads: list, variables: list, scale: Optional[float]) -> None:
        """Keras's update: skip and halve on a non-finite gradient, else unscale, apply, count."""
        present = [g for g in grads if g is not None]
        with torch.no_grad():
            if present and not _all_finite(present):
                self._step_counter = 0
                self._dynamic_scale *= 0.5
                return
            if scale is not None and present:
                unscaled = iter(torch._foreach_div(present, scale))
                grads = [None if g is None else next(unscaled) for g in grads]
            self.inner_optimizer.apply(grads, variables)
        if self._step_counter == self.dynamic_growth_steps - 1:
            self._step_counter = 0
            self._dynamic_scale *= 2.0
        else:
            self._step_counter += 1

    def capture_blockers(self) -> list[str]:
        """A replayed update could not skip: whether to skip is read on the host."""
        return ["it reads on the host whether the gradients are finite, to skip the update"]

    # ------------------------------------------------------- state and config

    def state_dict(self) -> dict[str, Any]:
        """The inner optimizer's `state_dict` plus `"loss_scale"`: the scale and its counter."""
        state_dict = self.inner_optimizer.state_dict()
        state_dict["loss_scale"] = {
            "dynamic_scale": self._dynamic_scale,
            "step_counter": self._step_counter,
        }
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores `state_dict()`'s output, so training resumes exactly."""
        state_dict = dict(state_dict)
        loss_scale = state_dict.pop("loss_scale", None)
        self.inner_optimizer.load_state_dict(state_dict)
        if loss_scale is not None:
            self._dynamic_scale = float(loss_scale["dynamic_scale"])
            self._step_counter = int(loss_scale["step_counter"])
        self._pending_scale = None

    def get_config(self) -> dict[str, Any]:
        """`name`, the serialized `inner_optimizer`, `initial_scale` and `dynamic_growth_steps`."""
        return {
            "name": self.name,
            "inner_optimizer": serialize(self.inner_optimizer),
            "initial_scale": self.initial_scale,
            "dynamic_growth_steps": self.dynamic_growth_steps,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Optional[dict] = None):
        """Creates the wrapper and its inner optimizer from `get_config()`'s output."""
        config = dict(config)
        inner = config.pop("inner_optimizer")
        if isinstance(inner, dict):
            inner = deserialize(inner, custom_objects)
        return cls(inner, **config)


def _all_finite(grads: list) -> bool:
    # The largest magnitude of a tensor is finite exactly when all its entries
    # are (NaN propagates through the max). One host read per update: whether
    # to skip is a Python decision, as Keras's ops.cond is on the torch backend.
    grads = [g for g in grads if g.numel()]
    if not grads:
        return True
    largest = torch._foreach_norm(grads, ord=math.inf)
    device = largest[0].device
    return bool(torch.isfinite(torch.stack([x.float().to(device) for x in largest])).all())


def _check_kwargs(kwargs: dict) -> None:
    if not kwargs.pop("dynamic", True):
        raise ValueError(
            "LossScaleOptimizer no longer supports `dynamic=False`. Instead, simply"
            " set `loss_scale_factor` directly on the `inner_optimizer`."
        )
    for key, default in _BASE_DEFAULTS.items():
        if key in kwargs and kwargs.pop(key) != default:
            raise ValueError(
                f"LossScaleOptimizer does not support `{key}`. Instead, set `{key}`"
                " on the `inner_optimizer`."
            )
    if kwargs:
        raise ValueError(f"LossScaleOptimizer does not support arguments: `{'`, `'.join(kwargs)}`.")


def _check_inner(inner_optimizer: Any) -> None:
    if not isinstance(inner_optimizer, Optimizer):
        raise TypeError(
            "`inner_optimizer` must be a torchfit optimizer instance, e.g."
            " LossScaleOptimizer(torchfit.optimizers.Adam()). Received: type"
            f" {type(inner_optimizer).__name__}."
        )


def _check_scale(initial_scale: Any, dynamic_growth_steps: Any) -> None:
    if (
        isinstance(initial_scale, bool)
        or not isinstance(initial_scale, numbers.Real)
        or not (math.isfinite(initial_scale) and initial_scale > 0)
    ):
        raise ValueError(
            "`initial_scale` must be a positive finite number such as 2.0**15."
            f" Received: initial_scale={initial_scale!r:.40}."
        )
    if (
        isinstance(dynamic_growth_steps, bool)
        or not isinstance(dynamic_growth_steps, numbers.Integral)
        or dynamic_growth_steps < 1
    ):
        raise ValueError(
            "`dynamic_growth_steps` must be an integer >= 1."
            f" Received: dynamic_growth_steps={dynamic_growth_steps!r:.40}."
        )
