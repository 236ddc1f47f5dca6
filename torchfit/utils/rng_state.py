"""Captures and restores the state of every global random number generator.

Owns turning the states of torch (CPU, every CUDA device, MPS), NumPy's
global generator and Python's `random` into plain tensors and numbers, so a
checkpoint holding them can be read back with `torch.load(weights_only=True)`,
and putting them back. Seeding belongs to `rng_utils.py`; when to capture
(epoch start, a backup) belongs to `BackupAndRestore`.
"""

import random
from typing import Any

import numpy as np
import torch

__all__ = ["get_rng_state", "set_rng_state"]


def _numpy_state() -> dict:
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "kind": str(kind),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "position": int(position),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }


def _set_numpy_state(state: dict) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (state["kind"], keys, state["position"], state["has_gauss"], state["cached_gaussian"])
    )


def _python_state() -> dict:
    version, internal, gauss_next = random.getstate()
    return {
        "version": int(version),
        "internal": torch.tensor(internal, dtype=torch.int64),
        "gauss_next": gauss_next,
    }


def _set_python_state(state: dict) -> None:
    internal = tuple(int(value) for value in state["internal"].tolist())
    random.setstate((state["version"], internal, state["gauss_next"]))


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available() and hasattr(torch, "mps")


def get_rng_state() -> dict[str, Any]:
    """Returns the states of torch's, NumPy's and Python's global generators.

    Every value is a tensor, a number, a string or a list of tensors, so the
    result can be saved with `torch.save` and read back with
    `weights_only=True`.

    Returns:
        A dict with keys `"torch"`, `"cuda"` (one state per device; empty
        without CUDA), `"mps"` (`None` without MPS), `"numpy"` and
        `"python"`.

    Example:
    >>> state = get_rng_state()
    >>> first = torch.rand(3)
    >>> set_rng_state(state)
    >>> bool(torch.equal(first, torch.rand(3)))
    True
    """
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "mps": torch.mps.get_rng_state() if _mps_available() else None,
        "numpy": _numpy_state(),
        "python": _python_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Puts back the generator states that `get_rng_state` returned.

    CUDA states are restored for as many devices as both the saved state and
    this machine have, so a backup made on another GPU count still loads.

    Args:
        state: The dict `get_rng_state` returned (possibly after a round trip
            through `torch.save`/`torch.load`).

    Raises:
        ValueError: If `state` lacks one of the expected keys.
    """
    missing = [key for key in ("torch", "numpy", "python") if key not in (state or {})]
    if missing:
        raise ValueError(f"`state` must come from `get_rng_state()`; it lacks the keys {missing}.")
    torch.set_rng_state(state["torch"].cpu())
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available():
        for device, cuda_state in enumerate(cuda_states[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), device)
    if state.get("mps") is not None and _mps_available():
        torch.mps.set_rng_state(state["mps"].cpu())
    _set_numpy_state(state["numpy"])
    _set_python_state(state["python"])
