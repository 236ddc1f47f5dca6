"""Keras's distribution names on PyTorch's engine: DataParallel (DDP) and ModelParallel (FSDP2).

Owns choosing the distribution (the one set with `set_distribution`, else
DataParallel when torchrun started several processes), and attaching it to
a model: starting the process group, placing the model on its rank's GPU,
wrapping it in `DistributedDataParallel` or sharding it with
`torch.distributed.fsdp.fully_shard`. The user's module stays the one
trained and saved. What changes per step, epoch and file is `run.py`'s.
"""

import datetime
from collections.abc import Sequence
from typing import Any, Optional, Union

import torch
from torch import nn

from torchfit import optimizers
from torchfit.distribution import env
from torchfit.distribution.run import DistributedRun
from torchfit.distribution.single_process import SingleProcess

__all__ = ["DataParallel", "ModelParallel", "set_distribution", "distribution", "attach"]

_global_distribution = None


def _as_timeout(timeout: Union[None, float, datetime.timedelta]) -> Optional[datetime.timedelta]:
    if timeout is None or isinstance(timeout, datetime.timedelta):
        return timeout
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
        return datetime.timedelta(seconds=timeout)
    raise ValueError(
        f"`timeout` must be a number of seconds or a timedelta. Received: timeout={timeout!r}."
    )


