"""How a call reaches the module's `forward`: device, inputs, mode, autocast, compile.

Owns the default device, routing a list input to `forward(*xs)` and a dict to
`forward(**xs)` (its keys checked against what `forward` takes, seen through a
`torch.compile` wrapper), passing `training=` only to a `forward` that names it,
the train/eval mode of one call (`training=`), the autocast
context of a mixed dtype policy, wrapping `forward` in `torch.compile`, and
the error that describes the inputs when the first forward pass fails. When
these run belongs to `models/model.py`; running a block in train or eval mode
(`training=`) to `utils/modes.py`.
"""

import inspect
import os
import typing
import warnings
from collections.abc import Callable, Mapping
from typing import Optional, Union

import torch
import typing_extensions
from torch import nn

from torchfit.tree import map_structure
from torchfit.utils.uncompiled import uncompiled

__all__ = [
    "ForwardSignature",
    "autocast",
    "bool_input_cast",
    "cast_floats",
    "default_device",
    "describe_forward_error",
    "make_jit_forward",
    "route_inputs",
]


# torchrun's LOCAL_RANK, read once: each rank's default GPU (torchfit.distribution).
_LOCAL_RANK = os.environ.get("LOCAL_RANK")


def default_device() -> torch.device:
    """CUDA if available (under torchrun, the rank's LOCAL_RANK GPU), else MPS, else CPU."""
    if torch.cuda.is_available():
        if _LOCAL_RANK is not None and _LOCAL_RANK.isdigit():
            return torch.device("cuda", int(_LOCAL_RANK) % torch.cuda.device_count())
        return torch.device("cuda", torch.cuda.current_device())
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class _NoAutocast:
    """A do-nothing context, cheaper than entering a disabled autocast."""

    def __enter__(self):
        return None

    def __exit__(self, *exc_info):
        return False


_NO_AUTOCAST = _NoAutocast()

# `Unpack` of a typed `**kwargs` (PEP 692), from `typing` (Python 3.11+) or `typing_extensions`.
_UNPACK_FORMS = {
    form for form in (getattr(typing, "Unpack", None), typing_extensions.Unpack) if form is not None
}


class ForwardSignature:
    """What `forward` accepts, read once: how to route list and dict inputs.

    `training` is passed only to a `forward` that names it, as Keras passes it
    only to a `call` that does. The keys a dict input may have are `forward`'s
    parameter names, plus the keys of a typed `**kwargs: Unpack[SomeTypedDict]`
    (Hugging Face forwards); only an untyped `**kwargs` takes any key.

    Args:
        forward: A module (its `forward` is read; for a `torch.compile`d module,
            the compiled module's) or a callable.

    Example:
    >>> def forward(input_ids, attention_mask=None, **kwargs):
    ...     return input_ids
    >>> signature = ForwardSignature(forward)
    >>> signature.names, signature.accepts_training, signature.any_keyword
    (['input_ids', 'attention_mask'], False, True)
    """

    def __init__(self, forward: Union[Callable, nn.Module]):
        if isinstance(forward, nn.Module):
            forward = uncompiled(forward).forward
        parameters = list(_signature(forward).parameters.values())
        kinds = inspect.Parameter
        named = (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
        self.accepts_training = any(p.name == "training" and p.kind in named for p in parameters)
        var_keyword = [p for p in parameters if p.kind == kinds.VAR_KEYWORD]
        self.var_keyword = bool(var_keyword)
        self.var_positional = any(p.kind == kinds.VAR_POSITIONAL for p in parameters)
        self.names = [p.name for p in parameters if p.kind in named and p.name != "training"]
        #: The keys a typed `**kwargs` takes, or `None` (no `**kwargs`, or an untyped one).
        self.keyword_keys = _typed_keys(var_keyword[0]) if var_keyword else None
        #: Whether a dict input may have any key (an untyped `**kwargs`).
        self.any_keyword = self.var_keyword and self.keyword_keys is None
        self.num_positional = sum(
            1
            for p in parameters
            if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)
            and p.name != "training"
        )

    def unknown_keys(self, keys) -> list:
        """The keys of a dict input that `forward` does not take, sorted."""
        if self.any_keyword:
            return []
        accepted = set(self.names) | set(self.keyword_keys or ())
        return sorted(key for key in keys if key not in accepted)


def _signature(forward: Callable) -> inspect.Signature:
    """`forward`'s signature, its annotations evaluated when they can be (a module
    written with `from __future__ import annotations` keeps them as strings)."""
    try:
        return inspect.signature(forward, eval_str=True)
    except Exception:  # noqa: BLE001 - an annotation naming what is not importable here
        return inspect.signature(forward)


def _typed_keys(parameter: inspect.Parameter) -> Optional[list]:
    """The keys of `**kwargs: Unpack[SomeTypedDict]`, or `None` for an untyped `**kwargs`."""
    annotation = parameter.annotation
    if typing.get_origin(annotation) not in _UNPACK_FORMS:
        return None
    (typed,) = typing.get_args(annotation) or (None,)
    required = getattr(typed, "__required_keys__", None)
    optional = getattr(typed, "__optional_keys__", None)
    if required is None or optional is None:
        return None
    return sorted(required | optional)


def autocast(device: torch.device, dtype: Optional[torch.dtype], cache_enabled: bool = True):
    """Autocast to `dtype` on `device`'s type; a no-op context when `dtype` is None.
    `cache_enabled=False` casts the weights anew at each use (a CUDA graph capture)."""
    if dtype is None:
        return _NO_AUTOCAST
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache_enabled)


