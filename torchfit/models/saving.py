"""Writes and reads a model's weights as plain torch files.

Owns `save_weights`/`load_weights`: the wrapped module's own `state_dict`,
written atomically, read back with `weights_only=True` so that loading
never runs code. Whole-model files (`save`/`load_model`) build on these.
"""

import os
import pickle
import warnings
import zipfile
from typing import Any

import torch

from torchfit.utils.file_utils import atomic_write

__all__ = ["save_weights", "load_weights", "load_state", "read_torch_file", "save_model"]


def _weights_module(model):
    return model.module if model.module is not None else model


def save_weights(model, filepath, overwrite: bool = True) -> None:
    """Saves the wrapped module's `state_dict` to `filepath` (any suffix).

    The file is written to a temporary file and renamed, so a crash never
    leaves a torn one; plain torch reads it with `torch.load`.

    Args:
        filepath: Where to write, used exactly as given.
        overwrite: Replace an existing file. Defaults to `True`.
    """
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"`filepath` {filepath!r} exists and overwrite=False.")
    state = {
        key: value.detach().cpu() for key, value in _weights_module(model).state_dict().items()
    }
    with atomic_write(filepath) as file:
        torch.save(state, file)


def read_torch_file(filepath, argument: str = "filepath") -> Any:
    """Loads a torch file with `weights_only=True`, turning failures into clear errors."""
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


def load_weights(model, filepath, skip_mismatch: bool = False) -> None:
    """Loads weights written by `save_weights` (or any plain `state_dict` file).

    Args:
        filepath: The file to read.
        skip_mismatch: Skip weights whose name or shape differ instead of
            raising. Defaults to `False`.

    Raises:
        ValueError: For a corrupt file, a file of another model, or a file
            that would need to run code to load.
    """
    state = read_torch_file(filepath)
    if isinstance(state, dict) and state.get("format") == "torchfit.model":
        state = state["weights"]
    load_state(model, state, os.fspath(filepath), skip_mismatch=skip_mismatch)


def load_state(model, state: Any, source: str, skip_mismatch: bool = False) -> None:
    """Loads a state_dict read from `source` into the model's weights, naming every mismatch.

    With `skip_mismatch=True` what fits is loaded and a warning names every
    weight left as it was (with both shapes), as Keras warns.
    """
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"`filepath` {source!r} does not hold a state_dict (a dict of"
            f" tensors). Received: {type(state).__name__}."
        )
    target = _weights_module(model)
    own = target.state_dict()
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
    target.load_state_dict(state, strict=not details)


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


def save_model(model, filepath, overwrite: bool = True) -> None:
    """Saves weights, optimizer state, compile config and counters in one file."""
    from torchfit.models.serialization import model_payload

    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"`filepath` {filepath!r} exists and overwrite=False.")
    payload = model_payload(model)
    with atomic_write(filepath) as file:
        torch.save(payload, file)
