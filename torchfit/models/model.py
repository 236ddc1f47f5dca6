"""`torchfit.Model`: Keras's training API on any `nn.Module`.

Owns the model's state (device, compiled loss/metrics/optimizer, metric
trackers, history), how inputs reach `forward`, and the overridable steps
(`train_step`, `test_step`, `predict_step`, `compute_loss`,
`compute_metrics`). The epoch loops and hook order belong to `loops.py`;
turning user data into batches belongs to `data/`; what `compile` means per
output belongs to `compiled.py`.
"""

import functools
import inspect
import warnings
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn

from torchfit import distribution as distribution_lib
from torchfit import layers, mixed_precision, tree
from torchfit import metrics as metrics_module
from torchfit import optimizers as optimizers_module
from torchfit.compiled import CompileLoss, CompileMetrics, outputs_structure
from torchfit.data.data_adapter_utils import unpack_x_y_sample_weight
from torchfit.distribution import SingleProcess
from torchfit.logs import MetricLogs
from torchfit.models import capture, saving, serialization
from torchfit.models.forward import (
    ForwardSignature,
    autocast,
    bool_input_cast,
    cast_floats,
    default_device,
    describe_forward_error,
    make_jit_forward,
    route_inputs,
)
from torchfit.models.freezing import Freezing
from torchfit.models.keras_surface import KerasSurface
from torchfit.models.metrics_tracking import MetricsTracking
from torchfit.models.serialization import MODEL_KIND, Rebuildable
from torchfit.models.trainer import Trainer
from torchfit.outputs import own_loss
from torchfit.utils.arguments import check_count
from torchfit.utils.modes import run_in_mode
from torchfit.utils.summary import print_summary, record_output_shapes
from torchfit.utils.uncompiled import uncompiled

__all__ = ["Model"]


def _check_jit_compile(jit_compile: Any) -> None:
    if (
        jit_compile is None
        or isinstance(jit_compile, bool)
        or jit_compile in ("auto", "cuda_graph")
    ):
        return
    raise ValueError(
        "`jit_compile` must be True, False, 'auto' (off) or 'cuda_graph' (experimental)."
        f" Received: jit_compile={jit_compile!r:.40} of type {type(jit_compile).__name__}."
    )


DeviceLike = Union[str, torch.device, None]


