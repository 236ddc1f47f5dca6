"""The rest of Keras's `Model` surface that ported scripts reach for.

Owns the weight lists (`weights`, `trainable_weights`, `non_trainable_weights` and
their `*_variables` twins), `count_params`, `layers` and `get_layer`, `get_config`
and `from_config`, `get_compile_config` and `compile_from_config`, `export`, and
the `run_eagerly` and `jit_compile` attributes. What is trainable belongs to
`utils/trainable.py` and `models/freezing.py`; describing modules and compile
arguments as data to `models/serialization.py`; the export formats to
`models/export.py`.

The weights are the torch tensors themselves (parameters and buffers, not
copies), so a loop written as in Keras's "training loop from scratch" guide runs:
`optimizer.apply([p.grad for p in model.trainable_weights], model.trainable_weights)`.
"""

import inspect
import warnings
from typing import Any, Optional

from torch import nn

from torchfit.models import export as export_lib
from torchfit.models import serialization
from torchfit.utils import trainable as trainable_lib

__all__ = ["KerasSurface"]


class _KerasAttribute:
    """A read-only attribute of the model that gives way to an attribute of the same
    name a subclass sets itself (`self.layers = nn.ModuleList(...)`, `self.weights = [...]`):
    a submodule, parameter or buffer by that name is returned instead, and a plain
    value lands in the instance's `__dict__`, which Python reads first."""

    def __init__(self, compute):
        self._compute = compute
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner, name: str) -> None:
        self._name = name

    def __get__(self, model, owner=None):
        if model is None:
            return self
        for store in ("_modules", "_parameters", "_buffers"):
            own = model.__dict__.get(store)
            if own is not None and self._name in own:
                return own[self._name]
        return self._compute(model)


def _unique(tensors) -> list:
    seen, unique = set(), []
    for tensor in tensors:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            unique.append(tensor)
    return unique


def _weights(model) -> list:
    """Every parameter and buffer, in `get_weights()` order (the module's `state_dict`):
    the tensors themselves. A weight tied under two names appears under both, as in
    `state_dict`."""
    return list(model.weights_module.state_dict(keep_vars=True).values())


def _trainable_weights(model) -> list:
    """The weights the optimizer trains (`requires_grad`, and no frozen module above
    them), each once, in `weights` order."""
    trainable = {id(p) for p in trainable_lib.trainable_parameters(model)}
    return _unique(t for t in _weights(model) if id(t) in trainable)


def _non_trainable_weights(model) -> list:
    """The other weights, each once: frozen parameters and buffers (BatchNorm's running
    statistics and its `num_batches_tracked` counter)."""
    trainable = {id(p) for p in trainable_lib.trainable_parameters(model)}
    return _unique(t for t in _weights(model) if id(t) not in trainable)


def _named_layers(model) -> list:
    """`(name, module)` for each direct submodule of the wrapped module (or of a
    subclass that writes `forward`); a wrapped module with none is the only layer."""
    root = model.weights_module
    children = list(root.named_children())
    if not children and root is not model:
        return [("module", root)]
    return children


def _layers(model) -> list:
    """The direct submodules, in order: those of the wrapped module (an `nn.Sequential`'s
    layers), or of a subclass that writes `forward`; a wrapped module with none is its
    own only layer."""
    return [module for _, module in _named_layers(model)]


def _bind_arguments(cls: type, args: list, kwargs: dict) -> dict:
    """Recorded constructor arguments by parameter name."""
    bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
    kinds = inspect.Parameter
    parameters = list(inspect.signature(cls.__init__).parameters.values())
    config = {}
    for parameter in parameters[1:]:
        if parameter.name not in bound.arguments:
            continue
        value = bound.arguments[parameter.name]
        if parameter.kind == kinds.VAR_POSITIONAL:
            if value:
                raise serialization.NotRebuildable(f"__init__ takes *{parameter.name}")
        elif parameter.kind == kinds.VAR_KEYWORD:
            config.update(value)
        else:
            config[parameter.name] = value
    return config


