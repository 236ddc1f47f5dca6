"""What a model does differently while it trains under torch.distributed.

Owns the `DistributedRun` a strategy gives a model as `model.distribution`, which
answers the questions of `SingleProcess` across ranks: the forward pass through
DDP, reducing metric states, agreeing on `stop_training` (between steps through
`stopping.py`), gathering `predict` outputs back into input order, gathering an
FSDP2 model's full weights, and the per-batch loss weight the sharded data sets.
Starting the process group belongs to `env.py`; wrapping the module (DDP,
FSDP2) to `strategies.py`; splitting the data to `sharding.py`.
"""

import os
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from torchfit import tree
from torchfit.distribution import checkpoint, env, sharding
from torchfit.distribution.single_process import SingleProcess, distribution_of
from torchfit.distribution.stopping import StopAgreement

__all__ = ["DistributedRun", "write_once"]


_OPS = {"sum": "SUM", "mean": "SUM", "max": "MAX", "min": "MIN"}


class DistributedRun(SingleProcess):
    """The distribution of one model across the ranks of torch.distributed (`model.distribution`).

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
        self.ddp_call = None  # the DistributedDataParallel module, if any
        self.sharded = False  # FSDP2: parameters are DTensor shards
        self.stopping = StopAgreement(self.world_size)
        # This rank's share of the current global batch's loss: the sharded data
        # sets it before each batch (see `sharding._batch_bounds`).
        self.loss_weight = 1.0

    # --------------------------------------------------------------- forward
    def call(self, model, *args, **kwargs):
        """One forward pass: through DDP while gradients are recorded (they are then
        averaged across ranks in the backward pass), else the module's own call."""
        if self.ddp_call is not None and torch.is_grad_enabled():
            return self.ddp_call(*args, **kwargs)
        return nn.Module.__call__(model, *args, **kwargs)

    def jit_target(self, call):
        """Under DDP, the wrapper is what `jit_compile` compiles, or gradients go unsynced."""
        return self.ddp_call if self.ddp_call is not None else call

    def release(self) -> None:
        """Drops the DDP wrapper, here and in the model's compiled forward (at exit,
        before the process group ends: `env._destroy_at_exit`)."""
        model, self.ddp_call = self.model, None
        model.use_distribution(SingleProcess())

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

    def metric_states(self, metrics: list) -> list:
        """CPU copies of the metric states summed over all ranks, leaving each rank's own
        (so one rank's restore covers everyone's); every rank must call it."""
        local = [[v.detach().clone() for v in metric.variables] for metric in metrics]
        self.reduce_metrics(metrics)
        summed = super().metric_states(metrics)
        with torch.no_grad():
            for values, metric in zip(local, metrics):
                for value, variable in zip(values, metric.variables):
                    variable.copy_(value)
        return summed

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

    def stops_after_step(self, model, step: int) -> bool:
        """The `stop_training` all ranks agree on after a training step (see `stopping.py`):
        one rank's stop stops all, a step later at most."""
        model.stop_training = self.stopping.after_step(model.stop_training, step)
        return model.stop_training

    def finish_train_epoch(self, model, step: int) -> None:
        """Agrees on `stop_training` once the epoch's steps are over, and makes the
        epoch's metric states the ones over all ranks."""
        model.stop_training = self.stopping.at_epoch_end(model.stop_training, step)
        self.reduce_metrics(model.metrics)

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

    # ----------------------------------------------------------------- files
    def state_dict_to_write(self, module: nn.Module) -> Optional[dict]:
        """FSDP2: `module`'s full state_dict, gathered by every rank (a collective: all
        ranks call it) onto rank 0's CPU. Whole parameters: `None`, the writer reads them."""
        return checkpoint.gathered_state_dict(module) if self.sharded else None


def write_once(write, model, filepath, *args, **kwargs) -> None:
    """Runs `write(model, filepath, ...)` on rank 0 only, then waits for every rank.

    Under torch.distributed every rank must call it (as an unchanged script
    does); the barrier makes the file visible to all ranks before any reads it.

    Raises:
        ValueError: For a model whose parameters are FSDP2 shards: no rank holds
            what `write` would read. Use `model.save_weights` (which gathers them)
            or `save_sharded`.
    """
    distribution = distribution_of(model)
    if distribution.sharded:  # decided alike on every rank, before any collective
        raise ValueError(SHARDED_SAVE_ERROR)
    distribution.write_once(write, model, filepath, *args, **kwargs)


SHARDED_SAVE_ERROR = (
    "model.save() of an FSDP-sharded model is not supported: use"
    " model.save_weights(path) for a full state_dict, or"
    " torchfit.distribution.save_sharded(model, folder)."
)


def describe_rank() -> str:
    """`rank R/W` for messages, from the environment."""
    return f"rank {env.rank()}/{env.world_size()} (pid {os.getpid()})"
