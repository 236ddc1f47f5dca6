"""Checks a `model.save` file before `load_model` builds or allocates anything from it.

Owns what each entry of a model file must be (`MalformedEntry`, and the
`ValueError` naming the file and the entry) and the check that the module
a file describes fits the weights it stores: the module is built on the
meta device, where nothing is allocated, every parameter's and buffer's
shape and kind of dtype is compared with the stored tensor, and only a
module that fits is built for real. A forged layer size is refused before
its memory is taken, and every stored tensor must be backed by data in the
file (no expanded, sparse or meta tensors). Reading the file belongs to
`saving.py`; describing and building modules, and `load_model`, to
`serialization.py`.
"""

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Optional

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = ["MalformedEntry", "malformed", "check_entries", "built_on_meta", "check_fits"]

_REQUIRED = ("weights", "module")
_TOP_LEVEL = {
    "weights": (dict,),
    "module": (dict,),
    "compiled": (bool,),
    "compile_config": (dict,),
    "compile_missing": (list,),
    "optimizer": (dict, type(None)),
}


class MalformedEntry(ValueError):
    """An entry of a model file that cannot be what `model.save` wrote.

    Args:
        entry: Where it is in the file, e.g. `module.module.children[0].args`.
        problem: What is wrong with it.
        in_user_code: Whether a `torchfit.Model` subclass's own constructor
            failed on it (which may also mean the constructor cannot run on
            the meta device). Defaults to `False`.

    Example:
    >>> str(MalformedEntry("compiled", "must be True or False, not a str"))
    'entry `compiled`: must be True or False, not a str'
    """

    def __init__(self, entry: str, problem: str, in_user_code: bool = False):
        super().__init__(f"entry `{entry}`: {problem}")
        self.entry = entry
        self.problem = problem
        self.in_user_code = in_user_code


def malformed(filepath: str, entry: str, problem: str) -> ValueError:
    """The error for a malformed entry of the file `filepath`.

    Example:
    >>> print(malformed("m.pt", "compiled", "must be True or False, not a str"))
    `filepath` 'm.pt' is malformed at entry `compiled`: must be True or False, not a str. \
Was the file edited or damaged after `model.save` wrote it?
    """
    return ValueError(
        f"`filepath` {filepath!r} is malformed at entry `{entry}`: {problem.rstrip('.')}."
        " Was the file edited or damaged after `model.save` wrote it?"
    )


def short(value: Any, limit: int = 80) -> str:
    """`repr(value)`, cut to `limit` characters (file data can be large).

    Example:
    >>> short("x" * 100, limit=10)
    "'xxxxxx..."
    """
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------ entries


def check_entries(payload: dict, filepath: str) -> None:
    """Checks the type of every top-level entry and every tensor in the file.

    Raises:
        ValueError: Naming `filepath` and the first malformed entry.
    """
    problem = _top_level_problem(payload)
    if problem is None:
        unbacked = ((entry, _unbacked(tensor)) for entry, tensor in _tensors(payload, ""))
        problem = next(((entry, why) for entry, why in unbacked if why), None)
    if problem is not None:
        raise malformed(filepath, *problem)


def _top_level_problem(payload: dict) -> Optional[tuple]:
    """(entry, problem) for the first top-level entry of the wrong type, or `None`."""
    for key in _REQUIRED:
        if key not in payload:
            return key, "is missing"
    for key, types in _TOP_LEVEL.items():
        if key in payload and not isinstance(payload[key], types):
            expected = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            return key, f"must be a {expected}, not a {type(payload[key]).__name__}"
    for key, value in payload["weights"].items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            return (
                f"weights[{short(key)}]",
                f"must map a name to a tensor, not a {type(value).__name__}",
            )
    if not all(isinstance(item, str) for item in payload.get("compile_missing") or []):
        return "compile_missing", "must be a list of strings"
    return None