class KerasSurface:
    """Keras's `Model` attributes and queries, mixed into `torchfit.Model`."""

    weights = _KerasAttribute(_weights)
    variables = _KerasAttribute(_weights)
    trainable_weights = _KerasAttribute(_trainable_weights)
    trainable_variables = _KerasAttribute(_trainable_weights)
    non_trainable_weights = _KerasAttribute(_non_trainable_weights)
    non_trainable_variables = _KerasAttribute(_non_trainable_weights)
    layers = _KerasAttribute(_layers)

    @property
    def metrics_variables(self) -> list:
        """The state tensors of every metric in `model.metrics`."""
        return [variable for metric in self.metrics for variable in metric.variables]

    def count_params(self) -> int:
        """The number of scalars in the weights, as `summary()` counts them ("Total params").

        Counts the parameters and the floating-point buffers (BatchNorm's running
        statistics, Keras's non-trainable weights); integer counters such as
        `num_batches_tracked` are left out, as Keras's BatchNormalization has none.

        Raises:
            ValueError: When a lazy module has not seen an input yet.
        """
        if trainable_lib.has_uninitialized_weights(self):
            raise ValueError(
                f"You tried to call `count_params` on {type(self).__name__}, but it isn't"
                " built: a lazy module has not seen an input yet. Call the model on a"
                " batch first (e.g. `model(x[:1])`)."
            )
        trainable, non_trainable = trainable_lib.weight_counts(self)
        return trainable + non_trainable

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> nn.Module:
        """A layer (a direct submodule, see `layers`) by name or by index.

        Names are the attribute names (`"0"`, `"1"`, ... in an `nn.Sequential`); a
        dotted path (`"base.conv1"`) reaches a deeper module.

        Raises:
            ValueError: As Keras: both or neither given, an index past the end, or
                an unknown name (listing the existing ones).
        """
        if index is not None and name is not None:
            raise ValueError(
                f"Provide only a layer name or a layer index. Received: index={index}, name={name}."
            )
        named = _named_layers(self)
        if index is not None:
            if len(named) <= index:
                raise ValueError(
                    f"Was asked to retrieve layer at index {index} but model only has"
                    f" {len(named)} layers."
                )
            return named[index][1]
        if name is not None:
            for layer_name, layer in named:
                if layer_name == name:
                    return layer
            if "." in str(name):
                try:
                    return self.weights_module.get_submodule(name)
                except AttributeError:
                    pass
            raise ValueError(
                f"No such layer: {name}. Existing layers are: {[n for n, _ in named]}."
            )
        raise ValueError("Provide either a layer name or layer index at `get_layer`.")

    # ------------------------------------------------------------------ configs
    def get_config(self) -> dict:
        """The constructor arguments, by name, as plain data (Keras's `get_config`).

        A `torchfit.Model` subclass records the arguments it was built with; a
        module argument made of `torch.nn` layers is described as data. A
        `torchfit.Model` wrapping such a module gives `{"module": ...,
        "output_names": ...}`. `type(model).from_config(config)` builds a new,
        untrained model the same way.

        Raises:
            NotImplementedError: When an argument is not data (a function, a module of
                your own class): override `get_config` and `from_config`, as in Keras.
        """
        try:
            args, kwargs = serialization.recorded_arguments(self)
            config = _bind_arguments(type(self), args, kwargs)
            return {
                key: serialization.describe_argument(value, f"argument `{key}`")
                for key, value in config.items()
            }
        except serialization.NotRebuildable as err:
            raise NotImplementedError(
                f"{type(self).__name__}.get_config() cannot describe the constructor arguments"
                f" as data: {err}. Override `get_config()` to return them as plain data, and"
                " `from_config(cls, config)` to rebuild the model from them."
            ) from err

    @classmethod
    def from_config(cls, config: dict, custom_objects: Optional[dict] = None):
        """Builds a new model from `get_config()`'s output: `cls(**config)`, with
        described modules rebuilt (classes of your own from `custom_objects`)."""
        if not isinstance(config, dict):
            raise TypeError(
                "`config` must be a dict (from `get_config()`)."
                f" Received: a {type(config).__name__}."
            )
        arguments = {
            key: serialization.build_argument(value, custom_objects)
            for key, value in config.items()
        }
        try:
            return cls(**arguments)
        except TypeError as err:
            raise TypeError(
                f"Unable to revive {cls.__name__} from config: {err}. When overriding"
                " `get_config()`, return every argument of the constructor, or define"
                f" `from_config(cls, config)`. Received config keys: {sorted(config)}."
            ) from err

    def get_compile_config(self) -> dict:
        """The arguments of the last `compile`, as plain data (`{}` before any compile).

        Raises:
            ValueError: When an argument cannot be described as data (a lambda, an
                object with no config), naming it.
        """
        if not self.compiled:
            return {}
        config, missing = serialization.serialize_compile_config(self)
        if missing:
            raise ValueError(
                "These compile arguments cannot be described as data: "
                + "; ".join(missing)
                + ". Use named functions, or Loss/Metric subclasses with `get_config()`."
            )
        return config

    def compile_from_config(self, config: dict, custom_objects: Optional[dict] = None) -> None:
        """Compiles the model from `get_compile_config()`'s output (a fresh optimizer).

        A model whose class overrides `compile` is not compiled, with Keras's warning.
        Losses, metrics and optimizers of your own are found in `custom_objects`.
        """
        if _overrides_compile(type(self)):
            warnings.warn(
                "`compile()` was not called as part of model loading because the model's"
                " `compile()` method is custom. All subclassed Models that have"
                " `compile()` overridden should also override `get_compile_config()` and"
                " `compile_from_config(config)`. Alternatively, you can call `compile()`"
                " manually after loading.",
                stacklevel=2,
            )
            return
        if not isinstance(config, dict):
            raise TypeError(
                "`config` must be a dict (from `get_compile_config()`)."
                f" Received: a {type(config).__name__}."
            )
        try:
            arguments = serialization.compile_arguments(config, self, custom_objects)
        except serialization.MissingCustomObject as err:
            raise ValueError(
                f"The compile config names {err}, a class or function of your own: pass it"
                f" as `custom_objects={{{err.name!r}: ...}}`."
            ) from err
        self.compile(**arguments)

    # ------------------------------------------------------------------- export
    def export(
        self,
        filepath,
        format: str = "torch",
        verbose: Optional[bool] = None,
        input_signature: Any = None,
        **kwargs,
    ) -> str:
        """Exports the model's forward pass for inference, loadable without torchfit.

        See `torchfit.models.export.export_model` for the formats (`"torch"`: a
        `torch.export` program; `"onnx"`) and the arguments.
        """
        return export_lib.export_model(
            self,
            filepath,
            format=format,
            verbose=verbose,
            input_signature=input_signature,
            **kwargs,
        )

    # ------------------------------------------------------- eager or compiled
    @property
    def jit_compile(self) -> bool:
        """Whether the forward pass runs under `torch.compile`. Settable: the change
        applies from the next call (eager while `run_eagerly` is `True`)."""
        return self.__dict__.get("_jit_compile", False)

    @jit_compile.setter
    def jit_compile(self, value: bool) -> None:
        self.__dict__["_jit_compile"] = bool(value)
        self._update_jit_forward()

    @property
    def run_eagerly(self) -> bool:
        """Whether the model runs eagerly: `True` keeps `torch.compile` off even with
        `jit_compile=True`, as Keras's `run_eagerly` disables `jit_compile`. Settable."""
        return self.__dict__.get("_run_eagerly", False)

    @run_eagerly.setter
    def run_eagerly(self, value: bool) -> None:
        self.__dict__["_run_eagerly"] = bool(value)
        self._update_jit_forward()

    def _update_jit_forward(self) -> None:
        wanted = self.jit_compile and not self.run_eagerly
        if wanted != (self.__dict__.get("_jit_forward") is not None):
            self._set_jit_forward(self._make_jit_forward() if wanted else None)

    def _compile_jit(self, jit_compile, run_eagerly: bool) -> None:
        """`compile`'s `jit_compile` and `run_eagerly`, by Keras's rules ("auto" is off
        on torch, `"cuda_graph"` compiles too, and `run_eagerly=True` wins over both, with a
        warning)."""
        compiled = jit_compile is True or jit_compile == "cuda_graph"
        if compiled and run_eagerly:
            warnings.warn(
                "If `run_eagerly` is True, then `jit_compile` cannot also be True."
                " Disabling `jit_compile`.",
                stacklevel=3,
            )
        self.__dict__["_run_eagerly"] = bool(run_eagerly)
        self.__dict__["_jit_compile"] = compiled and not run_eagerly
        # A fresh compiled forward at every compile (the distribution may have changed).
        self._set_jit_forward(self._make_jit_forward() if self.jit_compile else None)


def _overrides_compile(cls: type) -> bool:
    """Whether a class above torchfit's own defines `compile`."""
    owner = next(c for c in cls.__mro__ if "compile" in c.__dict__)
    return not owner.__module__.startswith("torchfit.")
