"""Reads and writes plain torch files of weights, safely.

Owns the file-level rules every writer of weights shares: a file is written
atomically and never replaces an existing one when `overwrite=False`; a file is
read with `weights_only=True` (loading never runs code), and a failure says what
was wrong with it; a state_dict is loaded into a module only when every name and
shape fits, or with `skip_mismatch` what fits, naming every mismatch. What a file
holds belongs to its writer: `models/saving.py` (weights), `models/serialization.py`
(whole models), `callbacks/backup_and_restore.py` (backups); writing once under
torch.distributed belongs to the model's distribution.
"""

import os
import pickle
import warnings
import zipfile
from typing import Any

import torch
from torch import nn

from torchfit.utils.file_utils import atomic_write

__all__ = ["cpu_state_dict", "cpu_tensors", "load_state", "read_torch_file", "write_torch_file"]


def cpu_tensors(state: dict) -> dict:
    """`state` with every tensor detached and on the CPU (a copy of GPU ones).

    Example:
    >>> sorted(cpu_tensors(nn.Linear(2, 1).state_dict()))
    ['bias', 'weight']
    """
    return {key: value.detach().cpu() for key, value in state.items()}


def cpu_state_dict(module: nn.Module) -> dict:
    """`module.state_dict()`, every tensor detached and on the CPU (a copy of GPU ones)."""
    return cpu_tensors(module.state_dict())


def write_torch_file(value: Any, filepath, overwrite: bool = True) -> None:
    """Writes `value` with `torch.save` to `filepath`, atomically.

    Args:
        value: What to save: a state_dict, or any tensors and plain containers.
        filepath: Where to write, used exactly as given.
        overwrite: Replace an existing file. Defaults to `True`.

    Raises:
        FileExistsError: With `overwrite=False`, when `filepath` exists.

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "w.pt")
    >>> write_torch_file({"w": torch.ones(2)}, path)
    >>> write_torch_file({}, path, overwrite=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileExistsError: `filepath` '...w.pt' exists and overwrite=False.
    """
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"`filepath` {filepath!r} exists and overwrite=False.")
    with atomic_write(filepath) as file:
        torch.save(value, file)


def read_torch_file(filepath, argument: str = "filepath") -> Any:
    """Loads a torch file with `weights_only=True`, turning failures into clear errors.

    Args:
        filepath: The file to read.
        argument: How errors name the file. Defaults to "filepath".

    Raises:
        FileNotFoundError: When there is no such file.
        ValueError: For a file that holds code, or one torch cannot read.
    """
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"`{argument}` {filepath!r} does not exist.")
    try:
        return torch.load(filepath, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"`{argument}` {filepath!r} holds objects other than tensors and plain"
            " containers; it was not loaded, and nothing in it was run. Load only"
            " files you trust, with safe_mode=False where that is offered."
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise ValueError(
            f"`{argument}` {filepath!r} is not a readable torch file (truncated or corrupt?): {err}"
        ) from err


def load_state(module: nn.Module, state: Any, source: str, skip_mismatch: bool = False) -> None:
    """Loads a state_dict read from `source` into `module`, naming every mismatch.

    With `skip_mismatch=True` what fits is loaded and a warning names every
    weight left as it was (with both shapes), as Keras warns.

    Raises:
        ValueError: When `state` is no state_dict, or (without `skip_mismatch`)
            does not fit `module`.
    """
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"`filepath` {source!r} does not hold a state_dict (a dict of"
            f" tensors). Received: {type(state).__name__}."
        )
    own = module.state_dict()
    details = _mismatches(own, state)
    if details and not skip_mismatch:
        raise ValueError(
            f"The weights in {source!r} do not fit this model: {'; '.join(details)}."
            " Was it saved from another model? Pass skip_mismatch=True to load what fits."
        )
    if details:
        warnings.warn(
            f"load_weights(skip_mismatch=True) skipped weights of {source!r} that do not fit"
            f" this model: {'; '.join(details)}. The model's own values were kept for these.",
            stacklevel=3,
        )
        state = {
            key: value
            for key, value in state.items()
            if key in own and tuple(own[key].shape) == tuple(value.shape)
        }
    module.load_state_dict(state, strict=not details)


def _mismatches(own: dict, state: dict, shown: int = 10) -> list:
    """What differs between the model's state_dict and a file's, in words (empty when it fits).

    Example:
    >>> own = {"w": torch.zeros(2, 3), "b": torch.zeros(2)}
    >>> _mismatches(own, {"w": torch.zeros(4, 3), "x": torch.zeros(1)})
    ["missing ['b']", "unexpected ['x']", 'shape mismatch for w: file (4, 3) vs model (2, 3)']
    """
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        key for key in own if key in state and tuple(own[key].shape) != tuple(state[key].shape)
    ]
    details = []
    if missing:
        details.append(f"missing {missing[:shown]}{_more(missing, shown)}")
    if unexpected:
        details.append(f"unexpected {unexpected[:shown]}{_more(unexpected, shown)}")
    if mismatched:
        details.append(
            "shape mismatch for "
            + ", ".join(
                f"{key}: file {tuple(state[key].shape)} vs model {tuple(own[key].shape)}"
                for key in mismatched[:shown]
            )
            + _more(mismatched, shown)
        )
    return details


def _more(names: list, shown: int) -> str:
    return f" and {len(names) - shown} more" if len(names) > shown else ""
