"""Whole-model files: what `model.save` writes and how `load_model` rebuilds it.

Owns the payload of `model.save` (weights, optimizer state, compile config,
counters and a description of how to rebuild the module) and `load_model`.
Rebuilding works without unpickling code: a `torchfit.Model` subclass is
found by its import path and called with the constructor arguments it
recorded (`Rebuildable`), and a module made only of `torch.nn` layers is
described by class names and constructor arguments read back from the layers.
`torchfit.Model` derives from `Rebuildable` and declares itself
(`saved_as="torchfit.Model"`), so this module never imports it. Writing files
atomically and reading them with `weights_only=True` belong to
`utils/torch_files.py`; the weights-only files to `saving.py`.
"""

import functools
import importlib
import inspect
import os
import sys
import warnings
from collections import OrderedDict
from typing import Any, Optional

import torch
from torch import nn

from torchfit import losses as losses_module
from torchfit import metrics as metrics_module
from torchfit import optimizers as optimizers_module
from torchfit.models import file_checks
from torchfit.models.file_checks import MalformedEntry, short
from torchfit.utils.torch_files import cpu_state_dict, load_state, read_torch_file, write_torch_file
from torchfit.utils.uncompiled import uncompiled, uncompiled_names

__all__ = [
    "FORMAT",
    "VERSION",
    "Rebuildable",
    "build_module",
    "describe_module",
    "load_model",
    "model_payload",
    "save_model",
]

FORMAT = "torchfit.model"
VERSION = 1

_CONTAINERS = {"Sequential", "ModuleList", "ModuleDict"}
# torch.nn constructor arguments whose layer attribute is a tensor (or None):
# the argument is whether the tensor exists.
_PRESENCE_ARGUMENTS = {"bias"}
# Recurrent layers take *args/**kwargs; these are their arguments, all attributes.
_RECURRENT_ARGUMENTS = {
    "RNN": (
        "input_size",
        "hidden_size",
        "num_layers",
        "nonlinearity",
        "bias",
        "batch_first",
        "dropout",
        "bidirectional",
    ),
    "LSTM": (
        "input_size",
        "hidden_size",
        "num_layers",
        "bias",
        "batch_first",
        "dropout",
        "bidirectional",
        "proj_size",
    ),
    "GRU": (
        "input_size",
        "hidden_size",
        "num_layers",
        "bias",
        "batch_first",
        "dropout",
        "bidirectional",
    ),
}
_MODULE_MARKER = "__torchfit_module__"
MODEL_KIND = "torchfit.Model"  # how a plain torchfit.Model is described: module, output names
_OBJECT_MARKER = "__torchfit_object__"


class NotRebuildable(Exception):
    """Raised internally when a module cannot be described; the message says why."""


# ----------------------------------------------------------------- plain data


