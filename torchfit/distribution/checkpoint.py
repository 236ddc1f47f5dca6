"""Sharded and full checkpoints of a distributed model.

Owns `save_sharded`/`load_sharded` (torch.distributed.checkpoint: each rank
writes its own shards, and the files load at any world size, one process
included) and gathering the plain, full state_dict of an FSDP-sharded model
that `save_weights` writes. Writing the files of weights belongs to
`torchfit.models.saving`; their file rules to `torchfit.utils.torch_files`.
"""

import os

from torch import nn

from torchfit.distribution import env

__all__ = ["save_sharded", "load_sharded", "full_state_dict", "gathered_state_dict"]


def _weights_of(model) -> nn.Module:
    """The module holding `model`'s weights: a torchfit.Model's `weights_module`, the
    module a (Distributed)DataParallel wrapper holds, else `model` itself."""
    if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        return model.module
    return getattr(model, "weights_module", model)


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

    dcp.save({"model": _weights_of(model).state_dict()}, checkpoint_id=path)


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
    module = _weights_of(model)
    state = {"model": module.state_dict()}
    import torch.distributed.checkpoint as dcp

    dcp.load(state, checkpoint_id=path)
    module.load_state_dict(state["model"])


def full_state_dict(model) -> dict:
    """The whole, unsharded state_dict on the CPU (a collective under FSDP2: all ranks call it)."""
    return gathered_state_dict(_weights_of(model))


def gathered_state_dict(module) -> dict:
    """`module`'s whole state_dict, its FSDP2 shards gathered onto the CPU.

    Every rank must call it. With several ranks the full state lands on rank 0's
    CPU (`cpu_offload`); the other ranks receive an empty dict.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=env.world_size() > 1)
    return get_model_state_dict(module, options=options)
