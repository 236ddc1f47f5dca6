"""Writes and reads a model's weights as plain torch files.

Owns `save_weights`/`load_weights`: the wrapped module's own `state_dict`,
written atomically, read back with `weights_only=True` so that loading
never runs code. Whole-model files (`save`/`load_model`) build on these.
"""

import os
import pickle
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
    state = {key: value.detach().cpu() for key, value in _weights_module(model).state_dict().items()}
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
            f"`{argument}` {filepath!r} is not a readable torch file (truncated or"
            f" corrupt?): {err}"
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
    """Loads a state_dict read from `source` into the model's weights, naming every mismatch."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"`filepath` {source!r} does not hold a state_dict (a dict of"
            f" tensors). Received: {type(state).__name__}."
        )
    target = _weights_module(model)
    own = target.state_dict()
    if skip_mismatch:
        state = {
            key: value for key, value in state.items()
            if key in own and tuple(own[key].shape) == tuple(value.shape)
        }
        target.load_state_dict(state, strict=False)
        return
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        key for key in own
        if key in state and tuple(own[key].shape) != tuple(state[key].shape)
    ]
    if missing or unexpected or mismatched:
        details = []
        if missing:
            details.append(f"missing {missing[:5]}")
        if unexpected:
            details.append(f"unexpected {unexpected[:5]}")
        if mismatched:
            details.append(
                "shape mismatch for "
                + ", ".join(f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}" for k in mismatched[:5])
            )
        raise ValueError(
            f"The weights in {source!r} do not fit this model: "
            + "; ".join(details)
            + ". Was it saved from another model? Pass skip_mismatch=True to load what fits."
        )
    target.load_state_dict(state)


def save_model(model, filepath, overwrite: bool = True) -> None:
    """Saves weights, optimizer state, compile config and counters in one file."""
    from torchfit.models.serialization import model_payload

    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"`filepath` {filepath!r} exists and overwrite=False.")
    payload = model_payload(model)
    with atomic_write(filepath) as file:
        torch.save(payload, file)
