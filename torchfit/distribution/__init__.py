"""Runs an unchanged torchfit script on several processes with torch.distributed.

Launch the script with `torchrun --nproc_per_node=N train.py`: torchfit reads
the torchrun environment, starts the process group (NCCL on CUDA, Gloo on
CPU) unless the script did, pins each rank to its `LOCAL_RANK` GPU, wraps
the model in DistributedDataParallel and splits every global batch across
the ranks. Set `ModelParallel()` to shard the model with FSDP2 instead.

Public names follow Keras (`DataParallel`, `ModelParallel`,
`set_distribution`, `distribution`); the engine is PyTorch's own. Every model
has a distribution (`model.distribution`): a `SingleProcess`, whose answers are
the identity, until torchrun gives it a `DistributedRun`.
"""

from torchfit.distribution.checkpoint import full_state_dict, load_sharded, save_sharded
from torchfit.distribution.env import barrier, is_chief, local_rank, rank, world_size
from torchfit.distribution.run import DistributedRun, write_once
from torchfit.distribution.single_process import SingleProcess, distribution_of
from torchfit.distribution.strategies import (
    DataParallel,
    ModelParallel,
    attach,
    distribution,
    set_distribution,
)

__all__ = [
    "DataParallel",
    "ModelParallel",
    "set_distribution",
    "distribution",
    "save_sharded",
    "load_sharded",
    "full_state_dict",
    "rank",
    "world_size",
    "local_rank",
    "is_chief",
    "barrier",
    "attach",
    "write_once",
    "DistributedRun",
    "SingleProcess",
    "distribution_of",
]
