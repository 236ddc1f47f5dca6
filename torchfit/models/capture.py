"""Experimental, never run on a GPU yet: whole steps replayed from CUDA graphs.

`compile(jit_compile="cuda_graph")` opts in. Owns deciding whether a model's
training, evaluation and prediction steps can be captured (`plan_step`, with
the reasons when not), the probe that finds host syncs and random ops in one
eager step (`StepProbe`), and running the steps from graphs (`CapturedSteps`):
one graph per batch signature with static input buffers, the state a graph
froze checked before every replay (re-captured when it changed), learning rates
of capturable torch optimizers read from device tensors, and the fallback to
the `torch.compile` path with one warning that says why. The steps themselves
belong to `models/model.py`, when they run to `loops.py`, and what an optimizer
freezes in a captured update to the optimizer (`capture_blockers`,
`capture_key`, `count_replayed_update`).

Nothing here has run on a GPU: the CPU tests drive the planner, the probe and
the runner with an emulated graph backend; `tests/models/test_capture.py` holds
the CUDA tests, and `bench/gpu_check.py` runs them (and times the steps) on a GPU machine.
"""

import contextlib
import copy
import os
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, Optional

import torch
from torch.optim import optimizer as torch_optimizer
from torch.utils._python_dispatch import TorchDispatchMode

from torchfit import optimizers as optimizers_module
from torchfit import tree
from torchfit.distribution import SingleProcess
from torchfit.logs import MetricLogs
from torchfit.metrics.torchmetrics_adapter import TorchMetricsAdapter

__all__ = ["CUDA_GRAPH", "STEPS", "CapturedSteps", "CudaGraphs", "StepPlan", "StepProbe"]
__all__ += ["batch_signature", "optimizer_reasons", "plan_step"]

#: The `jit_compile` value that opts in.
CUDA_GRAPH = "cuda_graph"
#: The steps that can be captured, by the prefix of their method's name.
STEPS = ("train", "test", "predict")
_STEP_NAMES = {"train": "training step", "test": "evaluation step", "predict": "prediction step"}
# torch.optim optimizers that read a tensor learning rate when capturable or fused:
# a new rate is written into the tensor, with no re-capture.
_DEVICE_LR_TYPES = (torch.optim.Adam, torch.optim.AdamW)
_TORCH_DIR = os.path.dirname(torch.__file__)
_THIS_FILE = os.path.abspath(__file__)


# ------------------------------------------------------------------ planner
class StepPlan(NamedTuple):
    """Whether one step can be captured, and why not (`reasons` empty when it can)."""

    step: str
    reasons: tuple

    @property
    def capturable(self) -> bool:
        return not self.reasons


def plan_step(model, step: str, default_step: Callable, device=None) -> StepPlan:
    """Decides whether `model`'s `step` ("train", "test" or "predict") can be captured.

    Args:
        model: A compiled `torchfit.Model`.
        step: Which step.
        default_step: `Model`'s own method for that step (an override is not captured).
        device: The device to plan for. Defaults to `model.device`.

    Returns:
        A `StepPlan`; each reason says what would run differently from a graph.

    Example:
    >>> import torchfit
    >>> model = torchfit.Model(torch.nn.Linear(2, 1), device="cpu")
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> plan_step(model, "train", torchfit.Model.train_step).reasons
    ('the model runs on cpu: CUDA graphs need a CUDA device',)
    >>> plan_step(model, "train", torchfit.Model.train_step, device="cuda").capturable
    True
    """
    device = model.device if device is None else torch.device(device)
    reasons = []
    if device.type != "cuda":
        reasons.append(f"the model runs on {device}: CUDA graphs need a CUDA device")
    if type(model.distribution) is not SingleProcess:
        reasons.append(
            "the model runs across processes (torch.distributed): the gradients'"
            " all-reduce is not captured"
        )
    if getattr(type(model), f"{step}_step") is not default_step:
        reasons.append(
            f"a custom `{step}_step` overrides the default: its Python would run only once,"
            " at capture"
        )
    if step != "predict":
        reasons.extend(_loss_and_metric_reasons(model))
    if step == "train":
        reasons.extend(optimizer_reasons(model.optimizer, model._loss_scaler))
    return StepPlan(step, tuple(reasons))


