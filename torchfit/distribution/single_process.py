"""The distribution of a model that runs in one process: every answer is the identity.

Owns the questions the core (models/, loops.py, callbacks/) asks a model's
distribution, and their answers in one process: a forward pass is the module's
own call, a batch's loss weighs 1, the data and the outputs stay as they are,
metric states and stop flags are already every process's, and a file is written
here. `DistributedRun` (run.py) answers the same questions across the processes
of torch.distributed; choosing and attaching it belongs to `strategies.py`.
"""

from typing import Any, Optional

from torch import nn

from torchfit.distribution import env
from torchfit.utils.progbar import print_msg

__all__ = ["SingleProcess", "distribution_of"]


class SingleProcess:
    """How a model trains, evaluates, predicts and writes files in one process.

    Every `torchfit.Model` starts with one as `model.distribution`. Under
    torchrun, `fit`, `evaluate` and `predict` give the model a `DistributedRun`
    instead, which answers the same calls across processes; the loops and
    callbacks never ask which one they have. Here each call returns its input.

    Example:
    >>> single = SingleProcess()
    >>> single.agree(True), single.is_chief, single.loss_weight
    (True, True, 1.0)
    >>> data = [(1, 2)]
    >>> single.shard(data, "fit") is data
    True
    """

    #: This process's rank and the number of processes.
    rank: int = 0
    world_size: int = 1
    #: Whether this process prints and writes files (rank 0).
    is_chief: bool = True
    #: Whether the parameters are shards (FSDP2) rather than whole in each process.
    sharded: bool = False
    #: This process's share of the current batch's loss (see `DistributedRun`): all of it.
    loss_weight: float = 1.0

    #: `call(model, *args, **kwargs)`: one forward pass of `model`. Here the module's
    #: own call (`nn.Module.__call__`); DDP's wrapper while gradients are recorded under
    #: DataParallel, so that they are averaged across processes.
    call = staticmethod(nn.Module.__call__)

    def jit_target(self, call):
        """What `jit_compile=True` compiles: the model's own `call` here, DDP's wrapper under it."""
        return call

    def shard(self, adapter, purpose: str):
        """This process's share of the data `adapter` gives: all of it."""
        del purpose
        return adapter

    def reduce_metrics(self, metrics: list) -> None:
        """Replaces every metric state with its value over all processes: nothing to do."""
        del metrics

    def metric_states(self, metrics: list) -> list:
        """CPU copies of every metric's state, over all processes; the metrics are left as
        they are. `BackupAndRestore` keeps them in a backup taken in the middle of an epoch."""
        return [[v.detach().cpu().clone() for v in metric.variables] for metric in metrics]

    def agree(self, flag: bool) -> bool:
        """True on every process when it is true on any (the end-of-epoch `stop_training`)."""
        return flag

    def stops_after_step(self, model, step: int) -> bool:
        """Whether training stops after training step `step`: `model.stop_training`,
        as every process agrees on it."""
        del step
        return model.stop_training

    def finish_train_epoch(self, model, step: int) -> None:
        """Settles an epoch's `stop_training` and metric states across processes
        (`step` is the epoch's last): one process has nothing to settle."""
        del model, step

    def request_stop(self, batch: int, reason: str, error: bool = False) -> None:
        """Stops training, saying why: prints `Batch {batch}: {reason}`, or raises it.

        Args:
            batch: The batch where the stop was asked.
            reason: The message, e.g. "Invalid loss, terminating training".
            error: Raise a `RuntimeError` with `reason` instead. Defaults to `False`.

        Raises:
            RuntimeError: With `error=True`.
        """
        if error:
            raise RuntimeError(reason)
        print_msg(f"Batch {batch}: {reason}")

    def gather_predictions(self, outputs: Any, adapter) -> Any:
        """Every process's `predict` outputs in input order: these are all of them."""
        del adapter
        return outputs

    def state_dict_to_write(self, module: nn.Module) -> Optional[dict]:
        """`module`'s whole state_dict, for the process that writes files: `None` to let
        the writer read it from `module` (a `DistributedRun` gathers FSDP2 shards here)."""
        del module
        return None

    def write_once(self, write, *args, **kwargs) -> None:
        """Runs `write(*args, **kwargs)` once per job.

        In a lone process, here. When torch.distributed runs but this model is
        not distributed (a script that started the group itself), rank 0 writes
        and every rank waits, so that no rank reads a file not yet written.
        """
        if env.world_size() <= 1:
            write(*args, **kwargs)
            return
        if env.is_chief():
            write(*args, **kwargs)
        env.barrier()


_SINGLE_PROCESS = SingleProcess()


def distribution_of(model: Any) -> SingleProcess:
    """The distribution `model` runs under: its `distribution`, or a `SingleProcess`
    for an object that has none (a plain `nn.Module`, a stand-in model in a test).

    Example:
    >>> type(distribution_of(nn.Linear(1, 1))).__name__
    'SingleProcess'
    """
    distribution = getattr(model, "distribution", None)
    return distribution if isinstance(distribution, SingleProcess) else _SINGLE_PROCESS