def _is_plain(value: Any, tensors: bool = False) -> bool:
    """Whether `value` is data `torch.load(weights_only=True)` reads back as is."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if tensors and isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(item, tensors) for item in value)
    if isinstance(value, dict):
        return all(
            isinstance(key, (str, int)) and _is_plain(item, tensors) for key, item in value.items()
        )
    return False


def record_init_arguments(init):
    """Wraps a `Rebuildable` subclass's `__init__` to record its arguments.

    The outermost constructor call records, so a subclass of a subclass
    keeps its own arguments. Plain data and `nn.Module`s are kept (a module
    is described when the model is saved); anything else makes the model
    not rebuildable from its file, and the reason is kept instead.
    """

    @functools.wraps(init)
    def recording_init(self, *args, **kwargs):
        if "_init_args" not in self.__dict__:
            object.__setattr__(self, "_init_args", _recordable(args, kwargs))
        init(self, *args, **kwargs)

    recording_init._torchfit_records_args = True
    return recording_init


# The classes that declared how they are saved (`saved_as=`), by kind and by class.
_CLASS_OF_KIND: dict = {}
_KIND_OF_CLASS: dict = {}


class Rebuildable:
    """The base of `torchfit.Model`: what `save` describes and `load_model` rebuilds.

    Each subclass's constructor records the arguments it is called with, so
    `save` can describe how to rebuild the instance (its import path and those
    arguments), and `load_model` only ever calls classes derived from this one.
    A class that passes `saved_as=` in its class statement (`torchfit.Model`
    passes `"torchfit.Model"`) is described under that kind instead, by its
    module and output names, and its own constructor records nothing.
    """

    def __init_subclass__(cls, saved_as: Optional[str] = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if saved_as is not None:
            _CLASS_OF_KIND[saved_as] = cls
            _KIND_OF_CLASS[cls] = saved_as
            return
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_torchfit_records_args", False):
            cls.__init__ = record_init_arguments(init)


def _model_class() -> type:
    """The class saved as `MODEL_KIND` (`torchfit.Model`, which declares it)."""
    return _CLASS_OF_KIND[MODEL_KIND]


def _recordable(args: tuple, kwargs: dict) -> Any:
    for value in (*args, *kwargs.values()):
        if not (_is_plain(value) or isinstance(value, nn.Module)):
            return f"a constructor argument is a {type(value).__name__}"
    return list(args), dict(kwargs)


# ------------------------------------------------------ describing a module


def _torch_nn_class(layer: nn.Module) -> Optional[str]:
    cls = type(layer)
    if getattr(nn, cls.__name__, None) is cls and cls.__module__.startswith("torch.nn."):
        return cls.__name__
    return None


def _layer_arguments(layer: nn.Module, class_name: str) -> dict:
    cls = type(layer)
    names = _RECURRENT_ARGUMENTS.get(class_name)
    if names is not None:
        parameters = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in names]
    else:
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        parameters = [
            p
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.kind in kinds and p.name not in ("self", "device", "dtype")
        ]
    arguments = {}
    for parameter in parameters:
        if not hasattr(layer, parameter.name):
            if parameter.default is inspect.Parameter.empty:
                raise NotRebuildable(f"nn.{class_name} keeps no attribute `{parameter.name}`")
            continue
        value = getattr(layer, parameter.name)
        if parameter.name in _PRESENCE_ARGUMENTS and (
            value is None or isinstance(value, torch.Tensor)
        ):
            value = value is not None
        elif isinstance(value, torch.Size):
            value = tuple(value)
        if not _is_plain(value):
            raise NotRebuildable(
                f"nn.{class_name}.{parameter.name} is a {type(value).__name__}, not plain data"
            )
        arguments[parameter.name] = value
    return arguments


def _describe(module: nn.Module, where: str) -> dict:
    if isinstance(module, Rebuildable):
        return _describe_model(module, where)
    class_name = _torch_nn_class(module)
    if class_name is None:
        raise NotRebuildable(f"{where} is a {type(module).__name__}, not a torch.nn layer")
    if class_name in _CONTAINERS:
        children = [
            [name, _describe(child, f"{where}.{name}")] for name, child in module.named_children()
        ]
        return {"kind": "torch.nn", "class": class_name, "children": children}
    return {"kind": "torch.nn", "class": class_name, "args": _layer_arguments(module, class_name)}


def _describe_model(model, where: str) -> dict:
    cls = type(model)
    kind = _KIND_OF_CLASS.get(cls)
    if kind is not None:
        if model.module is None:
            raise NotRebuildable(f"{where} is a torchfit.Model without a module")
        return {
            "kind": kind,
            # A torch.compile'd module is saved as the module it compiled (load_model
            # rebuilds that plain module: compile it again, or use jit_compile=True).
            "module": _describe_checked(uncompiled(model.module), f"{where}.module"),
            "output_names": model.output_names,
        }
    path = f"{cls.__module__}:{cls.__qualname__}"
    if "<locals>" in cls.__qualname__:
        raise NotRebuildable(f"{where} is a {cls.__qualname__}, defined inside a function")
    args, kwargs = recorded_arguments(model, where)
    return {
        "kind": "class",
        "path": path,
        "args": [
            _describe_argument(value, f"{where} argument {i}") for i, value in enumerate(args)
        ],
        "kwargs": {
            key: _describe_argument(value, f"{where} argument {key}")
            for key, value in kwargs.items()
        },
    }


def recorded_arguments(model, where: str = "the model") -> tuple[list, dict]:
    """The arguments a `torchfit.Model` subclass was constructed with, `(args, kwargs)`.

    Raises:
        NotRebuildable: When they were not recorded, or one is not data or a module.
    """
    cls = type(model)
    recorded = model.__dict__.get("_init_args")
    if recorded is None and cls.__init__ is _model_class().__init__:
        # A subclass that only adds methods (forward, train_step) and keeps
        # Model's constructor: its arguments are the module and output names.
        recorded = (
            [model.module] if model.module is not None else [],
            {"output_names": model.output_names},
        )
    if recorded is None:
        raise NotRebuildable(f"{where} ({cls.__name__}) recorded no constructor arguments")
    if isinstance(recorded, str):
        raise NotRebuildable(f"{where} ({cls.__name__}): {recorded}")
    args, kwargs = recorded
    return list(args), dict(kwargs)


def describe_argument(value: Any, where: str) -> Any:
    """A constructor argument as file data: a module is described (see `build_argument`)."""
    return _describe_argument(value, where)


def _describe_argument(value: Any, where: str) -> Any:
    if isinstance(value, nn.Module):
        return {_MODULE_MARKER: _describe_checked(uncompiled(value), where)}
    return value


def _describe_checked(module: nn.Module, where: str) -> dict:
    """`_describe`, with a torch.nn description checked by rebuilding it.

    The check rebuilds on the `meta` device (nothing is allocated): the copy
    must print the same and have the same state_dict names and shapes.
    """
    spec = _describe(module, where)
    if spec["kind"] != "torch.nn":
        return spec
    with torch.device("meta"):
        try:
            rebuilt = build_module(spec, safe_mode=True)
        except Exception as err:  # noqa: BLE001 - any failure means "not rebuildable"
            raise NotRebuildable(f"rebuilding {where} failed: {err}") from err
    if _shapes(module) != _shapes(rebuilt) or repr(rebuilt) != repr(module):
        raise NotRebuildable(f"{where}, rebuilt from its description, differs from the original")
    return spec


def describe_module(module: nn.Module) -> dict:
    """Describes how to rebuild `module` (or a `torchfit.Model`) without pickled code.

    Args:
        module: A `torchfit.Model`, or an `nn.Module` built from `torch.nn` layers.

    Returns:
        A dict of plain data; `build_module` turns it back into a module.

    Raises:
        NotRebuildable: With the reason, when `module` cannot be described.
    """
    return _describe_checked(module, "the model" if _is_model(module) else "the module")


def _is_model(module) -> bool:
    return isinstance(module, Rebuildable)


def _shapes(module: nn.Module) -> dict:
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


# ------------------------------------------------------- rebuilding a module


def build_module(
    spec: dict,
    safe_mode: bool = True,
    origins: Optional[dict] = None,
    custom_objects: Optional[dict] = None,
) -> nn.Module:
    """Builds a new, untrained module from `describe_module`'s output.

    Args:
        spec: The description.
        safe_mode: When `True`, a `torchfit.Model` subclass is only taken
            from modules already imported; `False` lets this import its
            module (which runs that module's code). Defaults to `True`.
        origins: A dict to fill with `id(submodule)` -> the entry of the
            description it came from. Defaults to `None`.
        custom_objects: `{class name: class}` for `torchfit.Model` subclasses,
            used before any import (also in safe mode). Defaults to `None`.

    Raises:
        ValueError: If the description is unknown or its class cannot be
            found; `file_checks.MalformedEntry` (a ValueError) names the
            entry of a description no constructor accepts.

    Example:
    >>> build_module({"kind": "torch.nn", "class": "Linear",
    ...               "args": {"in_features": 2, "out_features": 1}})
    Linear(in_features=2, out_features=1, bias=True)
    >>> build_module({"kind": "torch.nn", "class": "Nope", "args": {}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    torchfit.models.file_checks.MalformedEntry: entry `module.class`: names no torch.nn layer...
    """
    origins = {} if origins is None else origins
    return _build(spec, safe_mode, "module", origins, custom_objects or {})


def _build(spec: Any, safe_mode: bool, where: str, origins: dict, custom: dict) -> nn.Module:
    kind = spec.get("kind") if isinstance(spec, dict) else None
    if kind == "torch.nn":
        module = _build_torch_nn(spec, safe_mode, where, origins, custom)
    elif kind == MODEL_KIND:
        output_names = spec.get("output_names")
        if output_names is not None and not (
            isinstance(output_names, list) and all(isinstance(n, str) for n in output_names)
        ):
            raise MalformedEntry(f"{where}.output_names", "must be a list of strings or None")
        module = _model_class()(
            _build(spec.get("module"), safe_mode, f"{where}.module", origins, custom),
            output_names=output_names,
        )
    elif kind == "class":
        module = _build_class(spec, safe_mode, where, origins, custom)
    elif isinstance(spec, dict):
        raise MalformedEntry(
            f"{where}.kind", f"describes a module in an unknown way ({short(kind)})"
        )
    else:
        raise MalformedEntry(where, f"must describe a module (a dict), not a {type(spec).__name__}")
    origins.setdefault(id(module), where)
    return module


def _build_torch_nn(
    spec: dict, safe_mode: bool, where: str, origins: dict, custom: dict
) -> nn.Module:
    name = spec.get("class")
    cls = getattr(nn, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise MalformedEntry(f"{where}.class", f"names no torch.nn layer ({short(name)})")
    if name in _CONTAINERS:
        children = spec.get("children")
        if not isinstance(children, list) or not all(_is_named_child(c) for c in children):
            raise MalformedEntry(f"{where}.children", "must be a list of [name, description] pairs")
        built = [
            (child_name, _build(child, safe_mode, f"{where}.children[{i}]", origins, custom))
            for i, (child_name, child) in enumerate(children)
        ]
        arguments = (
            ([child for _, child in built],) if name == "ModuleList" else (OrderedDict(built),)
        )
        return _construct(cls, arguments, {}, f"{where}.children", f"nn.{name}")
    args = spec.get("args")
    if not isinstance(args, dict) or not all(isinstance(key, str) for key in args):
        raise MalformedEntry(
            f"{where}.args", f"must be a dict of constructor arguments, not {short(args)}"
        )
    return _construct(cls, (), args, f"{where}.args", f"nn.{name}")


def _build_class(spec: dict, safe_mode: bool, where: str, origins: dict, custom: dict) -> nn.Module:
    path, args, kwargs = spec.get("path"), spec.get("args"), spec.get("kwargs")
    if not isinstance(path, str):
        raise MalformedEntry(f"{where}.path", f"must be a 'module:Class' string, not {short(path)}")
    if not (
        isinstance(args, list)
        and isinstance(kwargs, dict)
        and all(isinstance(k, str) for k in kwargs)
    ):
        raise MalformedEntry(
            f"{where}.args", "must be a list (and `kwargs` a dict) of constructor arguments"
        )
    cls = _import_model_class(path, safe_mode, where, custom)
    args = [
        _build_argument(value, safe_mode, f"{where}.args[{index}]", origins, custom)
        for index, value in enumerate(args)
    ]
    kwargs = {
        key: _build_argument(value, safe_mode, f"{where}.kwargs.{key}", origins, custom)
        for key, value in kwargs.items()
    }
    return _construct(cls, args, kwargs, f"{where}.args", path, in_user_code=True)


def _is_named_child(child: Any) -> bool:
    return isinstance(child, (list, tuple)) and len(child) == 2 and isinstance(child[0], str)


def _construct(
    cls: type, args: Any, kwargs: dict, where: str, name: str, in_user_code: bool = False
) -> nn.Module:
    try:
        return cls(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - whatever a constructor raises on file data
        call = f"{name}(...)" if args else f"{name}(**{short(kwargs, 120)})"
        raise MalformedEntry(
            where, f"{call} failed: {type(err).__name__}: {err}", in_user_code=in_user_code
        ) from err


def build_argument(value: Any, custom_objects: Optional[dict] = None) -> Any:
    """A constructor argument read back from `describe_argument`'s data (safe mode)."""
    return _build_argument(value, True, "config", {}, custom_objects or {})


def _build_argument(value: Any, safe_mode: bool, where: str, origins: dict, custom: dict) -> Any:
    if isinstance(value, dict) and set(value) == {_MODULE_MARKER}:
        return _build(value[_MODULE_MARKER], safe_mode, where, origins, custom)
    return value


def _import_model_class(
    path: str, safe_mode: bool, where: str = "module", custom: Optional[dict] = None
) -> type:
    module_name, _, qualname = path.partition(":")
    custom = custom or {}
    cls = custom.get(qualname, custom.get(qualname.rpartition(".")[2]))
    if cls is None:
        cls = _find_class(path, safe_mode, where)
    if not (isinstance(cls, type) and issubclass(cls, Rebuildable)):
        raise MalformedEntry(
            f"{where}.path",
            f"names the class {short(path)}, which is not a torchfit.Model found in"
            f" {short(module_name)} or `custom_objects`. If the class was renamed or moved,"
            " pass it in `custom_objects={'Name': Class}`, or pass `module=`: a model"
            " built the same way",
        )
    return cls


def _find_class(path: str, safe_mode: bool, where: str) -> Any:
    """The class at `path` ('module:Qual.Name'), importing its module only outside safe mode."""
    module_name, _, qualname = path.partition(":")
    if module_name in sys.modules:
        owner = sys.modules[module_name]
    elif safe_mode:
        raise ValueError(
            f"The model file was saved from the class {path!r}, whose module"
            f" {module_name!r} is not imported. In safe_mode, load_model only uses"
            f" classes already imported: import {module_name!r} first, pass it in"
            f" `custom_objects={{{qualname.rpartition('.')[2]!r}: ...}}`, pass"
            " `module=` (a model built the same way), or pass safe_mode=False to let"
            " load_model import it (that runs the module's code)."
        )
    else:
        try:
            owner = importlib.import_module(module_name)
        except (ImportError, ValueError, TypeError) as err:
            raise MalformedEntry(
                f"{where}.path", f"names a module that cannot be imported ({err})"
            ) from err
    found = owner
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found


# ------------------------------------------------------------ compile config


class MissingCustomObject(Exception):
    """A saved compile entry names a user's class or function that `custom_objects` lacks."""

    def __init__(self, name: str, kind: str):
        super().__init__(f"the {kind} {name!r}")
        self.name = name


def _is_torchfit_own(value: Any, module) -> bool:
    """Whether a loss or metric is torchfit's own (rebuilt without `custom_objects`)."""
    if isinstance(value, (losses_module.Loss, metrics_module.Metric)):
        return type(value).__module__.startswith("torchfit.")
    name = getattr(value, "__name__", None)
    return name is not None and getattr(module, name, None) is value


def _user_object_entry(value: Any, kind: str, module) -> dict:
    """A user's loss or metric, saved under its name, for `custom_objects` at load:
    a `Loss`/`Metric` subclass instance with its config, or a named function or class."""
    if isinstance(value, (losses_module.Loss, metrics_module.Metric)):
        name = type(value).__name__
        config = module.serialize(value)
    elif callable(value) and getattr(value, "__name__", "<lambda>") != "<lambda>":
        name = config = value.__name__
    elif callable(value) and getattr(value, "__name__", None) == "<lambda>":
        raise TypeError(f"the {kind} <lambda> (no name to save it under: use a `def` function)")
    else:
        raise TypeError(f"the {kind} {type(value).__name__} (an object with no config to save)")
    if not _is_plain(config):
        raise TypeError(f"the {kind} {name} (its config is not plain data)")
    return {_OBJECT_MARKER: kind, "value": config, "custom": name}


def _serialize_object(value: Any, kind: str) -> Any:
    """One compile entry (a loss, a metric) as plain data; raises TypeError if it cannot be."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return [_serialize_object(item, kind) for item in value]
    if isinstance(value, dict):
        return {key: _serialize_object(item, kind) for key, item in value.items()}
    if (
        kind == "loss"
        and isinstance(value, nn.Module)
        and not isinstance(value, losses_module.Loss)
    ):
        try:
            return {_OBJECT_MARKER: "torch_loss", "value": describe_module(value)}
        except NotRebuildable as err:
            raise TypeError(f"the torch loss {type(value).__name__} ({err})") from err
    module = losses_module if kind == "loss" else metrics_module
    if not _is_torchfit_own(value, module):
        return _user_object_entry(value, kind, module)
    try:
        config = module.serialize(value)
        module.deserialize(config) if isinstance(config, dict) else module.get(config)
    except (TypeError, ValueError) as err:
        name = getattr(value, "__name__", type(value).__name__)
        raise TypeError(f"the {kind} {name!r}") from err
    if not _is_plain(config):
        raise TypeError(f"the {kind} {type(value).__name__} (its config is not plain data)")
    return {_OBJECT_MARKER: kind, "value": config}


def _deserialize_object(value: Any, custom_objects: Optional[dict] = None) -> Any:
    """A compile entry back from `_serialize_object`'s data.

    Raises:
        MissingCustomObject: For a user's object that `custom_objects` does not name.
    """
    custom_objects = custom_objects or {}
    if isinstance(value, list):
        return [_deserialize_object(item, custom_objects) for item in value]
    if not isinstance(value, dict):
        return value
    kind = value.get(_OBJECT_MARKER)
    if kind is None:
        return {key: _deserialize_object(item, custom_objects) for key, item in value.items()}
    if kind == "torch_loss":
        return build_module(value["value"])
    module = losses_module if kind == "loss" else metrics_module
    config, name = value["value"], value.get("custom")
    if name is not None and name not in custom_objects:
        raise MissingCustomObject(name, kind)
    if isinstance(config, dict):
        return module.deserialize(config, custom_objects)
    return custom_objects[name] if name is not None else config


def _serialize_optimizer(optimizer) -> dict:
    if isinstance(optimizer, optimizers_module.Optimizer):
        config = optimizers_module.serialize(optimizer)
        if not _is_plain(config):
            raise TypeError(f"the optimizer {type(optimizer).__name__} (a callable learning rate)")
        entry = {"torchfit": config}
        if config.get("registered_name") is not None:
            entry["custom"] = config["class_name"]
        return entry
    cls = type(optimizer)
    if not _is_plain(optimizer.defaults):
        raise TypeError(f"the optimizer {cls.__name__}")
    entry = {"torch": cls.__name__, "defaults": dict(optimizer.defaults)}
    if getattr(torch.optim, cls.__name__, None) is not cls:
        entry["custom"] = cls.__name__
    return entry


def _deserialize_optimizer(config: dict, model, custom_objects: Optional[dict] = None):
    custom_objects = custom_objects or {}
    name = config.get("custom")
    if name is not None and name not in custom_objects:
        raise MissingCustomObject(name, "optimizer")
    if "torchfit" in config:
        return optimizers_module.deserialize(config["torchfit"], custom_objects)
    cls = (
        custom_objects[name]
        if name is not None
        else getattr(torch.optim, str(config["torch"]), None)
    )
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ValueError(f"names no torch.optim optimizer ({short(config['torch'])})")
    return cls([p for p in model.parameters() if p.requires_grad], **config["defaults"])


def serialize_compile_config(model) -> tuple[dict, list]:
    """The compile arguments as plain data, and what could not be saved."""
    config = dict(model._compile_config)
    missing = []
    saved = {}
    for key, value in config.items():
        try:
            if key == "optimizer":
                saved[key] = _serialize_optimizer(model.optimizer)
            elif key in ("loss", "metrics", "weighted_metrics"):
                saved[key] = _serialize_object(value, "loss" if key == "loss" else "metric")
            elif _is_plain(value):
                saved[key] = value
            else:
                raise TypeError(f"`{key}` of type {type(value).__name__}")
        except TypeError as err:
            missing.append(f"{key}: {err}")
    return saved, missing


def compile_arguments(config: dict, model, custom_objects: Optional[dict] = None) -> dict:
    """The keyword arguments of `model.compile` from `serialize_compile_config`'s data.

    Raises:
        MissingCustomObject: For a user's object that `custom_objects` does not name.
        MalformedEntry: For an entry nothing can be built from (named).
    """
    arguments = dict(config)
    optimizer = arguments.pop("optimizer", None)
    if optimizer is not None:
        arguments["optimizer"] = _from_entry(
            "compile_config.optimizer", _deserialize_optimizer, optimizer, model, custom_objects
        )
    for key in ("loss", "metrics", "weighted_metrics"):
        if key in arguments:
            arguments[key] = _from_entry(
                f"compile_config.{key}", _deserialize_object, arguments[key], custom_objects
            )
    return arguments


# ----------------------------------------------------------------- the file


def model_payload(model) -> dict:
    """Everything `model.save` writes, as plain data and tensors.

    Keys: `format`, `version`, `weights` (the module's state_dict),
    `optimizer` (`state`, and `config`), `compile_config`, `compile_missing`
    (compile arguments that could not be saved, by name), `counters`
    (`optimizer_iterations`, `epoch`) and `module` (how to rebuild it, or
    `{"kind": "unknown", "reason": ..., "output_names": ...}`).
    """
    weights = cpu_state_dict(model.weights_module)
    try:
        module_spec = describe_module(model)
    except NotRebuildable as err:
        module_spec = {"kind": "unknown", "reason": str(err), "output_names": model.output_names}
    compile_config, missing = ({}, [])
    optimizer_state = None
    if model.compiled:
        compile_config, missing = serialize_compile_config(model)
        state = model.optimizer.state_dict()
        optimizer_state = state if _is_plain(state, tensors=True) else None
    history = model.history
    epochs = getattr(history, "epoch", None) or []
    return {
        "format": FORMAT,
        "version": VERSION,
        "weights": weights,
        "optimizer": optimizer_state,
        "compiled": bool(model.compiled),
        "compile_config": compile_config,
        "compile_missing": missing,
        "counters": {
            "optimizer_iterations": int(getattr(model.optimizer, "iterations", 0) or 0)
            if model.compiled
            else 0,
            "epoch": int(epochs[-1]) + 1 if epochs else 0,
        },
        "module": module_spec,
    }


def _check_payload(payload: Any, filepath: str) -> dict:
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        if not isinstance(payload.get("version"), int) or payload["version"] > VERSION:
            raise ValueError(
                f"`filepath` {filepath!r} was written by a newer torchfit (file version"
                f" {payload.get('version')!r}, this one reads up to {VERSION}). Upgrade torchfit."
            )
        return payload
    if (
        isinstance(payload, dict)
        and payload
        and all(isinstance(v, torch.Tensor) for v in payload.values())
    ):
        raise ValueError(
            f"`filepath` {filepath!r} holds weights only (a state_dict, as `save_weights`"
            " writes), not a whole model. Build the model and call `model.load_weights(path)`."
        )
    raise ValueError(
        f"`filepath` {filepath!r} is not a torchfit model file (written by `model.save`)."
        f" Received a file holding a {type(payload).__name__}."
    )


def _build_model(
    payload: dict, module: Any, safe_mode: bool, filepath: str, custom_objects: Optional[dict]
):
    if module is not None:
        if isinstance(module, Rebuildable):
            return module
        if isinstance(module, nn.Module):
            spec = payload.get("module") or {}
            return _model_class()(module, output_names=spec.get("output_names"))
        raise TypeError(
            "`module` must be an nn.Module (or a torchfit.Model) built like the saved one."
            f" Received: module of type {type(module).__name__}."
        )
    spec = payload["module"]
    if spec.get("kind") == "unknown":
        raise ValueError(
            f"The model in {filepath!r} cannot be rebuilt from the file:"
            f" {short(spec.get('reason'), 300)}."
            " Pass `module=`: a module (or model) built the same way, e.g."
            " `torchfit.models.load_model(path, module=MyNet())`."
        )
    _check_described_module(spec, payload["weights"], safe_mode, filepath, custom_objects)
    model = build_module(spec, safe_mode=safe_mode, custom_objects=custom_objects)
    return model if isinstance(model, Rebuildable) else _model_class()(model)


def _check_described_module(
    spec: dict, weights: dict, safe_mode: bool, filepath: str, custom_objects: Optional[dict]
) -> None:
    """Builds the described module on the meta device and compares it with the stored weights.

    Only a module whose every parameter and buffer matches a stored tensor is
    then built for real, so a forged layer size never takes its memory.
    """
    origins: dict = {}
    described = file_checks.built_on_meta(
        lambda s: build_module(s, safe_mode, origins, custom_objects), spec
    )
    if described is None:
        return  # a subclass whose constructor cannot run on the meta device: built directly
    target = described.weights_module if isinstance(described, Rebuildable) else described
    file_checks.check_fits(target, weights, filepath, origins)


def _from_entry(entry: str, function, *args):
    """`function(*args)` on data read from the file; any failure names the entry."""
    try:
        return function(*args)
    except MissingCustomObject:
        raise
    except Exception as err:  # noqa: BLE001 - whatever the file's data makes fail
        raise MalformedEntry(entry, f"{type(err).__name__}: {err}") from err


def _compile(model, payload: dict, filepath: str, custom_objects: Optional[dict]) -> None:
    missing = payload.get("compile_missing") or []
    if missing:
        warnings.warn(
            f"The model in {filepath!r} was loaded but not compiled: these compile"
            f" arguments could not be saved: {'; '.join(missing)}. Call"
            " `model.compile(...)` again with them.",
            stacklevel=3,
        )
        return
    try:
        arguments = compile_arguments(payload.get("compile_config") or {}, model, custom_objects)
    except MissingCustomObject as err:
        warnings.warn(
            f"The model in {filepath!r} was loaded but not compiled: it was compiled with"
            f" {err}, a class or function of your own. Pass it to load_model as"
            f" `custom_objects={{{err.name!r}: ...}}`, or call `model.compile(...)` again.",
            stacklevel=3,
        )
        return
    arguments.setdefault("optimizer", "rmsprop")
    _from_entry("compile_config", lambda: model.compile(**arguments))
    if payload.get("optimizer") is not None:
        _from_entry("optimizer", model.optimizer.load_state_dict, payload["optimizer"])


def load_model(
    filepath,
    module: Optional[nn.Module] = None,
    compile: bool = True,
    safe_mode: bool = True,
    custom_objects: Optional[dict] = None,
):
    """Loads a model written by `model.save(filepath)`.

    The file is read with `torch.load(weights_only=True)`: loading never
    unpickles code. The module is rebuilt from the file's description: a
    `torchfit.Model` subclass by its class (from `custom_objects`, else among
    imported modules; `safe_mode=False` lets it import the class's module)
    called with its recorded constructor arguments, a module of `torch.nn`
    layers from its structure. Losses, metrics and optimizers of your own are
    saved by name and found in `custom_objects`. Compile arguments that were
    lambdas or objects with no config are not saved; such a model (or one whose
    custom objects are not given) is returned uncompiled, with a warning naming them.

    Args:
        filepath: The file `model.save` wrote.
        module: A module (or `torchfit.Model`) built like the saved one, to
            load into instead of rebuilding. A dict here is taken as
            `custom_objects`, Keras's second positional argument. Defaults to `None`.
        compile: Compile the model as it was, and restore the optimizer's
            state and iterations. Defaults to `True`.
        safe_mode: Only use model classes already imported (or given in
            `custom_objects`). Defaults to `True`.
        custom_objects: `{name: class or function}` for the model's own classes
            (a `torchfit.Model` subclass) and the losses, metrics and optimizers
            it was compiled with, by class or function name. Defaults to `None`.

    Returns:
        A `torchfit.Model`.

    Raises:
        ValueError: For a corrupt or foreign file, a file that would run code,
            a module that cannot be rebuilt (pass `module=`), weights that do
            not fit `module`, or an edited entry (named, with the file). The
            described module is built on the meta device and checked against
            the stored weights before any of its memory is allocated.
    """
    filepath = os.fspath(filepath)
    if isinstance(module, dict) and custom_objects is None:
        module, custom_objects = None, module  # Keras's load_model(path, custom_objects)
    payload = _check_payload(read_torch_file(filepath), filepath)
    file_checks.check_entries(payload, filepath)
    try:
        model = _build_model(payload, module, safe_mode, filepath, custom_objects)
        weights = uncompiled_names(payload["weights"], model.weights_module)
        load_state(model.weights_module, weights, filepath)
        model._place()
        if compile and payload.get("compiled"):
            _compile(model, payload, filepath, custom_objects)
    except MalformedEntry as err:
        raise file_checks.malformed(filepath, err.entry, err.problem) from err
    return model


def save_model(model, filepath, overwrite: bool = True) -> None:
    """Saves weights, optimizer state, compile config and counters in one file (`model.save`)."""
    write_torch_file(model_payload(model), filepath, overwrite)