def cast_floats(structure, dtype: torch.dtype):
    """Casts the floating-point tensors of `structure` to `dtype`."""

    def cast(leaf):
        if isinstance(leaf, torch.Tensor) and leaf.is_floating_point() and leaf.dtype != dtype:
            return leaf.to(dtype)
        return leaf

    return map_structure(cast, structure)


def make_jit_forward(forward: Callable) -> Optional[Callable]:
    """`forward` under `torch.compile` (torchfit's bookkeeping stays eager), or
    None with one warning when torch.compile is unavailable."""
    try:
        return torch.compile(forward)
    except Exception as err:  # noqa: BLE001 - e.g. no compiler on this platform
        warnings.warn(
            f"jit_compile=True: torch.compile is unavailable ({type(err).__name__}: {err})."
            " Running the model eagerly instead.",
            stacklevel=4,
        )
        return None


def route_inputs(signature: ForwardSignature, args: tuple, kwargs: dict) -> tuple:
    """Routes a call's inputs the Keras way: a single list goes to
    `forward(*xs)` when forward takes several inputs, a single dict to
    `forward(**xs)` (keys checked), and `training` only where `forward` names it."""
    if "training" in kwargs and not signature.accepts_training:
        kwargs = {key: value for key, value in kwargs.items() if key != "training"}
    if len(args) != 1:
        return args, kwargs
    (x,) = args
    if isinstance(x, Mapping):
        unknown = signature.unknown_keys(x)
        if unknown:
            raise ValueError(
                f"The input dict has keys {unknown} that are not parameters"
                f" of forward(). forward() accepts: {signature.names}"
                f"{_keyword_keys_text(signature)}."
                " Rename the keys to match, or pass a list of inputs."
            )
        return (), {**x, **kwargs}
    if isinstance(x, (list, tuple)) and (signature.var_positional or signature.num_positional > 1):
        return tuple(x), kwargs
    return args, kwargs


def _keyword_keys_text(signature: ForwardSignature) -> str:
    if not signature.keyword_keys:
        return ""
    return f", and through its typed **kwargs: {signature.keyword_keys}"


# ------------------------------------------------------ first-call errors
def _describe_leaf(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).replace('torch.', '')} {tuple(value.shape)}"
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None:
        return f"{dtype} {tuple(shape)}"
    return type(value).__name__


def _describe(value) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key!r}: {_describe(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_describe(item) for item in value) + "]"
    return _describe_leaf(value)


def _integer_inputs(args: tuple, kwargs: dict) -> list:
    leaves = [(f"input {index}", value) for index, value in enumerate(args)]
    leaves += [(f"input `{key}`", value) for key, value in kwargs.items() if key != "training"]
    return [
        (where, str(value.dtype).replace("torch.", ""))
        for where, value in leaves
        if isinstance(value, torch.Tensor) and not (value.is_floating_point() or value.is_complex())
    ]


def bool_input_cast(
    args: tuple, kwargs: dict, parameter_dtype: Optional[torch.dtype]
) -> Optional[torch.dtype]:
    """The dtype to cast a bool input to: the weights' floating dtype when the
    whole input is one bool tensor, else `None` (a bool mask among several
    inputs stays bool; integer inputs are never cast, embeddings take them).

    Example:
    >>> bool_input_cast((torch.ones(2, 3, dtype=torch.bool),), {}, torch.float32)
    torch.float32
    >>> bool_input_cast((torch.ones(2, 3, dtype=torch.int64),), {}, torch.float32) is None
    True
    """
    if len(args) != 1 or not set(kwargs) <= {"training"}:
        return None
    (x,) = args
    if not isinstance(x, torch.Tensor) or x.dtype != torch.bool:
        return None
    if parameter_dtype is None or not parameter_dtype.is_floating_point:
        return None
    return parameter_dtype


def describe_forward_error(
    err: Exception, args: tuple, kwargs: dict, names: list, parameter_dtype: Optional[torch.dtype]
) -> Optional[Exception]:
    """The error of a failed first forward pass, retold with every input it received.

    Args:
        err: What `forward` raised.
        args, kwargs: The inputs as `forward` received them.
        names: `forward`'s parameter names, to show the expected order.
        parameter_dtype: The dtype of the module's first parameter, if any.

    Returns:
        An exception of the same type (raise it `from err`), or `None` when
        that type cannot be built from a message, or when an inner
        `torchfit.Model` already described its inputs.
    """
    if getattr(err, "_torchfit_described", False):
        return None
    inputs = [f"input {index}: {_describe(value)}" for index, value in enumerate(args)]
    inputs += [
        f"input `{key}`: {_describe(value)}" for key, value in kwargs.items() if key != "training"
    ]
    order = " (positional inputs in this order)" if len(args) > 1 else ""
    message = (
        f"{err}\n\nThe model's first forward pass failed. forward({', '.join(names)}) received"
        f"{order}: " + "; ".join(inputs) + "."
    )
    if parameter_dtype is not None and parameter_dtype.is_floating_point:
        for where, dtype in _integer_inputs(args, kwargs):
            message += (
                f" {where[0].upper() + where[1:]} has dtype {dtype} while the model's weights are"
                f" {str(parameter_dtype).replace('torch.', '')}: cast it to a float dtype"
                " (e.g. `x.astype('float32')`) unless the model embeds integer ids."
            )
    message += " Check the number of features, the order of the inputs and their dtypes."
    try:
        described = type(err)(message)
    except Exception:  # noqa: BLE001 - an exception type that takes other arguments
        return None
    described._torchfit_described = True
    return described