def _loss_and_metric_reasons(model) -> list:
    reasons = []
    if model._callable_losses:
        reasons.append("`add_loss` callables run Python at every step")
    if model._callable_metrics:
        reasons.append("`add_metric` callables run Python at every step")
    if model._added_metrics:
        reasons.append("`add_metric` in forward creates and updates its trackers in Python")
    for metric in model.metrics:
        if isinstance(metric, TorchMetricsAdapter):
            reasons.append(f"the torchmetrics metric '{metric.name}' counts its updates in Python")
        elif not type(metric).__module__.startswith("torchfit."):
            reasons.append(
                f"the metric '{metric.name}' ({type(metric).__name__}) is not one of"
                " torchfit's: its update_state may keep Python state"
            )
    return reasons


def optimizer_reasons(optimizer, loss_scaler=None) -> list:
    """Why `optimizer`'s update (with the model's float16 `loss_scaler`) cannot be replayed.

    Example:
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> optimizer_reasons(torch.optim.Adam([w], capturable=True))
    []
    >>> optimizer_reasons(torch.optim.Adam([w]))[0].split(":")[:2]
    ["optimizer 'Adam'", ' it was built with capturable=False']
    """
    if optimizer is None:
        return []
    if isinstance(optimizer, optimizers_module.Optimizer):
        reasons = optimizer.capture_blockers()
    else:
        reasons = _torch_optimizer_reasons(optimizer)
    name = getattr(optimizer, "name", None) or type(optimizer).__name__
    reasons = [f"optimizer '{name}': {reason}" for reason in reasons]
    if loss_scaler is not None and not getattr(optimizer, "_step_supports_amp_scaling", False):
        reasons.append(
            "mixed_float16's loss scaling reads on the host whether the gradients overflowed"
            " (a torch.optim optimizer with fused=True skips the update on the device)"
        )
    return reasons


def _torch_optimizer_reasons(optimizer) -> list:
    reasons = []
    groups = optimizer.param_groups
    on_device = all(group.get("capturable") or group.get("fused") for group in groups)
    if not on_device and type(optimizer) is not torch.optim.SGD:
        if "capturable" in optimizer.defaults:
            reasons.append(
                "it was built with capturable=False: its step count lives on the host;"
                " build it with capturable=True (or fused=True)"
            )
        else:
            reasons.append(f"{type(optimizer).__name__} has no capturable or fused mode")
    hooks = (
        getattr(optimizer, "_optimizer_step_pre_hooks", None),
        getattr(optimizer, "_optimizer_step_post_hooks", None),
        torch_optimizer._global_optimizer_pre_hooks,
        torch_optimizer._global_optimizer_post_hooks,
    )
    if any(hooks):
        reasons.append("its step hooks run Python at every step")
    return reasons


# -------------------------------------------------------------------- probe
_HOST_READ = "reads a tensor's value on the host (.item(), float(), bool(), an `if` on a tensor)"
_DATA_SHAPED = {
    "nonzero",
    "argwhere",
    "masked_select",
    "unique",
    "_unique",
    "_unique2",
    "unique_consecutive",
    "unique_dim",
    "unique_dim_consecutive",
    "bincount",
}
_RANDOM = {
    "bernoulli",
    "bernoulli_",
    "native_dropout",
    "rand",
    "randn",
    "randint",
    "rand_like",
    "randn_like",
    "randint_like",
    "normal",
    "normal_",
    "uniform_",
    "multinomial",
    "randperm",
    "exponential_",
    "random_",
    "geometric_",
    "cauchy_",
    "log_normal_",
    "poisson",
}


