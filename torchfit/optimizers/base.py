"""Keras's optimizer pipeline as a `torch.optim.Optimizer`.

Owns what every optimizer shares: its arguments, the learning rate (a number
or a schedule) kept in the param groups, the iteration counter, the order of
the steps of one call, the per-parameter state, decoupled weight decay,
`state_dict` and config. The gradient steps (accumulation, clipping) live in
`_gradients.py`, the moving average of the weights (EMA) in `_ema.py`, and
what counts as a learning rate in `_learning_rate.py`. Each update rule lives
in its own module and only implements `_init_slots` and `_update_step`;
string ids and (de)serialization belong to `__init__.py`.

One call of `step()` (or `apply()`) runs, in Keras's order: unscale by
`loss_scale_factor`, gradient accumulation, clipping, weight decay, the update
rule, EMA, then counts the call. Everything per step is computed from Python
ints and floats, so no step waits on the device.
"""

import difflib
import inspect
import math
import re
import warnings
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from typing import Any, Optional

import torch
from torch.optim import optimizer as _torch_optimizer

from torchfit.optimizers import _ema, _gradients, schedules
from torchfit.optimizers._gradients import Batch
from torchfit.optimizers._learning_rate import (
    LearningRate,
    as_float,
    check_finite,
    is_learning_rate,
    is_schedule,
    takes_step,
)

__all__ = ["Optimizer"]

_GROUP_KEYS = {"params", "lr", "weight_decay", "param_names", "initial_lr", "name"}
_NAME_COUNTS: dict[str, int] = {}
_HOOK_REGISTRIES = [
    f"_optimizer_{kind}_hooks"
    for kind in (
        "step_pre",
        "step_post",
        "state_dict_pre",
        "state_dict_post",
        "load_state_dict_pre",
        "load_state_dict_post",
    )
]


def _auto_name(class_name: str) -> str:
    """Keras's snake_case name with a counter suffix: adam, adam_1, rm_sprop, ..."""
    snake = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    snake = re.sub(r"([a-z])([A-Z])", r"\1_\2", snake).lower()
    count = _NAME_COUNTS.get(snake, 0)
    _NAME_COUNTS[snake] = count + 1
    return snake if count == 0 else f"{snake}_{count}"


def _param_ids(params: list) -> set[int]:
    """Ids of the tensors in a list of tensors, (name, tensor) pairs or groups."""
    ids = set()
    for item in params:
        if isinstance(item, dict):
            ids |= _param_ids(list(item["params"]))
        else:
            ids.add(id(item[1] if isinstance(item, tuple) else item))
    return ids


def _check_not_module(params: Any) -> None:
    if isinstance(params, torch.nn.Module):
        raise TypeError(
            "`params` must be an iterable of parameters or param groups."
            f" Received: a module ({type(params).__name__})."
            " Pass `module.parameters()` instead."
        )


#: torchfit's own optimizer classes by lowercased name, for `deserialize`: each
#: registers itself when its module defines it (`Optimizer.__init_subclass__`).
BUILTIN_OPTIMIZERS: dict[str, type] = {}


