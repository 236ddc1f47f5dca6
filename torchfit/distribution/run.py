"""What a model does differently while it trains under torch.distributed.

Owns the `DistributedRun` a strategy attaches to a model as
`model._distribution`: reducing metric states across ranks, agreeing on
`stop_training` (between steps through `stopping.py`), gathering `predict` outputs
back into input order, and writing files once.
Starting the process group belongs to `env.py`; wrapping the module (DDP,
FSDP2) to `strategies.py`; splitting the data to `sharding.py`.
"""

import os
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from torchfit import tree
from torchfit.distribution import env, sharding
from torchfit.distribution.stopping import StopAgreement

__all__ = ["DistributedRun", "write_once"]


_OPS = {"sum": "SUM", "mean": "SUM", "max": "MAX", "min": "MIN"}


class DistributedRun:
    """The distribution state of one model (`model._distribution`).

    Args:
        strategy: The `DataParallel` or `ModelParallel` that attached it.
        model: The `torchfit.Model`.
    """

    def __init__(self, strategy, model):
        self.strategy = strategy
        self.model = model
        self.rank = env.rank()
        self.world_size = env.world_size()
        self.is_chief = self.rank == 0
        self.wrapped = None  # the DistributedDataParallel module, if any
        self.sharded = False  # FSDP2: parameters are DTensor shards
        self.stopping = StopAgreement(self.world_size)

    # ------------------------------------------------------------------ data
    def shard(self, adapter, purpose: str):
        """This rank's share of `adapter` (see `sharding.shard_adapter`)."""
        return sharding.shard_adapter(adapter, self, purpose)

    # --------------------------------------------------------------- metrics
    def reduce_metrics(self, metrics: list) -> None:
        """Replaces every metric's state with its value over all ranks.

        Called at the end of an epoch and of an evaluation, on every rank at
        the same point; one all_reduce per (dtype, operation) group.
        """
        groups: dict = {}
        for metric in metrics:
            variables = list(metric.variables)
            aggregations = list(getattr(metric, "aggregations", []) or [])
            if len(aggregations) != len(variables):
                aggregations = ["sum"] * len(variables)
            for variable, aggregation in zip(variables, aggregations):
                if aggregation in _OPS and variable.numel():
                    groups.setdefault((aggregation, variable.is_floating_point()), []).append(
                        variable
                    )
        device = env.collective_device()
        for (aggregation, floating), variables in groups.items():
            dtype = torch.float64 if floating else torch.int64
            flat = torch.cat(
                [v.detach().reshape(-1).to(device=device, dtype=dtype) for v in variables]
            )
            dist.all_reduce(flat, op=getattr(dist.ReduceOp, _OPS[aggregation]))
            if aggregation == "mean":
                flat /= self.world_size
            offset = 0
            with torch.no_grad():
                for variable in variables:
                    count = variable.numel()
                    variable.copy_(flat[offset : offset + count].reshape(variable.shape))
                    offset += count

    def agree(self, flag: bool) -> bool:
        """True on every rank when it is true on any rank (e.g. `stop_training`)."""
        return bool(env.all_reduce_int(int(bool(flag)), op=dist.ReduceOp.MAX))

    def request_stop(self, batch: int, reason: str, error: bool = False) -> None:
        """Asks every rank to stop training, saying why (shown on every rank).

        Args:
            batch: The batch where this rank asks.
            reason: The message, e.g. "Invalid loss, terminating training".
            error: Whether every rank raises a `RuntimeError` with the
                message instead of stopping. Defaults to `False`.
        """
        self.stopping.request(batch, reason, error)

    def agree_on_stop(self, asked: bool, batch: int) -> bool:
        """The `stop_training` all ranks agree on after a training step (see `stopping.py`)."""
        return self.stopping.after_step(asked, batch)

    def agree_on_stop_at_epoch_end(self, asked: bool, batch: int) -> bool:
        """The `stop_training` all ranks agree on once an epoch's steps are over."""
        return self.stopping.at_epoch_end(asked, batch)

    # --------------------------------------------------------------- predict
    def gather_predictions(self, outputs: Any, adapter) -> Any:
        """Every rank's outputs, in input order, on every rank (padding rows dropped)."""
        recorder = getattr(adapter, "recorder", None)
        if recorder is None or not recorder.enabled:
            return outputs
        leaves = tree.flatten(outputs)
        if not all(isinstance(leaf, np.ndarray) for leaf in leaves):
            return outputs  # a custom predict_step returning other objects: left per rank
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, (recorder.all_keys(), leaves))
        keys = np.concatenate([part[0] for part in gathered])
        order = np.argsort(keys, kind="stable")
        ordered_keys = keys[order]
        keep = (
            order[np.concatenate([[True], ordered_keys[1:] != ordered_keys[:-1]])]
            if len(keys)
            else order
        )
        joined = [
            np.concatenate([part[1][i] for part in gathered])[keep] for i in range(len(leaves))
        ]
        replacements = iter(joined)
        return tree.map_structure(lambda leaf: next(replacements), outputs)


def write_once(write, model, filepath, *args, **kwargs) -> None:
    """Runs `write(model, filepath, ...)` on rank 0 only, then waits for every rank.

    Under torch.distributed every rank must call it (as an unchanged script
    does); the barrier makes the file visible to all ranks before any reads it.
    """
    if env.world_size() <= 1:
        write(model, filepath, *args, **kwargs)
        return
    run = getattr(model, "_distribution", None)
    if run is not None and run.sharded:
        from torchfit.distribution import checkpoint

        checkpoint.save_full_weights(model, filepath, write)
    elif env.is_chief():
        write(model, filepath, *args, **kwargs)
    env.barrier()


def describe_rank() -> str:
    """`rank R/W` for messages, from the environment."""
    return f"rank {env.rank()}/{env.world_size()} (pid {os.getpid()})"