class StepProbe(TorchDispatchMode):
    """Watches one eager step for what a CUDA graph cannot replay: host syncs.

    Records every operation that reads a tensor's value on the host, whose output
    size depends on the data, or copies between the host and the device, with
    the line of user code (else torchfit's) that ran it; and whether any random
    operation ran (their numbers differ between a graph and eager).

    Example:
    >>> x = torch.tensor([1.0, -2.0])
    >>> with StepProbe() as probe:
    ...     y = x[x > 0] if bool(x.sum() < 0) else x
    >>> [reason.split(" at ")[0] for reason in probe.reasons]  # doctest: +NORMALIZE_WHITESPACE
    ["reads a tensor's value on the host (.item(), float(), bool(), an `if` on a tensor)",
     'a boolean-mask index, whose output size depends on the data']
    """

    def __init__(self):
        super().__init__()
        self.reasons: list = []
        self.random = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name in _RANDOM:
            self.random = True
        why = _host_sync(name, args, kwargs)
        if why is not None:
            reason = f"{why} at {_where()}"
            if reason not in self.reasons:
                self.reasons.append(reason)
        return func(*args, **kwargs)


def _host_sync(name: str, args: tuple, kwargs: dict) -> Optional[str]:
    if name in ("_local_scalar_dense", "is_nonzero", "equal"):
        return _HOST_READ
    if name in _DATA_SHAPED:
        return f"`{name}`, whose output size depends on the data"
    if name == "repeat_interleave" and kwargs.get("output_size") is None:
        if isinstance(args[0], torch.Tensor) and args[0].dtype != torch.bool and len(args) < 3:
            return "`repeat_interleave` without output_size, whose output size depends on the data"
    if name in ("index", "index_put", "index_put_") and _has_mask(args[1:2]):
        return "a boolean-mask index, whose output size depends on the data"
    return _host_copy(name, args, kwargs)


def _has_mask(indices: tuple) -> bool:
    flat = [i for group in indices if isinstance(group, (list, tuple)) for i in group]
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in flat)


def _host_copy(name: str, args: tuple, kwargs: dict) -> Optional[str]:
    if name == "_to_copy" and isinstance(args[0], torch.Tensor):
        source, target = args[0].device, kwargs.get("device") or args[0].device
    elif name == "copy_" and len(args) > 1 and isinstance(args[1], torch.Tensor):
        source, target = args[1].device, args[0].device
    else:
        return None
    target = torch.device(target)
    if source.type != target.type and "cpu" in (source.type, target.type):
        return f"copies between the host and the device ({source.type} to {target.type})"
    return None


def _where() -> str:
    """The innermost frame outside torch and this file: `file:line in function`."""
    for frame in reversed(traceback.extract_stack()):
        path = os.path.abspath(frame.filename)
        if path != _THIS_FILE and not path.startswith(_TORCH_DIR):
            return f"{os.path.basename(path)}:{frame.lineno} in {frame.name}"
    return "torch"


# ------------------------------------------------------------ batch shapes
def batch_signature(data) -> Optional[tuple]:
    """What a graph's static inputs are made for: structure, shapes, dtypes, devices.

    `None` when a leaf is not a tensor (a graph would freeze its value).

    Example:
    >>> batch_signature((torch.ones(4, 3), None))
    ('tuple', (('tensor', (4, 3), torch.float32, device(type='cpu')), None))
    >>> batch_signature((torch.ones(4, 3), 1.5)) is None
    True
    """
    try:
        return _signature(data)
    except TypeError:
        return None


def _signature(data) -> Any:
    if isinstance(data, torch.Tensor):
        return ("tensor", tuple(data.shape), data.dtype, data.device)
    if data is None:
        return None
    if isinstance(data, dict):
        return ("dict", tuple((key, _signature(value)) for key, value in data.items()))
    if isinstance(data, (list, tuple)):
        return (type(data).__name__, tuple(_signature(value) for value in data))
    raise TypeError(type(data).__name__)


def _tensors(data) -> list:
    return [leaf for leaf in tree.flatten(data) if isinstance(leaf, torch.Tensor)]


