"""Sharded and full checkpoints of a distributed model.

Owns `save_sharded`/`load_sharded` (torch.distributed.checkpoint: each rank
writes its own shards, and the files load at any world size, one process
included) and writing a plain, full state_dict of an FSDP-sharded model for
`save_weights`. Writing a single process's files belongs to
`torchfit.models.saving`.
"""

import os

from torchfit.distribution import env

__all__ = ["save_sharded", "load_sharded", "save_full_weights", "full_state_dict"]


def _state_module(model):
    module = getattr(model, "module", None)
    return module if module is not None else model


def save_sharded(model, path) -> None:
    """Writes the model's weights to the folder `path` with torch.distributed.checkpoint.

    Every rank must call it; under FSDP2 each rank writes its own shards.

    Args:
        model: A `torchfit.Model` (or any `nn.Module`).
        path: A folder, created if missing.
    """
    path = os.fspath(path)
    # Imported here: torch.distributed.checkpoint takes half a second to load.
    import torch.distributed.checkpoint as dcp

    dcp.save({"model": _state_module(model).state_dict()}, checkpoint_id=path)


def load_sharded(model, path) -> None:
    """Loads weights written by `save_sharded` (at any world size) into `model`.

    Every rank must call it. Works in a single process without a process group.

    Raises:
        FileNotFoundError: When `path` is not a folder.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"`path` {path!r} is not a checkpoint folder written by save_sharded."
        )
    module = _state_module(model)
    state = {"model": module.state_dict()}
    import torch.distributed.checkpoint as dcp

    dcp.load(state, checkpoint_id=path)
    module.load_state_dict(state["model"])


def full_state_dict(model) -> dict:
    """The whole, unsharded state_dict on the CPU (a collective under FSDP2: all ranks call it)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=env.world_size() > 1)
    return get_model_state_dict(_state_module(model), options=options)


class _FullWeights:
    """Stands in for a model whose `weights_module.state_dict()` is the full one."""

    def __init__(self, state: dict):
        self.weights_module = self
        self._state = state

    def state_dict(self) -> dict:
        return self._state


def save_full_weights(model, filepath, write) -> None:
    """Gathers an FSDP2 model's full weights (all ranks) and writes them on rank 0 with `write`."""
    if write.__name__ != "save_weights":  # decided alike on every rank, before any collective
        raise ValueError(
            "model.save() of an FSDP-sharded model is not supported: use"
            " model.save_weights(path) for a full state_dict, or"
            " torchfit.distribution.save_sharded(model, folder)."
        )
    state = full_state_dict(model)
    if env.is_chief():
        write(_FullWeights(state), filepath)
