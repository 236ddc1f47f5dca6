"""How a call reaches the module's `forward`: device, inputs, autocast, compile.

Owns the default device, routing a list input to `forward(*xs)` and a dict to
`forward(**xs)`, the autocast context of a mixed dtype policy, and wrapping
`forward` in `torch.compile`. When these run belongs to `models/model.py`.
"""

import inspect
import os
import warnings
from collections.abc import Callable, Mapping
from typing import Optional

import torch

from torchfit.tree import map_structure

__all__ = ["ForwardSignature", "autocast", "cast_floats", "default_device", "make_jit_forward", "route_inputs"]


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


class ForwardSignature:
    """What `forward` accepts, read once: how to route list/dict inputs."""

    def __init__(self, forward: Callable):
        parameters = list(inspect.signature(forward).parameters.values())
        kinds = inspect.Parameter
        self.accepts_training = any(
            p.name == "training" or p.kind == kinds.VAR_KEYWORD for p in parameters
        )
        self.var_keyword = any(p.kind == kinds.VAR_KEYWORD for p in parameters)
        self.var_positional = any(p.kind == kinds.VAR_POSITIONAL for p in parameters)
        self.names = [
            p.name
            for p in parameters
            if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY) and p.name != "training"
        ]
        self.num_positional = sum(
            1 for p in parameters
            if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD) and p.name != "training"
        )


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """Autocast to `dtype` on `device`'s type; a no-op context when `dtype` is None."""
    if dtype is None:
        return _NO_AUTOCAST
    return torch.autocast(device_type=device.type, dtype=dtype)


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
    `forward(**xs)` (keys checked), and `training` only where accepted."""
    if "training" in kwargs and not signature.accepts_training:
        kwargs = {key: value for key, value in kwargs.items() if key != "training"}
    if len(args) != 1:
        return args, kwargs
    (x,) = args
    if isinstance(x, Mapping):
        unknown = [key for key in x if key not in signature.names]
        if unknown and not signature.var_keyword:
            raise ValueError(
                f"The input dict has keys {sorted(unknown)} that are not parameters"
                f" of forward(). forward() accepts: {signature.names}."
                " Rename the keys to match, or pass a list of inputs."
            )
        return (), {**x, **kwargs}
    if isinstance(x, (list, tuple)) and (signature.var_positional or signature.num_positional > 1):
        return tuple(x), kwargs
    return args, kwargs