# ----------------------------------------------------------------- backend
class CudaGraphs:
    """torch.cuda's graphs: warm-up on a side stream, capture, replay (torch's recipe)."""

    def __init__(self):
        self._stream = None

    @staticmethod
    def device_for(model) -> torch.device:
        """The device the planner checks: where the model runs."""
        return model.device

    @contextlib.contextmanager
    def warm_up(self) -> Iterator[None]:
        """Runs the block on a side stream, ordered after and before the current one."""
        if self._stream is None:
            self._stream = torch.cuda.Stream()
        current = torch.cuda.current_stream()
        self._stream.wait_stream(current)
        with torch.cuda.stream(self._stream):
            yield
        current.wait_stream(self._stream)

    def capture(self, function: Callable[[], Any]) -> tuple:
        """Captures `function`'s kernels (they do not run); returns `(graph, its result)`."""
        graph = torch.cuda.CUDAGraph()
        # thread_local: a DataLoader's pin-memory thread may call CUDA meanwhile.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            result = function()
        return graph, result

    @staticmethod
    def replay(graph) -> None:
        graph.replay()


# ------------------------------------------------------------------ runner
class _Graph:
    """One captured step: its graph, static inputs, outputs and the state it froze."""

    __slots__ = ("graph", "inputs", "static_leaves", "outputs", "key", "kept")

    def __init__(self, graph, inputs, outputs, key, kept):
        self.graph = graph
        self.inputs = inputs
        self.static_leaves = _tensors(inputs)
        self.outputs = outputs
        self.key = key
        self.kept = kept  # tensors made during capture that the graph writes (gradients)


class _DeviceLearningRates:
    """The learning rates of a capturable torch Adam/AdamW, as device tensors in its graphs."""

    def __init__(self, optimizer, device: torch.device):
        self.groups = optimizer.param_groups
        self.written = [group["lr"] for group in self.groups]
        self.tensors = [torch.full((), float(lr), device=device) for lr in self.written]

    @staticmethod
    def applies(optimizer) -> bool:
        groups = getattr(optimizer, "param_groups", [])
        return (
            isinstance(optimizer, _DEVICE_LR_TYPES)
            and all(group.get("capturable") or group.get("fused") for group in groups)
            and all(isinstance(group["lr"], float) for group in groups)
        )

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """The groups hold the tensors while a graph is captured, their floats after."""
        floats = [group["lr"] for group in self.groups]
        for group, tensor in zip(self.groups, self.tensors):
            group["lr"] = tensor
        try:
            yield
        finally:
            for group, value in zip(self.groups, floats):
                group["lr"] = value

    def sync(self) -> None:
        """Writes a rate changed since the last replay (a schedule, a callback) to its tensor."""
        for index, group in enumerate(self.groups):
            lr = group["lr"]
            if lr != self.written[index]:
                self.tensors[index].fill_(lr)
                self.written[index] = lr