class Model(
    Trainer, MetricsTracking, Freezing, KerasSurface, Rebuildable, nn.Module, saved_as=MODEL_KIND
):
    """Gives an `nn.Module` Keras's `compile`, `fit`, `evaluate` and `predict`.

    Wrap any module, or subclass and write `forward`. The model is itself an
    `nn.Module`; it trains the wrapped module in place, so the module's
    `state_dict()` is the trained one.

    Args:
        module: The module to train. `None` when a subclass's own `forward`
            is the model.
        output_names: Names for the outputs of a module that returns a tuple
            or list (used in log keys and in dict `loss`/`metrics`). Defaults
            to `output_1`, `output_2`, ...
        device: Where to run. Defaults to CUDA if available, else MPS, else
            CPU. `model.to(...)` later is honoured too.

    Example:
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    >>> model = Model(net, device="cpu")
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> history = model.fit(np.ones((8, 4)), np.zeros((8, 1)), epochs=2, verbose=0)
    >>> len(history.history["loss"])
    2

    What torchfit's other rooms may use (the model's side of the seams; every
    other name with a leading `_` is the model's own):

    - the loops (`loops.py`): the steps (`train_step`, `test_step`,
      `predict_step`), `steps_per_execution`, `metrics`, `reset_metrics`,
      `get_metrics_result`, `optimizer`, `history`; they set `stop_training`
      (read by every loop) and read and clear `resume_point`; they call
      `check_targets_once_built(data)` before an epoch's steps and run the steps
      inside `tracking_added_metrics(...)` and, for training, `training_epoch()`;
      `stop_evaluating` and `stop_predicting` end an evaluation or prediction.
    - callbacks: `stop_training`, `history`, `optimizer`, `metrics`,
      `weights_module`, `example_inputs` (TensorBoard's graph), `save`,
      `save_weights`; `BackupAndRestore` sets `resume_point` in `on_train_begin`
      and calls `build_compiled_from(batch)` before restoring metric states.
    - `torchfit.distribution`: `distribution` and `use_distribution`, `device`,
      `to`, `metrics`, `optimizer`, `weights_module`, `jit_compile`; the
      distribution sets `stop_training` when the processes agree to stop.
    - `utils/` (summary, plot_model): `example_inputs`, `forward_module`,
      `route_inputs`.
    - `data/` (through the verbs): `forward_signature`, whose parameter names pick
      the input columns of a dataset of dict rows.
    """

    #: How the model runs across processes (see `torchfit.distribution`): in one
    #: process a `SingleProcess`, whose answers are the identity; under torchrun the
    #: `DistributedRun` that `fit`/`evaluate`/`predict` give it (`use_distribution`).
    distribution: SingleProcess = SingleProcess()
    #: Where the next `fit` starts, when an interrupted run resumes: `None`, or what
    #: `BackupAndRestore` sets in `on_train_begin` (its `ResumePoint`: the
    #: `epoch` to start at, the `skip_batches` already trained in it, and
    #: `resumed(batch)`, called with the first batch trained). `fit` reads and clears it.
    resume_point = None

    def __init__(
        self,
        module: Optional[nn.Module] = None,
        *,
        output_names: Optional[Sequence[str]] = None,
        device: DeviceLike = None,
        dtype_policy: Any = None,
    ):
        super().__init__()
        if module is not None and not isinstance(module, nn.Module):
            raise TypeError(
                "`module` must be a torch.nn.Module (or None for a subclass that"
                f" writes its own forward). Received: module of type {type(module).__name__}."
            )
        self.module = module
        self.output_names = list(output_names) if output_names is not None else None
        self._explicit_device = torch.device(device) if device is not None else None
        self.dtype_policy = dtype_policy
        self._reset_training_state()
        # An override written before Keras 3.3 has no `training` parameter.
        parameters = inspect.signature(self.compute_loss).parameters.values()
        self._compute_loss_takes_training = any(
            p.name == "training" or p.kind == p.VAR_KEYWORD for p in parameters
        )
        if module is not None:
            module.to(self.device)

    def _reset_training_state(self) -> None:
        self.compiled = False
        self.optimizer = None
        self.stop_training = False
        self.stop_evaluating = False
        self.stop_predicting = False
        self.history = None
        self._compile_loss: Optional[CompileLoss] = None
        self._compile_metrics: Optional[CompileMetrics] = None
        self._compile_config: dict = {}
        self._loss_tracker = None
        self._has_trainable_weights = True
        self._added_metrics: dict = {}
        self._callable_losses: list = []
        self._callable_metrics: list = []
        self._forward_losses: list = []
        self._track_added_metrics = False
        self._signature: Optional[ForwardSignature] = None
        self._example_inputs = None
        # The first forward pass decides the input casts and records the
        # outputs' structure (for metrics_names before any fit).
        self._forward_checked = False
        self._bool_input_dtype: Optional[torch.dtype] = None
        self._output_structure = None
        self._on_compiled_built = None  # see _when_compiled_built
        self.steps_per_execution = 1
        self.jit_compile = False
        self.run_eagerly = False
        self._autocast_dtype: Optional[torch.dtype] = None
        self._input_dtype: Optional[torch.dtype] = None
        self._loss_scaler = None
        self._jit_forward = None
        self._capture: Optional[capture.CapturedSteps] = None  # jit_compile="cuda_graph"

    # ----------------------------------------------------------------- device
    @property
    def device(self) -> torch.device:
        """Where the model runs: the explicit device, else the default one."""
        return self._explicit_device if self._explicit_device is not None else default_device()

    def to(self, *args, **kwargs):
        device, _, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        if device is not None:
            self._explicit_device = device
        return super().to(*args, **kwargs)

    def cuda(self, device=None):
        self._explicit_device = torch.device(
            "cuda", device if device is not None else torch.cuda.current_device()
        )
        return super().cuda(device)

    def cpu(self):
        self._explicit_device = torch.device("cpu")
        return super().cpu()

    def _place(self) -> None:
        """Moves the parameters to `self.device` (a subclass builds its layers after
        __init__), with the metric states and optimizer state that go with them."""
        device = self.device
        for tensor in self.parameters():
            if tensor.device != device:
                super().to(device)
                self._move_training_state(device)
            break

    def _move_training_state(self, device: torch.device) -> None:
        for metric in self.metrics:
            metric.to(device)
        if self.optimizer is not None:
            for state in self.optimizer.state.values():
                for key, value in state.items():
                    if isinstance(value, torch.Tensor) and value.device != device:
                        state[key] = value.to(device)

    # --------------------------------------------------------------- forward
    def forward(self, *args, **kwargs):
        if self.module is None:
            raise NotImplementedError(
                "A torchfit.Model built without a module must define forward()."
                " Pass the module to train: torchfit.Model(my_module)."
            )
        return self.module(*args, **kwargs)

    @property
    def forward_module(self) -> nn.Module:
        """The module whose `forward` a call runs: the wrapped `module`, or the model
        itself when a subclass writes `forward` (or wraps no module)."""
        if type(self).forward is Model.forward and self.module is not None:
            return self.module
        return self

    @property
    def example_inputs(self) -> Optional[tuple]:
        """`(args, kwargs)` of the first call, as `forward` received them (kept for
        `summary` shapes and TensorBoard's graph); `None` before the first call."""
        return self._example_inputs

    def __call__(self, *args, **kwargs):
        """Runs forward, routing a list input to `forward(*xs)` and a dict to `forward(**xs)`.

        `training=True`/`False` runs this call in train/eval mode (restored
        after), whether or not `forward` takes `training`, as Keras's
        `model(x, training=False)` runs in inference mode.
        """
        training = kwargs.get("training")
        # One attribute read on the hot path: fit's and evaluate's own steps
        # already run in the mode they ask for.
        if training is not None and self.training != training:
            with run_in_mode(self, bool(training)):
                return self._call(args, kwargs)
        return self._call(args, kwargs)

    def _call(self, args: tuple, kwargs: dict):
        args, kwargs = self.route_inputs(args, kwargs)
        if not self._forward_checked:
            return self._first_call(args, kwargs)
        if self._input_dtype is not None:
            args, kwargs = cast_floats((args, kwargs), self._input_dtype)
        if self._bool_input_dtype is not None:
            args = self._cast_bool_input(args)
        return self._run_forward(args, kwargs)

    def _first_call(self, args: tuple, kwargs: dict):
        """The first forward pass: decides the input casts, records the example
        inputs and the outputs' structure, and retells a failure with the inputs."""
        parameter = next(self.weights_module.parameters(), None)
        parameter_dtype = parameter.dtype if parameter is not None else None
        # Keras casts inputs to the compute dtype: a bool x meets float weights.
        self._bool_input_dtype = bool_input_cast(args, kwargs, parameter_dtype)
        if self._bool_input_dtype is not None:
            args = self._cast_bool_input(args)
        if self._input_dtype is not None:
            args, kwargs = cast_floats((args, kwargs), self._input_dtype)
        if self._example_inputs is None:
            # Kept for summary() shapes and TensorBoard's graph.
            self._example_inputs = (args, kwargs)
            record_output_shapes(self)
        try:
            outputs = self._run_forward(args, kwargs)
        except Exception as err:
            names = self._signature.names
            described = describe_forward_error(err, args, kwargs, names, parameter_dtype)
            if described is None:
                raise
            raise described from err
        self._forward_checked = True
        self._output_structure = outputs_structure(outputs, self.output_names)
        return outputs

    def _cast_bool_input(self, args: tuple) -> tuple:
        if len(args) == 1 and isinstance(args[0], torch.Tensor) and args[0].dtype == torch.bool:
            return (args[0].to(self._bool_input_dtype),)
        return args

    def _run_forward(self, args: tuple, kwargs: dict):
        with layers.collect() as collection, self._autocast():
            if self._jit_forward is not None:
                outputs = self._call_compiled(args, kwargs)
            else:
                outputs = self.distribution.call(self, *args, **kwargs)
        # A plain attribute (a list): past nn.Module.__setattr__'s checks (~1.3 us a call).
        self.__dict__["_forward_losses"] = collection.losses
        if self._track_added_metrics and (collection.metrics or self._callable_metrics):
            added = collection.metrics + [
                (name, fn(), agg) for fn, name, agg in self._callable_metrics
            ]
            self._update_added_metrics(added)
        return outputs

    def _autocast(self):
        if self._autocast_dtype is None:  # no mixed policy: the no-op context, at once
            return autocast(None, None)
        # A CUDA graph capture keeps no cast-weight cache (torch's rule for graphs).
        capturing = self._capture is not None and self._capture.capturing_now
        return autocast(self.device, self._autocast_dtype, cache_enabled=not capturing)

    def _make_jit_forward(self):
        # Through nn.Module.__call__ (not Model's), so the module's hooks run as in eager.
        call = functools.partial(nn.Module.__call__, self.forward_module)
        return make_jit_forward(self.distribution.jit_target(call))

    def _set_jit_forward(self, forward) -> None:
        # A plain attribute: compiled, DDP's wrapper is an nn.Module, and as a
        # submodule it would make the model contain itself.
        object.__setattr__(self, "_jit_forward", forward)

    def use_distribution(self, distribution: SingleProcess) -> None:
        """Runs this model under `distribution` from now on (`torchfit.distribution` calls
        it): its forward passes, metric reductions, stops and file writes."""
        self.distribution = distribution
        if self._jit_forward is not None:  # compiled for the previous distribution's call
            self._set_jit_forward(self._make_jit_forward())

    def _call_compiled(self, args: tuple, kwargs: dict):
        try:
            return self._jit_forward(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - any compiler failure falls back
            # torch.compile fails lazily, at the first call (or a recompile):
            # fall back to eager once, loudly, rather than failing the fit.
            warnings.warn(
                f"jit_compile=True: torch.compile failed ({type(err).__name__}: {err})."
                " Running the model eagerly instead.",
                stacklevel=3,
            )
            self._jit_forward = None
            return self.distribution.call(self, *args, **kwargs)

    @property
    def forward_signature(self) -> ForwardSignature:
        """What the module's `forward` takes (seen through a `torch.compile` wrapper):
        its parameter names, the keys of a typed `**kwargs`, whether it takes `training`."""
        if self._signature is None:
            self._signature = ForwardSignature(self.forward_module)
        return self._signature

    def route_inputs(self, args: tuple, kwargs: dict) -> tuple:
        """How a call's inputs reach `forward`: `(args, kwargs)` with a single list
        input spread over `forward`'s parameters and a dict passed by name."""
        return route_inputs(self.forward_signature, args, kwargs)

    # --------------------------------------------------------------- compile
    def compile(
        self,
        optimizer: Any = "rmsprop",
        loss: Any = None,
        loss_weights: Any = None,
        metrics: Any = None,
        weighted_metrics: Any = None,
        run_eagerly: bool = False,
        steps_per_execution: int = 1,
        jit_compile: Union[bool, str] = "auto",
        auto_scale_loss: bool = True,
    ) -> None:
        """Configures the model for training, with Keras 3's arguments.

        Args:
            optimizer: A string id (`"rmsprop"`, `"adam"`, ...), a torchfit
                optimizer, a `torch.optim.Optimizer` instance or class.
                Defaults to `"rmsprop"`.
            loss: A string id, a `torchfit.losses.Loss`, a `fn(y_true, y_pred)`,
                a torch loss module (called in torch order), or a list/dict of
                those for several outputs. Defaults to `None`: the model's
                `add_loss` losses alone, or a custom `train_step`.
            loss_weights: Per-output weights of the total loss (list or dict).
            metrics: Metrics (string ids, objects, torchmetrics metrics) as a
                list, a list of lists or a dict by output name.
            weighted_metrics: Like `metrics`, weighted by the sample weights.
            run_eagerly: `True` keeps the model eager even with `jit_compile=True`
                (with Keras's warning); torchfit is eager unless `jit_compile=True`.
            steps_per_execution: Steps run per batch-hook call. Defaults to 1.
            jit_compile: `True` compiles the module with `torch.compile`;
                `"auto"` means off. `"cuda_graph"` (experimental, never run on
                a GPU yet) also replays whole steps from CUDA graphs where it
                can (see `torchfit.models.capture`). Defaults to `"auto"`.
            auto_scale_loss: Scale the loss under `mixed_float16`. Defaults
                to `True`.
        """
        steps_per_execution = check_count(
            "steps_per_execution", steps_per_execution, allow_none=False
        )
        self._place()
        previous_optimizer = self._apply_trainable_flags()  # Keras: trainable counts from here
        self.optimizer = self._resolve_optimizer(optimizer)
        self._fit_optimizer_to_trainable(previous_optimizer)
        self._has_trainable_weights = any(p.requires_grad for p in self.parameters())
        self._compile_loss = (
            CompileLoss(loss, loss_weights, self.output_names) if loss is not None else None
        )
        if loss is None and loss_weights is not None:
            raise ValueError("`loss_weights` was given without a `loss` to weight.")
        has_metrics = metrics is not None or weighted_metrics is not None
        self._compile_metrics = (
            CompileMetrics(metrics, weighted_metrics, self.output_names) if has_metrics else None
        )
        if self._compile_metrics is not None:
            self._compile_metrics.unbuilt.to(self.device)
        self._loss_tracker = metrics_module.Mean(name="loss").to(self.device)
        self._added_metrics = {}
        self.steps_per_execution = steps_per_execution
        self.auto_scale_loss = auto_scale_loss
        self._apply_dtype_policy(auto_scale_loss)
        _check_jit_compile(jit_compile)
        self._compile_jit(jit_compile, run_eagerly)
        graphed = jit_compile == capture.CUDA_GRAPH and not self.run_eagerly
        self._capture = self._make_capture() if graphed else None
        self._compile_config = {
            "optimizer": optimizer,
            "loss": loss,
            "loss_weights": loss_weights,
            "metrics": metrics,
            "weighted_metrics": weighted_metrics,
            "run_eagerly": run_eagerly,
            "steps_per_execution": steps_per_execution,
            "jit_compile": jit_compile,
            "auto_scale_loss": auto_scale_loss,
        }
        self.compiled = True

    def _make_capture(self) -> capture.CapturedSteps:
        warnings.warn(
            "jit_compile='cuda_graph' is experimental and has never run on a GPU: whole"
            " steps are replayed from CUDA graphs where the planner allows, each new graph"
            " checked once against an eager step, with a warning and the torch.compile path"
            " where not.",
            stacklevel=3,
        )
        defaults = {step: getattr(Model, f"{step}_step") for step in capture.STEPS}
        return capture.CapturedSteps(self, defaults)

    def _apply_dtype_policy(self, auto_scale_loss: bool) -> None:
        policy = mixed_precision.get_policy(self.dtype_policy)
        self._policy = policy
        if not policy.is_mixed and policy.variable_dtype != "float32":
            self.weights_module.to(policy.torch_compute_dtype)
        self._autocast_dtype = policy.torch_compute_dtype if policy.is_mixed else None
        # A pure bfloat16/float64 policy casts the weights, so float inputs must follow.
        self._input_dtype = (
            policy.torch_compute_dtype
            if not policy.is_mixed and policy.compute_dtype != "float32"
            else None
        )
        # A LossScaleOptimizer scales the loss itself: a GradScaler would scale it twice.
        scales_itself = isinstance(self.optimizer, optimizers_module.LossScaleOptimizer)
        self._loss_scaler = (
            mixed_precision.make_loss_scaler(policy, self.device)
            if auto_scale_loss and not scales_itself
            else None
        )

    def _resolve_optimizer(self, optimizer: Any) -> Optional[torch.optim.Optimizer]:
        """The optimizer instance for `compile(optimizer=...)`, built on the trainable
        parameters. With none (a frozen or weightless model) a torchfit optimizer stays
        unbuilt, and a `torch.optim` class, which cannot be built empty, gives `None`."""
        parameters = [p for p in self.parameters() if p.requires_grad]
        if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
            if issubclass(optimizer, optimizers_module.Optimizer):
                optimizer = optimizer()
            else:
                return optimizer(parameters) if parameters else None
        if not isinstance(optimizer, torch.optim.Optimizer):
            optimizer = optimizers_module.get(optimizer)
            if isinstance(optimizer, type):
                return optimizer(parameters) if parameters else None
        self._check_optimizer_parameters(optimizer)
        unbuilt = isinstance(optimizer, optimizers_module.Optimizer) and not optimizer.built
        if unbuilt and parameters:
            # Names let `exclude_from_weight_decay(var_names=...)` match parameters.
            optimizer.build(
                (name, p) for name, p in self.weights_module.named_parameters() if p.requires_grad
            )
        return optimizer

    def _check_optimizer_parameters(self, optimizer: torch.optim.Optimizer) -> None:
        """Refuses an optimizer already built over parameters of another model:
        this model's fit would report losses and train nothing."""
        own = {id(p) for p in self.parameters()}
        foreign = sum(
            1 for group in optimizer.param_groups for p in group["params"] if id(p) not in own
        )
        if foreign:
            name = getattr(optimizer, "name", None) or type(optimizer).__name__
            raise ValueError(
                f"The optimizer '{name}' ({type(optimizer).__name__}) is already bound to"
                f" {foreign} parameters that are not in this model ({self._describe_model()})."
                " An optimizer steps the parameters it was built with, so this model would"
                " not train. Pass a new optimizer (or a string id such as 'adam') to"
                " compile(), or build it on this model's parameters."
            )

    def _describe_model(self) -> str:
        if self.module is not None:
            return f"{type(self).__name__} of {type(self.module).__name__}"
        return type(self).__name__

    def _assert_compiled(self, method: str) -> None:
        if not self.compiled:
            raise ValueError(f"You must call `compile()` before calling `{method}()`.")

    # ---------------------------------------------------------------- losses
    @property
    def losses(self) -> list:
        """Losses added by the last forward pass, then `add_loss` callables."""
        return list(self._forward_losses) + [fn() for fn in self._callable_losses]

    def add_loss(self, loss: Any) -> None:
        """Adds a loss: a zero-argument callable evaluated at every step, or a
        tensor that joins the current forward pass's losses."""
        if callable(loss) and not isinstance(loss, torch.Tensor):
            self._callable_losses.append(loss)
        else:
            layers.add_loss(loss)

    def add_metric(self, value: Any, name: str, aggregation: str = "mean") -> None:
        """Logs `value` under `name`. A zero-argument callable is evaluated at
        every step; a tensor joins the current forward pass."""
        if callable(value) and not isinstance(value, torch.Tensor):
            layers.check_added_metric(name, aggregation)
            self._callable_metrics.append((value, name, aggregation))
        else:
            layers.add_metric(value, name=name, aggregation=aggregation)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss plus every added loss, as one scalar tensor.

        Compiled without a loss, the model's own loss (the `loss` tensor of a
        dict, dataclass or namedtuple output, as Hugging Face models return)
        takes the compiled loss's place.

        An override may leave out `training` (the signature before Keras 3.3):
        the default steps read the override's signature and call it without.

        Raises:
            ValueError: When there is no compiled loss and nothing was added.
        """
        del x, training
        total = None
        if self._compile_loss is not None:
            if not self._compile_loss.built:
                self._build_compiled(y, y_pred)
            with self._autocast():
                total = self._compile_loss(y, y_pred, sample_weight)
        else:
            total = own_loss(y_pred)  # a Hugging Face model's `loss`, computed from `labels`
        for added in self.losses:
            added = layers.as_loss_tensor(added, self.device)
            total = added if total is None else total + added
        if total is None:
            raise ValueError(
                "No loss to compute. Provide a `loss` argument in `compile()`, or"
                " add one from the model with `add_loss`. A model's own loss is the"
                " `loss` entry of its output (a Hugging Face model returns one when"
                " `labels` are among its inputs)."
            )
        if total.dim():
            # An empty batch's loss is empty, as in Keras: sum it to a zero that
            # still backpropagates (a DDP rank with no samples must join the step).
            total = total.sum()
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Updates the compiled metrics and returns the logs of every metric.

        The logs are computed lazily: reading them copies them from the device.
        """
        del x
        if self._compile_metrics is not None:
            if not self._compile_metrics.built:
                self._build_compiled(y, y_pred)
            self._compile_metrics.update_state(y, y_pred, sample_weight)
        return MetricLogs(self.get_metrics_result)

    def _build_compiled(self, y, y_pred) -> None:
        """Builds the compiled loss and metrics from the first real batch, both at once.

        Then runs the callback of `_when_compiled_built` (the loops' target
        check, `check_targets_once_built`), before any loss or metric sees the
        batch: the data checks its host targets against both, so no bad label
        reaches a kernel.
        """
        for compiled in (self._compile_loss, self._compile_metrics):
            if compiled is not None and not compiled.built:
                compiled.build(y, y_pred, self.device)
        callback, self._on_compiled_built = self._on_compiled_built, None
        if callback is not None:
            callback()

    def _when_compiled_built(self, callback) -> None:
        """Runs `callback()` once the compiled loss and metrics are built: now if they are,
        else right after `_build_compiled` (a later call replaces an earlier callback)."""
        pending = [
            c for c in (self._compile_loss, self._compile_metrics) if c is not None and not c.built
        ]
        if pending:
            self._on_compiled_built = callback
        else:
            self._on_compiled_built = None
            callback()

    def check_targets_once_built(self, data) -> None:
        """Has `data` (an `EpochIterator`) check its host targets against the compiled
        loss and metrics as soon as the first step builds them, before any loss sees
        a batch (now, when they are built already)."""
        self._when_compiled_built(
            lambda: data.check_targets(self._compile_loss, self._compile_metrics)
        )

    def build_compiled_from(self, batch) -> None:
        """Builds the compiled loss and metrics from one batch, without training.

        Only for restoring metric states before any step (`BackupAndRestore`
        on resume): fit, evaluate and the steps build them from their first
        real batch, so no call the user did not write reaches the module. Runs
        a forward pass in eval mode without gradients, so no weights or
        running statistics change.
        """
        needs_loss = self._compile_loss is not None and not self._compile_loss.built
        needs_metrics = self._compile_metrics is not None and not self._compile_metrics.built
        if not (needs_loss or needs_metrics):
            return
        x, y, _ = unpack_x_y_sample_weight(batch)
        # This forward pass is not a step: its add_metric values must not count.
        with self.tracking_added_metrics(False), torch.no_grad():
            y_pred = self(x, training=False)
        self._build_compiled(y, y_pred)

    # ----------------------------------------------------------------- steps
    def train_step(self, data):
        """One training step on one batch; returns the logs. Override freely."""
        if self._capture is not None and self._capture.routes("train"):
            return self._capture.run("train", data)
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=True)
        loss = self._compute_loss(x, y, y_pred, sample_weight, training=True)
        self._track_loss(loss.detach(), tree.batch_size_of(x))
        if self._has_trainable_weights:  # else fit warned once: nothing to step
            self.optimizer.zero_grad(set_to_none=True)
            if loss.requires_grad:
                self._backward_and_step(loss)
            else:
                warnings.warn(
                    "The loss does not depend on any trainable weight: nothing was trained."
                    " Check that the outputs are not detached from the model's parameters.",
                    stacklevel=2,
                )
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def _compute_loss(self, x, y, y_pred, sample_weight, training: bool):
        """Calls `compute_loss`, with `training` only if the override takes it (as Keras)."""
        if self._compute_loss_takes_training:
            return self.compute_loss(x, y, y_pred, sample_weight, training=training)
        return self.compute_loss(x, y, y_pred, sample_weight)

    def _track_loss(self, loss: torch.Tensor, batch_size: int) -> None:
        # An empty batch (a rank's share of a tiny last global batch) has a NaN
        # mean loss; weighting it by 0 would still make the running mean NaN.
        if batch_size:
            self._loss_tracker.update_state(loss, sample_weight=batch_size)

    def _backward_and_step(self, loss: torch.Tensor) -> None:
        """Backpropagates `loss` and applies the optimizer, scaling the loss as Keras does:
        by `optimizer.scale_loss` (a `loss_scale_factor`, a `LossScaleOptimizer`, which
        unscale the gradients in their update), then under mixed_float16 by the model's
        `GradScaler` (none when the optimizer is a `LossScaleOptimizer`)."""
        weight = self.distribution.loss_weight
        if weight != 1.0:  # this process's share of a ragged last global batch
            loss = loss * weight
        scale_loss = getattr(self.optimizer, "scale_loss", None)  # torch.optim has none
        if scale_loss is not None:
            loss = scale_loss(loss)
        scaler = self._loss_scaler
        if scaler is None:
            loss.backward()
            self.optimizer.step()
            return
        scaler.scale(loss).backward()
        scaler.step(self.optimizer)
        scaler.update()

    def test_step(self, data):
        """One evaluation step on one batch; returns the logs. Override freely."""
        if self._capture is not None and self._capture.routes("test"):
            return self._capture.run("test", data)
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        loss = self._compute_loss(x, y, y_pred, sample_weight, training=False)
        self._track_loss(loss, tree.batch_size_of(x))
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def predict_step(self, data):
        """The model's outputs for one batch. Override freely."""
        if self._capture is not None and self._capture.routes("predict"):
            return self._capture.run("predict", data)
        x, _, _ = unpack_x_y_sample_weight(data)
        return self(x, training=False)

    # --------------------------------------------------------------- weights
    @property
    def weights_module(self) -> nn.Module:
        """The module whose `state_dict` holds the weights: the wrapped `module` (the
        module `torch.compile` wrapped, for a compiled one: no `_orig_mod.` in the
        names), or the model itself when a subclass writes its own `forward`."""
        return uncompiled(self.module) if self.module is not None else self

    def get_weights(self) -> list:
        """Copies of every parameter and buffer, as NumPy arrays.

        Copies, as in Keras: a snapshot never moves when training goes on, and
        writing into it never changes the model (on the CPU, `.numpy()` alone
        would share the parameters' memory).
        """
        return [
            np.array(t.detach().cpu().numpy(), copy=True)
            for t in self.weights_module.state_dict().values()
        ]

    def set_weights(self, weights: Sequence[Any]) -> None:
        """Sets every parameter and buffer from a list in `get_weights()` order."""
        state = self.weights_module.state_dict()
        if len(weights) != len(state):
            raise ValueError(
                f"`set_weights` expected a list of {len(state)} arrays, received {len(weights)}."
            )
        with torch.no_grad():
            for (name, target), value in zip(state.items(), weights):
                value = torch.as_tensor(np.asarray(value))
                if tuple(value.shape) != tuple(target.shape):
                    raise ValueError(
                        f"Weight `{name}` has shape {tuple(target.shape)}, received an"
                        f" array of shape {tuple(value.shape)}."
                    )
                target.copy_(value)

    def save_weights(self, filepath, overwrite: bool = True) -> None:
        """Saves the wrapped module's `state_dict` (see `saving.save_weights`).

        Under torch.distributed every rank calls it; rank 0 writes, all wait.
        """
        distribution = self.distribution
        state_dict = distribution.state_dict_to_write(self.weights_module)
        distribution.write_once(saving.save_weights, self, filepath, overwrite, state_dict)

    load_weights = saving.load_weights

    def save(self, filepath, overwrite: bool = True) -> None:
        """Saves the whole model in one file (see `serialization.save_model`).

        Under torch.distributed every rank calls it; rank 0 writes, all wait.

        Raises:
            ValueError: For a model sharded with FSDP2 (`ModelParallel`): use
                `save_weights`, or `torchfit.distribution.save_sharded`.
        """
        distribution_lib.write_once(serialization.save_model, self, filepath, overwrite)

    def summary(
        self,
        line_length=None,
        positions=None,
        print_fn=None,
        expand_nested=False,
        show_trainable=False,
        layer_range=None,
    ) -> None:
        """Prints the layers, their output shapes when known, and parameter counts."""
        print_summary(
            self,
            line_length=line_length,
            positions=positions,
            print_fn=print_fn,
            expand_nested=expand_nested,
            show_trainable=show_trainable,
            layer_range=layer_range,
        )