def _tensors(value: Any, where: str) -> Iterator[tuple]:
    """Every tensor in plain data, with where it is (`weights['0.weight']`)."""
    if isinstance(value, torch.Tensor):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors(item, f"{where}[{short(key)}]" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _tensors(item, f"{where}[{index}]")


def _unbacked(tensor: torch.Tensor) -> Optional[str]:
    """Why `tensor` is not plain data held in the file, or `None`.

    An expanded view (a zero stride) of a few stored bytes has any shape it
    claims: copying it into a module of that shape would allocate it all.
    """
    if tensor.layout != torch.strided or tensor.is_meta or tensor.is_quantized:
        return f"holds a {tensor.layout} {tensor.device.type} tensor, not plain data"
    needed = tensor.numel() * tensor.element_size()
    held = tensor.untyped_storage().nbytes()
    if needed > held:
        return (
            f"holds a tensor of shape {tuple(tensor.shape)} ({needed} bytes) backed by only"
            f" {held} bytes in the file"
        )
    return None


# ------------------------------------------------------- the meta-device check


def _constructors() -> frozenset:
    # The factory functions torch.device("meta") redirects (torch.empty, torch.zeros, ...).
    from torch.utils import _device

    return frozenset(getattr(_device, "_device_constructors", lambda: ())())


class _StayOnMeta(TorchFunctionMode):
    """Keeps a meta build on the meta device, whatever device its code names.

    A factory given an explicit device (`nn.Linear(..., device="cpu")`) makes
    a meta tensor too, and moving a meta tensor to a real device
    (`Model(module)` does) leaves it where it is. A dtype change still
    applies: a module built in float64 is checked in float64.
    """

    def __init__(self):
        super().__init__()
        self.constructors = _constructors()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.constructors and kwargs.get("device") is not None:
            kwargs = {**kwargs, "device": "meta"}
        elif func in (torch.Tensor.to, torch.Tensor.cpu, torch.Tensor.cuda) and args[0].is_meta:
            if func is torch.Tensor.to:
                _, dtype, _, _ = torch._C._nn._parse_to(*args[1:], **kwargs)
                return args[0].to(dtype=dtype) if dtype is not None else args[0]
            return args[0]
        return func(*args, **kwargs)


@contextlib.contextmanager
def _on_meta():
    with torch.device("meta"), _StayOnMeta():
        yield


def built_on_meta(build: Callable[[dict], nn.Module], spec: dict) -> Optional[nn.Module]:
    """Builds the described module on the meta device: no parameter or buffer is allocated.

    Args:
        build: Builds a module from a description (raises `MalformedEntry`).
        spec: The file's `module` entry.

    Returns:
        The module on the meta device, or `None` when a `torchfit.Model`
        subclass's constructor cannot run there (it is then built directly).

    Raises:
        MalformedEntry: For a description no constructor accepts.
    """
    try:
        with _on_meta():
            return build(spec)
    except MalformedEntry as err:
        if err.in_user_code:
            return None
        raise


def check_fits(described: nn.Module, weights: dict, filepath: str, origins: dict) -> None:
    """Compares the described module's state with the stored weights, name by name.

    Args:
        described: The module built on the meta device (its weights module).
        weights: The file's `weights` entry.
        filepath: For the error.
        origins: Maps `id(submodule)` to the file entry that describes it.

    Raises:
        ValueError: Naming the file and the entry, for a missing, unexpected
            or misshapen weight, or a weight of another kind of dtype.
    """
    own = described.state_dict()
    missing = [key for key in own if key not in weights]
    unexpected = [key for key in weights if key not in own]
    if missing or unexpected:
        raise malformed(
            filepath,
            "weights",
            (
                f"they do not match the module the file describes: missing {missing[:5]},"
                f" unexpected {[short(key) for key in unexpected[:5]]}"
            ),
        )
    for key, expected in own.items():
        stored = weights[key]
        if tuple(stored.shape) != tuple(expected.shape) or _kind(stored) != _kind(expected):
            entry = _origin(described, key, origins)
            raise malformed(
                filepath,
                entry,
                (
                    f"it describes a layer whose `{key}` has shape {tuple(expected.shape)}"
                    f" ({_kind(expected)}), but the stored `weights[{key!r}]` has shape"
                    f" {tuple(stored.shape)} ({_kind(stored)})"
                ),
            )


def _kind(tensor: torch.Tensor) -> str:
    if tensor.dtype == torch.bool:
        return "bool"
    if tensor.is_complex():
        return "complex"
    return "floating" if tensor.is_floating_point() else "integer"


def _origin(module: nn.Module, key: str, origins: dict) -> str:
    """The file entry describing the submodule that owns `key` (the closest one)."""
    parts = key.split(".")[:-1]
    while True:
        owner = module.get_submodule(".".join(parts)) if parts else module
        if id(owner) in origins:
            return origins[id(owner)]
        if not parts:
            return "module"
        parts.pop()