class _StepRunner:
    """One step's graphs, one per batch signature, and when to warm up, capture or replay."""

    def __init__(self, owner: "CapturedSteps", step: str):
        self.owner = owner
        self.model = owner.model
        self.step = step
        self.graphs: dict = {}
        self.seen: dict = {}
        self.probed = False
        self.random = False
        self.stats = owner.stats[step]
        optimizer = self.model.optimizer if step == "train" else None
        self.optimizer = optimizer
        self.counts_updates = isinstance(optimizer, optimizers_module.Optimizer)
        self.device_lr = (
            _DeviceLearningRates(optimizer, self.model.device)
            if _DeviceLearningRates.applies(optimizer)
            else None
        )

    def __call__(self, data):
        signature = batch_signature(data)
        if signature is None:
            return self._eager(data)
        entry = self.graphs.get(signature)
        if entry is not None:
            if entry.key == self._key():
                return self._replay(entry, data)
            self.graphs.clear()  # what the graphs froze changed: capture again
            self.stats["recaptures"] += 1
            if self.stats["recaptures"] > self.owner.max_recaptures:
                return self._fall_back(
                    data,
                    f"what its graphs froze (weights' storage, modes, optimizer settings)"
                    f" changed more than {self.owner.max_recaptures} times",
                )
            return self._capture_and_run(signature, data)
        seen = self.seen[signature] = self.seen.get(signature, 0) + 1
        if seen <= self.owner.warmup_steps:
            return self._warm_up(data, probe=seen == self.owner.warmup_steps and not self.probed)
        if len(self.graphs) >= self.owner.max_graphs:
            return self._eager(data)
        return self._capture_and_run(signature, data)

    # ------------------------------------------------------------ eager steps
    def _eager(self, data):
        self.stats["eager"] += 1
        return self.owner.eager(self.step, data)

    def _warm_up(self, data, probe: bool):
        if not probe:
            with self.owner.backend.warm_up():
                return self._eager(data)
        # The step's second eager run, once every build is done, is probed (the first
        # builds the compiled loss and metrics and checks the targets on the host).
        self.probed = True
        with self.owner.backend.warm_up(), self.owner.eager_forward(), StepProbe() as probe:
            result = self._eager(data)
        self.random = probe.random
        if probe.reasons:
            self.owner.fall_back(self.step, tuple(probe.reasons))
        return result

    def _fall_back(self, data, reason: str):
        self.owner.fall_back(self.step, (reason,))
        return self._eager(data)

    # ---------------------------------------------------------------- capture
    def _capture_and_run(self, signature, data):
        plan = plan_step(
            self.model,
            self.step,
            self.owner.default_steps[self.step],
            self.owner.backend.device_for(self.model),
        )
        if plan.reasons:  # e.g. `add_metric` in forward, seen in the warm-up steps
            self.owner.fall_back(self.step, plan.reasons)
            return self._eager(data)
        try:
            entry = self._capture(data)
        except Exception as err:  # noqa: BLE001 - any failed capture falls back, loudly
            return self._fall_back(data, f"the capture failed ({type(err).__name__}: {err})")
        self.graphs[signature] = entry
        self.stats["captures"] += 1
        if self.owner.verify and not self.random:
            return self._verified_replay(entry, data)
        return self._replay(entry, data)

    def _capture(self, data) -> _Graph:
        inputs = tree.map_structure(_static_copy, data)
        device_lr = self.device_lr.installed() if self.device_lr else contextlib.nullcontext()
        counted = self.optimizer.iterations if self.counts_updates else 0
        try:
            with device_lr, self.owner.capturing():
                graph, outputs = self.owner.backend.capture(
                    lambda: self.owner.eager(self.step, inputs)
                )
        finally:
            if self.counts_updates:  # the capture's Python counted an update that did not run
                self.optimizer.count_replayed_update(counted - self.optimizer.iterations)
        kept = [p.grad for p in self.model.parameters() if p.grad is not None]
        return _Graph(graph, inputs, outputs, self._key(), kept)

    def _key(self) -> tuple:
        """What a graph froze: storage of the state it reads and writes, modes, settings."""
        model = self.model
        parameters = list(model.parameters())
        key = (
            tuple(p.data_ptr() for p in parameters),
            tuple(p.requires_grad for p in parameters),
            tuple(b.data_ptr() for b in model.buffers()),
            tuple(m.training for m in model.modules()),
            tuple(v.data_ptr() for metric in model.metrics for v in metric.variables),
        )
        if self.optimizer is not None:
            key += (_optimizer_key(self.optimizer, self.device_lr is not None),)
        return key

    # ----------------------------------------------------------------- replay
    def _replay(self, entry: _Graph, data):
        torch._foreach_copy_(entry.static_leaves, _tensors(data))
        if self.device_lr is not None:
            self.device_lr.sync()
        self.owner.backend.replay(entry.graph)
        if self.counts_updates:
            self.optimizer.count_replayed_update()
        self.stats["replays"] += 1
        if self.step == "predict":
            # The graph rewrites its outputs at the next replay: this batch keeps a copy.
            return tree.map_structure(_copy_tensor, entry.outputs)
        return MetricLogs(self.model.get_metrics_result)

    def _verified_replay(self, entry: _Graph, data):
        """Replays once against an eager step on the same batch, from the same state; falls
        back (keeping the eager result) unless they agree to float32 round-off."""
        state = self._state_tensors()
        before = [t.detach().clone() for t in state]
        eager = self.owner.eager(self.step, data)
        eager_outputs = tree.map_structure(_copy_tensor, eager) if self.step == "predict" else None
        after_eager = [t.detach().clone() for t in state]
        _copy_all(state, before)
        if self.counts_updates:
            self.optimizer.count_replayed_update(-1)
        result = self._replay(entry, data)
        mismatch = _mismatch(state, after_eager)
        if mismatch is None and eager_outputs is not None:
            mismatch = _mismatch(_tensors(result), _tensors(eager_outputs), "the outputs")
        if mismatch is None:
            return result
        _copy_all(state, after_eager)
        self.stats["replays"] -= 1
        self.owner.fall_back(self.step, (f"a replay did not match eager: {mismatch} differ",))
        return (
            eager_outputs if self.step == "predict" else MetricLogs(self.model.get_metrics_result)
        )

    def _state_tensors(self) -> list:
        model = self.model
        state = list(model.parameters()) + list(model.buffers())
        state += [v for metric in model.metrics for v in metric.variables]
        if self.optimizer is not None:
            state += [
                value
                for entries in self.optimizer.state.values()
                for value in entries.values()
                if isinstance(value, torch.Tensor)
            ]
        return state