class Optimizer(torch.optim.Optimizer):
    """Base class of torchfit's Keras-exact optimizers.

    Works both ways: Keras style, created without parameters and attached by
    `build(params)` (what `Model.compile` does); or torch style, created with
    `model.parameters()` (or `named_parameters()`, or param groups) and driven
    by `zero_grad()` / `backward()` / `step()` in a plain loop.

    Subclasses implement `_init_slots(param, state)` (create per-parameter
    tensors in `state`) and `_update_step(params, grads, states, lr, step)`
    (apply the rule to one param group with `torch._foreach_*` ops).

    Args:
        params: Parameters or param groups to optimize, or `None` to attach
            them later with `build`. A number, schedule or callable here is
            taken as the learning rate (Keras's positional style,
            `RMSprop(1e-3)`). Param groups may override `lr` and
            `weight_decay`. Defaults to `None`.
        learning_rate: A float, a `LearningRateSchedule`, or a callable
            `step -> float` (a zero-argument callable is called with nothing,
            as in Keras). Defaults to `0.001`.
        weight_decay: Decoupled weight decay: each step multiplies the weights
            by `1 - weight_decay * lr` before the update. Defaults to `None`.
        clipnorm: Clip each gradient to this L2 norm. Defaults to `None`.
        clipvalue: Clip each gradient element to `[-clipvalue, clipvalue]`.
            Defaults to `None`.
        global_clipnorm: Clip all gradients together to this global L2 norm.
            Defaults to `None`.
        use_ema: Keep an exponential moving average of the weights. Defaults
            to `False`.
        ema_momentum: Momentum of that average. Defaults to `0.99`.
        ema_overwrite_frequency: Every this many iterations, overwrite the
            weights with their average; `None` never does (call
            `finalize_variable_values()` at the end). Defaults to `None`.
        loss_scale_factor: The loss is multiplied by this in `scale_loss` and
            the gradients divided by it in `step`. Defaults to `None`.
        gradient_accumulation_steps: Apply the mean gradient of this many
            calls every this many calls (an int >= 2). Calls in between only
            accumulate. Defaults to `None`.
        name: Name of the optimizer. Defaults to the snake_case class name.

    Raises:
        ValueError: For out-of-range or conflicting arguments, each named.
    """

    #: Whether `_update_step` or `_prepare_update` reads `step` (a captured update
    #: would freeze it). A subclass whose rule does not sets it to False.
    _update_reads_step = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("torchfit.optimizers."):
            BUILTIN_OPTIMIZERS[cls.__name__.lower()] = cls

    def __init__(
        self,
        params: Any = None,
        learning_rate: LearningRate = 0.001,
        *,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: Optional[int] = None,
        loss_scale_factor: Optional[float] = None,
        gradient_accumulation_steps: Optional[int] = None,
        name: Optional[str] = None,
        **kwargs: Any,
    ):
        self._check_unknown_kwargs(kwargs)
        _check_not_module(params)
        if is_learning_rate(params):
            if learning_rate != self._default_learning_rate():
                raise TypeError(
                    "The learning rate was passed twice: as the first positional"
                    f" argument ({params!r:.40}) and as `learning_rate`. When the"
                    " learning rate comes first, pass the other arguments by keyword."
                )
            params, learning_rate = None, params
        _gradients.check_accumulation_steps(gradient_accumulation_steps)
        if use_ema:
            _ema.check_arguments(ema_momentum, ema_overwrite_frequency)
        _gradients.check_clipping(clipnorm, clipvalue, global_clipnorm)
        self.name = name if name is not None else _auto_name(type(self).__name__)
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.use_ema = use_ema
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.loss_scale_factor = loss_scale_factor
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self._iterations = 0
        self._built = False
        self._exclude_ids: set[int] = set()
        self._exclude_pattern: Optional[re.Pattern] = None
        self._excluded_cache: Optional[set[int]] = None
        self._group_index_cache: Optional[dict[int, int]] = None
        self._set_learning_rate(learning_rate)
        # Until `build`, look like an optimizer with no parameters, so that
        # `zero_grad()` and `state_dict()` work on an unbuilt one.
        self.defaults = {"lr": self._initial_group_lr(), "weight_decay": weight_decay}
        self.state = defaultdict(dict)
        self.param_groups = []
        for hook_kind in _HOOK_REGISTRIES:
            setattr(self, hook_kind, OrderedDict())
        if params is not None:
            self.build(params)

    # ------------------------------------------------------------------ setup

    @classmethod
    def _default_learning_rate(cls) -> Any:
        parameter = inspect.signature(cls.__init__).parameters.get("learning_rate")
        return None if parameter is None else parameter.default

    def _check_unknown_kwargs(self, kwargs: dict) -> None:
        if kwargs.pop("decay", None) is not None:
            warnings.warn(
                "Argument `decay` is no longer supported and will be ignored.", stacklevel=3
            )
        if not kwargs:
            return
        known = [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]
        hints = []
        for key in kwargs:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.4)
            if key == "lr":
                close = ["learning_rate"]
            hints.append(f"{key}" + (f" (did you mean `{close[0]}`?)" if close else ""))
        raise ValueError(
            f"Argument(s) not recognized by {type(self).__name__}: {', '.join(hints)}."
        )

    def build(self, params: Iterable) -> None:
        """Attaches the parameters to optimize (Keras's `optimizer.build(variables)`).

        Args:
            params: An iterable of parameters, of `(name, parameter)` pairs
                (`module.named_parameters()`), or of param-group dicts.

        Raises:
            ValueError: If the list is empty, or the optimizer was already built
                with other parameters.
        """
        _check_not_module(params)
        params = list(params)
        if self._built:
            current = {id(p) for p in self._all_params()}
            if _param_ids(params) <= current:
                return
            raise ValueError(
                f"Optimizer '{self.name}' is already built with {len(current)}"
                f" parameters; `build` received {len(params)} others. Use"
                " `add_param_group` to add parameters, or create a new optimizer."
            )
        if not params:
            raise ValueError("`params` is empty: the optimizer needs at least one parameter.")
        # torch's __init__ resets hook registries; keep any registered before build.
        hooks = {k: v for k, v in vars(self).items() if k.startswith("_optimizer_")}
        torch.optim.Optimizer.__init__(self, params, self.defaults)
        for key, registry in hooks.items():
            getattr(self, key).update(registry)
        self._built = True

    @property
    def built(self) -> bool:
        """Whether parameters are attached."""
        return self._built

    def _all_params(self) -> list:
        return [p for group in self.param_groups for p in group["params"]]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Adds a param group (torch API); groups may set `lr` and `weight_decay`."""
        unknown = sorted(set(param_group) - _GROUP_KEYS)
        if unknown:
            raise ValueError(
                f"Param group keys {unknown} are not supported by {type(self).__name__}:"
                " a group may only override `lr` and `weight_decay`. Set the other"
                " hyperparameters on the optimizer."
            )
        super().add_param_group(param_group)
        self.forget_parameter_lookups()

    def forget_parameter_lookups(self) -> None:
        """Forgets what was looked up per parameter (the weight-decay exclusions, each
        parameter's group). Call it after replacing the parameters in `param_groups`,
        as sharding a model with FSDP2 does (`torchfit.distribution.ModelParallel`)."""
        self._excluded_cache = None
        self._group_index_cache = None

    def __getstate__(self) -> dict[str, Any]:
        # torch pickles only defaults/state/param_groups; keep our attributes too.
        return {k: v for k, v in vars(self).items() if not k.startswith("_optimizer_")}

    # ---------------------------------------------------------- learning rate

    def _set_learning_rate(self, learning_rate: LearningRate) -> None:
        if is_schedule(learning_rate):
            self._learning_rate = learning_rate
            self._lr_takes_step = takes_step(learning_rate)
            self._is_scheduled = True
        else:
            self._learning_rate = check_finite(
                as_float("learning_rate", learning_rate), "`learning_rate`"
            )
            self._is_scheduled = False

    def _scheduled_lr(self, step: int) -> float:
        value = self._learning_rate(step) if self._lr_takes_step else self._learning_rate()
        value = value if isinstance(value, float) else float(value)
        if math.isfinite(value):  # a Python float: no device sync
            return value
        name = getattr(self._learning_rate, "__name__", type(self._learning_rate).__name__)
        return check_finite(value, f"the `learning_rate` schedule {name} at step {step}")

    def _initial_group_lr(self) -> float:
        return self._scheduled_lr(self._iterations) if self._is_scheduled else self._learning_rate

    def _sync_group_lr(self) -> None:
        """Writes the scheduled rate into param_groups, for readers of `group["lr"]`."""
        self._write_group_lr(self._scheduled_lr(self._iterations))

    def _write_group_lr(self, lr: float) -> None:
        self.defaults["lr"] = lr
        for group in self.param_groups:
            group["lr"] = lr

    @property
    def learning_rate(self) -> float:
        """The current learning rate; a schedule is evaluated at the current step.

        Assigning a number sets it in every param group (torch LR schedulers
        read and write the same `group["lr"]`). Assigning a schedule replaces
        the rate. An optimizer built on a schedule raises `TypeError` when
        given a number, as Keras does.
        """
        if self._is_scheduled:
            return self._scheduled_lr(self._iterations)
        if self.param_groups:
            return self.param_groups[0]["lr"]
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate: LearningRate) -> None:
        if self._is_scheduled and not is_schedule(learning_rate):
            raise TypeError(
                "This optimizer was created with a schedule as its `learning_rate`,"
                " hence its learning rate is not settable to a number. If you need"
                " the learning rate to be settable, create the optimizer with a"
                f" float `learning_rate`. Received: {learning_rate!r}"
            )
        self._set_learning_rate(learning_rate)
        if self._is_scheduled:
            self._sync_group_lr()
            return
        self._write_group_lr(self._learning_rate)

    @property
    def iterations(self) -> int:
        """Number of applied updates (calls // gradient_accumulation_steps)."""
        if self.gradient_accumulation_steps:
            return self._iterations // self.gradient_accumulation_steps
        return self._iterations

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """Multiplies `loss` by `loss_scale_factor`, if set (Keras's `scale_loss`)."""
        if self.loss_scale_factor is not None:
            return loss * self.loss_scale_factor
        return loss

    # ---------------------------------------------------------- CUDA graphs
    # An update replayed from a CUDA graph runs the kernels of the call it was
    # captured from, with that call's host values (learning rate, step) frozen in.

    def capture_blockers(self) -> list[str]:
        """Why a replayed update could differ from a fresh one; `[]` when it could not,
        as long as `capture_key()` stays the same (see `torchfit.models.capture`)."""
        reasons = []
        if self._update_reads_step:
            reasons.append(
                "its update reads the step count (e.g. a bias correction), computed on the"
                " host at every step"
            )
        if self._is_scheduled:
            reasons.append("its `learning_rate` is a schedule, evaluated on the host at every step")
        if self.gradient_accumulation_steps:
            reasons.append("its `gradient_accumulation_steps` decides on the host when to update")
        if self.use_ema and self.ema_overwrite_frequency:
            reasons.append("its `ema_overwrite_frequency` decides on the host when to overwrite")
        if any(getattr(self, registry) for registry in _HOOK_REGISTRIES[:2]):
            reasons.append("its step hooks run Python at every step")
        return reasons

    def capture_key(self) -> tuple:
        """The host values a captured update freezes: every group's learning rate and
        weight decay, and the optimizer's own settings. A graph is valid while it holds."""
        groups = tuple((group["lr"], group.get("weight_decay")) for group in self.param_groups)
        settings = tuple(
            (key, value)
            for key, value in vars(self).items()
            if not key.startswith("_") and isinstance(value, (bool, int, float, str, type(None)))
        )
        return groups, settings

    def count_replayed_update(self, count: int = 1) -> None:
        """Counts an update a CUDA graph replayed (its kernels ran, this Python did not);
        `count=-1` takes back the count of a capture (its Python ran, its kernels did not)."""
        self._iterations += count

    # ----------------------------------------------------------- entry points

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """Applies one Keras optimizer call to every parameter's `.grad`.

        Parameters whose `.grad` is `None` are skipped (torch's convention);
        a call where no parameter has a gradient does nothing. The step hooks
        (`register_step_pre_hook`, ...) and the profiler's
        `Optimizer.step#...` range are torch's, as for any `torch.optim`
        optimizer; with neither, the step skips torch's wrapper (~10 us).

        Args:
            closure: Optional callable that re-evaluates the model and returns
                the loss. Defaults to `None`.

        Returns:
            The closure's loss, or `None`.
        """
        if type(self).step is not Optimizer.step:
            # `super().step()` of a subclass's own `step`, which torch wraps with the hooks.
            return self._step(closure)
        if _step_observed(self):
            return _hooked_step(self) if closure is None else _hooked_step(self, closure)
        loss = self._step(closure)
        self._optimizer_step_code()  # torch's profiler entry point, as its wrapper calls it
        return loss

    # Tells torch.optim not to wrap `step` again: it runs torch's wrapper itself when watched.
    step.hooked = True

    def _step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """`step` without torch's hooks and profiler range."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._require_built("step")
        batches = _gradients.collect_grads(self.param_groups)
        if batches:
            with torch.no_grad():
                self._apply(batches)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Resets every parameter's `.grad` (to `None` by default), as `torch.optim` does.

        Setting them to `None` skips torch's profiler range unless a profiler runs (~10 us).
        """
        if not set_to_none or torch._C._autograd._profiler_enabled():
            super().zero_grad(set_to_none)
            return
        if not hasattr(self, "_zero_grad_profile_name"):
            self._patch_step_function()  # what torch's zero_grad does first
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    param.grad = None

    def apply(self, grads: Iterable, trainable_variables: Optional[Iterable] = None) -> None:
        """Applies `grads` to `trainable_variables` (Keras's `optimizer.apply`).

        Leaves every `.grad` untouched. Builds the optimizer on
        `trainable_variables` if it is not built yet.

        Args:
            grads: Gradients, one per variable; `None` entries are skipped.
            trainable_variables: The parameters, in the same order; `None`
                means all parameters the optimizer holds, in group order.
                Defaults to `None`.

        Raises:
            ValueError: If lengths or shapes differ, a variable is unknown, or
                every gradient is `None`.
        """
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None:
            self._require_built("apply")
            variables = self._all_params()
        else:
            variables = list(trainable_variables)
            if not self._built:
                self.build(variables)
        if len(grads) != len(variables):
            raise ValueError(
                f"`grads` and `trainable_variables` must have the same length."
                f" Received: {len(grads)} gradients for {len(variables)} variables."
            )
        with torch.no_grad():
            batches = _gradients.group_grads(
                grads, variables, self.param_groups, self._group_index(), self.name
            )
            self._apply(batches)

    def apply_gradients(self, grads_and_vars: Iterable) -> int:
        """Applies `(gradient, variable)` pairs; returns `iterations` (tf.keras style)."""
        pairs = list(grads_and_vars)
        if pairs:
            grads, variables = zip(*pairs)
            self.apply(grads, variables)
        return self.iterations

    def _require_built(self, method: str) -> None:
        if not self._built:
            raise ValueError(
                f"`{method}()` needs parameters, but optimizer '{self.name}' has none."
                " Pass them at creation (`Adam(model.parameters())`) or call"
                " `optimizer.build(model.parameters())` first."
            )

    def _group_index(self) -> dict[int, int]:
        if self._group_index_cache is None:
            self._group_index_cache = {
                id(p): i for i, group in enumerate(self.param_groups) for p in group["params"]
            }
        return self._group_index_cache

    # --------------------------------------------------------------- pipeline

    def _apply(self, batches: list[Batch]) -> None:
        """Runs one Keras optimizer call on `batches` (under `torch.no_grad`)."""
        calls = self._iterations
        lr = self._scheduled_lr(calls) if self._is_scheduled else None
        states = [self._states(params) for _, params, _ in batches]
        if self.loss_scale_factor is not None:
            batches = _gradients.unscale(batches, self.loss_scale_factor)
        if self.gradient_accumulation_steps:
            batches = self._accumulate(batches, states, calls)
        if batches is not None:  # None: a call that only accumulates
            batches = _gradients.clip(batches, self.clipnorm, self.clipvalue, self.global_clipnorm)
            step = self.iterations + 1
            self._prepare_update(step)
            for (group, params, grads), group_states in zip(batches, states):
                group_lr = group["lr"] if lr is None else lr
                self._apply_weight_decay(group, params, group_lr)
                self._update_step(params, grads, group_states, group_lr, step)
        if self.use_ema:
            self._update_moving_average()
        self._iterations += 1
        if self._is_scheduled:
            self._sync_group_lr()

    def _states(self, params: list) -> list[dict]:
        states = []
        for param in params:
            state = self.state[param]
            if not state:
                self._init_state(param, state)
            states.append(state)
        return states

    def _init_state(self, param: torch.Tensor, state: dict) -> None:
        if self.gradient_accumulation_steps:
            state["gradient_accumulator"] = torch.zeros_like(
                param, memory_format=torch.preserve_format
            )
        if self.use_ema:
            state["average"] = param.detach().clone(memory_format=torch.preserve_format)
        self._init_slots(param, state)

    def _accumulate(self, batches: list[Batch], states: list, calls: int) -> Optional[list[Batch]]:
        """Adds this call's gradients in; returns the cycle's mean on its last call, else `None`."""
        steps = self.gradient_accumulation_steps
        accumulators = [
            [s["gradient_accumulator"] for s in group_states] for group_states in states
        ]
        if (calls + 1) % steps != 0:
            _gradients.accumulate(batches, accumulators)
            return None
        mean = _gradients.accumulated_mean(batches, accumulators, steps)
        # Keras resets every accumulator after an update, not only those that
        # received a gradient this call.
        all_states = [self.state[param] for param in self._all_params()]
        torch._foreach_zero_(
            [s["gradient_accumulator"] for s in all_states if "gradient_accumulator" in s]
        )
        return mean

    # ----------------------------------------------------------- weight decay

    def exclude_from_weight_decay(
        self, var_list: Optional[Iterable] = None, var_names: Optional[Iterable[str]] = None
    ) -> None:
        """Exempts parameters from weight decay.

        Args:
            var_list: Parameters to exempt. Defaults to `None`.
            var_names: Substrings (regular expressions); a parameter whose name
                contains one is exempt, e.g. `["bias"]`. Names come from
                `named_parameters()` passed to the constructor or `build`.
                Defaults to `None`.
        """
        self._exclude_ids = {id(p) for p in var_list or ()}
        names = list(var_names or ())
        self._exclude_pattern = re.compile("|".join(names)) if names else None
        self._excluded_cache = None

    def _excluded(self) -> set[int]:
        if self._excluded_cache is not None:
            return self._excluded_cache
        excluded = set(self._exclude_ids)
        if self._exclude_pattern is not None:
            for group in self.param_groups:
                names = group.get("param_names")
                if names is None:
                    raise ValueError(
                        "`exclude_from_weight_decay(var_names=...)` needs parameter"
                        " names, but this optimizer was given unnamed parameters."
                        " Build it with `module.named_parameters()`, or pass"
                        " `var_list` instead."
                    )
                for name, param in zip(names, group["params"]):
                    if self._exclude_pattern.search(name):
                        excluded.add(id(param))
        self._excluded_cache = excluded
        return excluded

    def _apply_weight_decay(self, group: dict, params: list, lr: float) -> None:
        weight_decay = group["weight_decay"]
        if not weight_decay:
            return
        excluded = self._excluded()
        if excluded:
            params = [p for p in params if id(p) not in excluded]
        if params:
            torch._foreach_mul_(params, 1.0 - weight_decay * lr)

    # -------------------------------------------------------------------- EMA

    def _update_moving_average(self) -> None:
        params = self._all_params()
        averages = [s["average"] for s in self._states(params)]
        _ema.update(
            params, averages, self.ema_momentum, self.iterations, self.ema_overwrite_frequency
        )

    def _ema_pairs(self, var_list: Optional[Iterable]) -> tuple[list, list]:
        params = self._all_params() if var_list is None else list(var_list)
        pairs = [
            (p, self.state[p]["average"]) for p in params if "average" in self.state.get(p, {})
        ]
        return [p for p, _ in pairs], [a for _, a in pairs]

    @torch.no_grad()
    def finalize_variable_values(self, var_list: Optional[Iterable] = None) -> None:
        """With `use_ema`, overwrites the weights with their moving average.

        Args:
            var_list: Parameters to overwrite; `None` means all. Defaults to
                `None`.
        """
        if not self.use_ema:
            return
        params, averages = self._ema_pairs(var_list)
        if params:
            torch._foreach_copy_(params, averages)

    @torch.no_grad()
    def swap_ema_weights(self, var_list: Optional[Iterable] = None) -> None:
        """Swaps the weights with their moving average, in place.

        Calling it twice restores the weights; the `SwapEMAWeights` callback
        calls it before and after evaluation.

        Args:
            var_list: Parameters to swap; `None` means all. Defaults to `None`.

        Raises:
            ValueError: If the optimizer was not created with `use_ema=True`.
        """
        if not self.use_ema:
            raise ValueError(
                "`swap_ema_weights()` needs an optimizer created with `use_ema=True`."
                f" Received: use_ema={self.use_ema} on '{self.name}'."
            )
        _ema.swap(*self._ema_pairs(var_list))

    # --------------------------------------------------------- subclass hooks

    def _init_slots(self, param: torch.Tensor, state: dict) -> None:
        """Creates the rule's per-parameter tensors in `state`."""

    def _prepare_update(self, step: int) -> None:
        """Runs once per applied update, before the groups (Nadam's u_product)."""

    def _update_step(self, params: list, grads: list, states: list, lr: float, step: int) -> None:
        """Applies the update rule to one param group.

        Args:
            params: Parameters that have a gradient.
            grads: Their processed gradients (never modify these in place).
            states: Their state dicts, created by `_init_slots`.
            lr: The learning rate as a Python float.
            step: 1-based index of this update (`iterations + 1`), for bias
                corrections.
        """
        for param, grad in zip(params, grads):
            self.update_step(grad, param, lr)

    def update_step(self, gradient: torch.Tensor, variable: torch.Tensor, learning_rate: float):
        """Per-parameter update rule (Keras's hook); subclasses override this or `_update_step`."""
        raise NotImplementedError(f"{type(self).__name__} must implement `_update_step`.")

    def _extra_state(self) -> dict[str, Any]:
        """Optimizer-wide state beyond per-parameter tensors (for `state_dict`)."""
        return {}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        """Restores what `_extra_state` returned."""

    # ------------------------------------------------------- state and config

    @property
    def variables(self) -> list[torch.Tensor]:
        """The optimizer's state tensors, parameter by parameter."""
        return [t for s in self.state.values() for t in s.values() if isinstance(t, torch.Tensor)]

    def state_dict(self) -> dict[str, Any]:
        """torch's `state_dict` plus `"torchfit"`: the call counter and extras."""
        state_dict = super().state_dict()
        state_dict["torchfit"] = {"iterations": self._iterations, **self._extra_state()}
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores `state_dict()`'s output, so training resumes exactly."""
        self._require_built("load_state_dict")
        state_dict = dict(state_dict)
        extra = dict(state_dict.pop("torchfit", {}))
        super().load_state_dict(state_dict)
        self._iterations = int(extra.pop("iterations", 0))
        self._load_extra_state(extra)
        self.forget_parameter_lookups()
        if self._is_scheduled:
            self._sync_group_lr()

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments (Keras's keys) as a dict."""
        if isinstance(self._learning_rate, schedules.LearningRateSchedule):
            learning_rate = schedules.serialize(self._learning_rate)
        elif self._is_scheduled:
            learning_rate = self._learning_rate
        else:
            learning_rate = self.learning_rate
        return {
            "name": self.name,
            "learning_rate": learning_rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Optional[dict] = None):
        """Creates an unbuilt optimizer from `get_config()`'s output."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"], custom_objects)
        return cls(**config)


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    """Returns `{"module", "class_name", "config", "registered_name"}` for `optimizer`.

    Example:

    >>> from torchfit.optimizers import Adam
    >>> serialize(Adam())["class_name"]
    'Adam'
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"`optimizer` must be a torchfit Optimizer. Received: type {type(optimizer).__name__}."
        )
    cls = type(optimizer)
    builtin = cls.__module__.startswith("torchfit.optimizers.")
    return {
        "module": "torchfit.optimizers" if builtin else cls.__module__,
        "class_name": cls.__name__,
        "config": optimizer.get_config(),
        "registered_name": None if builtin else cls.__name__,
    }


def deserialize(
    config: dict[str, Any], custom_objects: Optional[dict[str, Any]] = None
) -> Optimizer:
    """Creates an optimizer from `serialize()`'s output (Keras's layout works too).

    Class names are case-insensitive for the built-in optimizers.

    Args:
        config: A dict with `"class_name"` and `"config"`.
        custom_objects: Optional mapping of names to custom optimizer classes.

    Returns:
        An unbuilt optimizer.

    Raises:
        ValueError: If the class name is unknown.

    Example:

    >>> from torchfit.optimizers import Adam
    >>> type(deserialize(serialize(Adam(learning_rate=0.1)))).__name__
    'Adam'
    """
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            "`config` must be a dict with 'class_name' and 'config' keys."
            f" Received: type {type(config).__name__}."
        )
    name = str(config["class_name"])
    custom_objects = custom_objects or {}
    cls = custom_objects.get(name) or BUILTIN_OPTIMIZERS.get(name.lower())
    if cls is None:
        known = sorted(BUILTIN_OPTIMIZERS)
        close = difflib.get_close_matches(name.lower(), known, n=3)
        raise ValueError(
            f"Unknown optimizer: '{name}'. Closest valid names: {close or known}."
            " Pass a custom optimizer class in `custom_objects`."
        )
    return cls.from_config(dict(config.get("config") or {}), custom_objects=custom_objects)


def _step_observed(optimizer: Optimizer) -> bool:
    """Whether a step must run through torch's wrapper: step hooks, or a running profiler."""
    return bool(
        optimizer._optimizer_step_pre_hooks
        or optimizer._optimizer_step_post_hooks
        or _torch_optimizer._global_optimizer_pre_hooks
        or _torch_optimizer._global_optimizer_post_hooks
        or torch._C._autograd._profiler_enabled()
    )


# torch's own step wrapper (hooks, profiler range, `_optimizer_step_code`) around `_step`.
_hooked_step = torch.optim.Optimizer.profile_hook_step(Optimizer._step)