class _ModelCall(nn.Module):
    """What DDP wraps: calls `nn.Module.__call__` on the model, so the model's
    own `__call__` (input routing, add_loss, autocast) is not run twice."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args, **kwargs):
        return nn.Module.__call__(self.model, *args, **kwargs)


class _Distribution:
    """Base: process group settings shared by DataParallel and ModelParallel."""

    def __init__(
        self, backend: Optional[str] = None, timeout: Union[None, float, datetime.timedelta] = None
    ):
        self.backend = backend
        self.timeout = _as_timeout(timeout)

    def attach(self, model) -> DistributedRun:
        """The run of this distribution for `model`: the one it has, or a new one.

        A new run starts the process group, moves the model to its rank's GPU and
        wraps or shards it; the model then uses it (`model.use_distribution`).
        """
        run = model.distribution
        if isinstance(run, DistributedRun) and run.strategy is self:
            return run
        if isinstance(run, DistributedRun):
            raise ValueError(
                "This model is already distributed by another distribution object;"
                " call set_distribution() once, before the first fit()."
            )
        env.initialize(self.backend, self.timeout)
        if torch.cuda.is_available() and env.collective_device().type == "cuda":
            device = torch.device("cuda", torch.cuda.current_device())
            if model.device != device:
                model.to(device)
        for metric in model.metrics:
            metric.to(model.device)
            inner = getattr(metric, "metric", None)
            if hasattr(inner, "sync_on_compute"):
                # torchmetrics would all_reduce inside compute(), i.e. whenever a
                # rank reads its logs; torchfit reduces at epoch end instead.
                inner.sync_on_compute = False
        run = DistributedRun(self, model)
        env.release_at_exit(run)
        self._wrap(model, run)
        return run

    def _wrap(self, model, run: DistributedRun) -> None:
        raise NotImplementedError


class DataParallel(_Distribution):
    """Data parallelism with `torch.nn.parallel.DistributedDataParallel`.

    Every rank holds the whole model and trains on its share of each global
    batch; gradients are averaged across ranks at each step. Used
    automatically when the script runs under `torchrun` with several
    processes; set it explicitly to pass options.

    Args:
        backend: Process group backend. Defaults to NCCL on CUDA, else Gloo.
        timeout: Seconds (or a timedelta) a collective waits for the other
            ranks before the job fails. Defaults to 300 seconds.
        **ddp_kwargs: Passed to `DistributedDataParallel`
            (`find_unused_parameters=True`, `bucket_cap_mb`, ...).

    Example:
    >>> from torchfit import distribution
    >>> distribution.set_distribution(distribution.DataParallel(timeout=60))
    >>> type(distribution.distribution()).__name__
    'DataParallel'
    >>> distribution.set_distribution(None)
    """

    def __init__(self, backend=None, timeout=None, **ddp_kwargs: Any):
        super().__init__(backend, timeout)
        self.ddp_kwargs = ddp_kwargs

    def _wrap(self, model, run: DistributedRun) -> None:
        from torch.nn.parallel import DistributedDataParallel

        device = model.device
        device_ids = [device] if device.type == "cuda" else None
        # Held by the run, out of the model's submodules, so that state_dict(),
        # parameters() and saved files are the user's own.
        run.ddp_call = DistributedDataParallel(
            _ModelCall(model), device_ids=device_ids, **self.ddp_kwargs
        )


class ModelParallel(_Distribution):
    """Shards parameters, gradients and optimizer state with FSDP2 (`fully_shard`).

    Each listed submodule (by default every direct child of the module that
    holds parameters) and then the whole module become FSDP units; each rank
    keeps a 1/world share of every parameter and gathers it for the forward
    and backward. Data is split per rank exactly as with `DataParallel`.
    Checkpoints: `torchfit.distribution.save_sharded`/`load_sharded`
    (torch.distributed.checkpoint, loadable at another world size);
    `save_weights` writes a full, plain state_dict.

    Args:
        modules: Submodules to shard as units. Defaults to the direct
            children that hold parameters.
        backend: Process group backend. Defaults to NCCL on CUDA, else Gloo.
        timeout: Seconds (or a timedelta) a collective waits. Defaults to 300.
        **fsdp_kwargs: Passed to `fully_shard` (`mp_policy`,
            `reshard_after_forward`, ...).
    """

    def __init__(
        self,
        modules: Optional[Sequence[nn.Module]] = None,
        backend=None,
        timeout=None,
        **fsdp_kwargs: Any,
    ):
        super().__init__(backend, timeout)
        self.modules = list(modules) if modules is not None else None
        self.fsdp_kwargs = fsdp_kwargs

    def _wrap(self, model, run: DistributedRun) -> None:
        from torch.distributed.fsdp import fully_shard

        root = model.weights_module
        if root is model:
            raise ValueError(
                "ModelParallel shards the module a Model wraps: build the model as"
                " torchfit.Model(my_module). Received a Model subclass without `module`."
            )
        optimizer = model.optimizer
        if optimizer is not None and optimizer.state:
            raise ValueError(
                "ModelParallel must shard the model before its first optimizer step;"
                " the optimizer already holds state. Call fit() on a fresh optimizer."
            )
        names = {id(p): name for name, p in model.named_parameters()}
        units = self.modules
        if units is None:
            units = [child for child in root.children() if any(True for _ in child.parameters())]
        for unit in units:
            fully_shard(unit, **self.fsdp_kwargs)
        fully_shard(root, **self.fsdp_kwargs)
        run.sharded = True
        if optimizer is not None:
            _rebind_optimizer(optimizer, names, dict(model.named_parameters()))


def _rebind_optimizer(optimizer, names: dict, parameters: dict) -> None:
    """Points an optimizer built before sharding at the sharded parameters."""
    for group in optimizer.param_groups:
        group["params"] = [parameters[names[id(p)]] for p in group["params"]]
    if isinstance(optimizer, optimizers.Optimizer):
        optimizer.forget_parameter_lookups()


def set_distribution(value: Optional[_Distribution]) -> None:
    """Sets the distribution every model's fit/evaluate/predict uses (`None` clears it).

    Raises:
        TypeError: For anything but DataParallel, ModelParallel or None.
    """
    global _global_distribution
    if value is not None and not isinstance(value, _Distribution):
        raise TypeError(
            "`set_distribution` expects torchfit.distribution.DataParallel(),"
            f" ModelParallel() or None. Received: {type(value).__name__}."
        )
    _global_distribution = value


def distribution() -> Optional[_Distribution]:
    """The distribution in effect: the one set, else DataParallel under a multi-process torchrun."""
    global _global_distribution
    if _global_distribution is None and (env.env_world_size() > 1 or env.world_size() > 1):
        _global_distribution = DataParallel()
    return _global_distribution


def attach(model) -> SingleProcess:
    """The distribution `model` runs under from now on: the run of the distribution in
    effect under torchrun (made on first use), its own `model.distribution` in one process."""
    strategy = distribution()
    if strategy is None or (env.env_world_size() <= 1 and not env.is_initialized()):
        return model.distribution  # one process: nothing to distribute
    return strategy.attach(model)