def _static_copy(leaf):
    return leaf.detach().clone() if isinstance(leaf, torch.Tensor) else leaf


def _copy_tensor(leaf):
    return leaf.clone() if isinstance(leaf, torch.Tensor) else leaf


def _copy_all(targets: list, sources: list) -> None:
    with torch.no_grad():
        for target, source in zip(targets, sources):
            target.copy_(source)


def _mismatch(actual: list, expected: list, what: str = "the weights or states") -> Optional[str]:
    # One host read per capture (not per step): the check runs once per graph.
    for a, b in zip(actual, expected):
        if a.shape != b.shape or not torch.allclose(
            a.float(), b.float(), rtol=1e-4, atol=1e-6, equal_nan=True
        ):
            return what
    return None


def _plain(value) -> Any:
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    if isinstance(value, tuple) and all(isinstance(v, (bool, int, float)) for v in value):
        return value
    return id(value)


def _optimizer_key(optimizer, device_lr: bool) -> tuple:
    if isinstance(optimizer, optimizers_module.Optimizer):
        key = optimizer.capture_key()
    else:
        key = tuple(
            tuple(
                (name, _plain(value))
                for name, value in group.items()
                if name != "params" and not (device_lr and name == "lr")
            )
            for group in optimizer.param_groups
        )
    state = tuple(
        value.data_ptr()
        for entries in optimizer.state.values()
        for value in entries.values()
        if isinstance(value, torch.Tensor)
    )
    return key, state


# ------------------------------------------------------------------- steps
class CapturedSteps:
    """The steps of a model compiled with `jit_compile="cuda_graph"` (experimental).

    The model's default `train_step`, `test_step` and `predict_step` hand each
    batch to `run` while `routes(step)`; `run` plans all three steps at the first
    one (one warning for those that cannot be captured), then per step and batch
    signature: `warmup_steps` eager steps on a side stream (the second one probed
    for host syncs), a capture, and replays. A replay is checked once against an
    eager step (`verify`); a step that cannot be captured runs as with
    `jit_compile=True`, after one warning that says why.

    Args:
        model: The compiled `torchfit.Model`.
        default_steps: `{"train": Model.train_step, ...}`: a step whose method is
            not the default one is an override, never captured.
        backend: What captures and replays. Defaults to `CudaGraphs()`.
        warmup_steps: Eager steps per batch signature before its capture (>= 2).
        max_graphs: Graphs per step; other signatures run eagerly.
        max_recaptures: Re-captures per step before falling back.
        verify: Check each new graph's first replay against an eager step.
    """

    def __init__(
        self,
        model,
        default_steps: dict,
        backend: Any = None,
        *,
        warmup_steps: int = 2,
        max_graphs: int = 4,
        max_recaptures: int = 16,
        verify: bool = True,
    ):
        self.model = model
        self.default_steps = default_steps
        self.backend = backend if backend is not None else CudaGraphs()
        self.warmup_steps = max(2, warmup_steps)
        self.max_graphs = max_graphs
        self.max_recaptures = max_recaptures
        self.verify = verify
        #: Per step: captures, replays, eager steps and re-captures so far.
        self.stats = {
            step: {"captures": 0, "replays": 0, "eager": 0, "recaptures": 0} for step in STEPS
        }
        #: Per step, once the first step ran: its `StepPlan`.
        self.plans: Optional[dict] = None
        #: Per step that runs without graphs: the reasons (as the warning said them).
        self.fallbacks: dict = {}
        self.capturing_now = False
        self._inside = False
        self._runners: dict = {}

    def routes(self, step: str) -> bool:
        """Whether the model's default `step` should hand its batch to `run`."""
        return not self._inside and step not in self.fallbacks

    def run(self, step: str, data):
        """Runs one `step` on `data`: eagerly, captured or replayed."""
        if self.plans is None:
            self._plan()
        runner = self._runners.get(step)
        if runner is None:
            return self.eager(step, data)
        return runner(data)

    def eager(self, step: str, data):
        """Runs the model's own `step` on `data` (not routed back here)."""
        inside, self._inside = self._inside, True
        try:
            return getattr(self.model, f"{step}_step")(data)
        finally:
            self._inside = inside

    def _plan(self) -> None:
        device = self.backend.device_for(self.model)
        self.plans = {
            step: plan_step(self.model, step, self.default_steps[step], device) for step in STEPS
        }
        blocked = {step: plan.reasons for step, plan in self.plans.items() if plan.reasons}
        self._runners = {step: _StepRunner(self, step) for step in STEPS if step not in blocked}
        if blocked:
            self.fallbacks.update(blocked)
            _warn(blocked)

    def fall_back(self, step: str, reasons: tuple) -> None:
        """Runs `step` without graphs from now on, after one warning with `reasons`."""
        if step in self.fallbacks:
            return
        self.fallbacks[step] = reasons
        self._runners.pop(step, None)
        _warn({step: reasons})

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        """Marks a capture (autocast then keeps no cast-weight cache)."""
        self.capturing_now = True
        try:
            yield
        finally:
            self.capturing_now = False

    @contextlib.contextmanager
    def eager_forward(self) -> Iterator[None]:
        """The probed step runs the forward uncompiled: dynamo does not trace under a probe."""
        model = self.model
        compiled = model._jit_forward
        model._set_jit_forward(None)
        try:
            yield
        finally:
            if model._jit_forward is None:
                model._set_jit_forward(compiled)

    def __reduce__(self):
        # Graphs are not copied or pickled: a copy starts planning afresh.
        return (CapturedSteps, (self.model, self.default_steps))

    def __deepcopy__(self, memo):
        return CapturedSteps(copy.deepcopy(self.model, memo), self.default_steps)


def _warn(blocked: dict) -> None:
    """One warning for the steps in `blocked` (`{step: reasons}`), those with the
    same reasons named together."""
    by_reasons: dict = {}
    for step, reasons in blocked.items():
        by_reasons.setdefault(reasons, []).append(_STEP_NAMES[step])
    parts = []
    for reasons, names in by_reasons.items():
        steps = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        parts.append(f"the {steps}: {'; '.join(reasons)}")
    warnings.warn(
        "jit_compile='cuda_graph' (experimental): not captured in a CUDA graph, so run as"
        " with jit_compile=True (torch.compile): " + ". ".join(parts) + ".",
        stacklevel=5,
    )
