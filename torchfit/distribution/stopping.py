"""Stops every rank together when one rank asks to stop in the middle of an epoch.

Owns agreeing on `model.stop_training` between the training steps of a
distributed fit. A rank that sets it alone (TerminateOnNaN reading its own
loss, any callback) would otherwise leave the step loop while the others
wait in the next gradient all-reduce until the process group times out.
Each step's flag travels in an asynchronous all_reduce on a CPU Gloo group
(`env.control_group`) and is read one step later, so a step neither waits
for it nor syncs the device: a stop asked on some ranks stops every rank
one step later, and a stop asked on all ranks at one step stops there, as
in a single process. Agreeing at the end of an epoch (EarlyStopping and the
like) belongs to `run.py`; where the steps call this, to `loops.py`.
"""

from typing import NamedTuple, Optional

import torch
import torch.distributed as dist

from torchfit.distribution import env
from torchfit.utils.progbar import print_msg

__all__ = ["StopAgreement", "StopRequest", "describe_stop"]

_DEFAULT_REASON = "model.stop_training was set"


class StopRequest(NamedTuple):
    """Why one rank asked to stop: the batch, the reason, and whether to raise."""

    batch: int
    reason: str
    error: bool


def describe_stop(requests: list, world_size: int, batch: Optional[int]) -> str:
    """The message every rank shows when they stop together.

    Args:
        requests: One `StopRequest` (or `None`) per rank, by rank.
        world_size: How many ranks stop.
        batch: The last batch every rank trained, or `None` at an epoch's end.

    Example:
    >>> describe_stop([None, StopRequest(5, "Invalid loss, terminating training", False)], 2, 6)
    'Batch 5 on rank 1 of 2: Invalid loss, terminating training. Every rank stops after batch 6.'
    """
    where = "at the end of the epoch" if batch is None else f"after batch {batch}"
    asked = sorted((request.batch, rank) for rank, request in enumerate(requests) if request)
    if not asked:
        return f"A rank asked to stop. Every rank stops {where}."
    at, rank = asked[0]
    reason = requests[rank].reason.rstrip(".")
    others = sorted(other for _, other in asked[1:])
    also = f" (rank{'s' if len(others) > 1 else ''} {', '.join(map(str, others))} asked too)"
    return (
        f"Batch {at} on rank {rank} of {world_size}: {reason}. Every rank stops {where}"
        f"{also if others else ''}."
    )


class StopAgreement:
    """Agrees step by step whether every rank stops (one per `DistributedRun`).

    Args:
        world_size: The number of ranks.

    Example (asks are only recorded until the steps agree):
    >>> agreement = StopAgreement(world_size=2)
    >>> agreement.request(3, "Invalid loss, terminating training")
    >>> agreement.pending_request
    StopRequest(batch=3, reason='Invalid loss, terminating training', error=False)
    """

    def __init__(self, world_size: int):
        self.world_size = world_size
        self.pending_request: Optional[StopRequest] = None  # this rank's first ask, not yet settled
        self._in_flight = None  # (work, flags) of the last step's all_reduce
        self._settled = False  # the ranks agreed to stop in this epoch's steps

    def request(self, batch: int, reason: str, error: bool = False) -> None:
        """Records why this rank asks to stop (its first ask counts until the ranks agree)."""
        if self.pending_request is None:
            self.pending_request = StopRequest(int(batch), str(reason), bool(error))

    def after_step(self, asked: bool, batch: int) -> bool:
        """Whether every rank stops after this step; all ranks call it after every step.

        Args:
            asked: This rank's `model.stop_training`.
            batch: The step's index in the epoch.

        Returns:
            The agreed `stop_training`: true on every rank after the step
            following any rank's ask, or after this step when all asked here.

        Raises:
            RuntimeError: On every rank, when the ask came with `error=True`
                (TerminateOnNaN(raise_error=True)).
        """
        if asked:
            self.request(batch, _DEFAULT_REASON)
        flags = self._send(asked)
        previous, self._in_flight = self._in_flight, flags
        stop = previous is not None and self._received(previous) > 0
        if not stop and asked:
            # Only a rank that asked waits for this step's flags: if every rank
            # asked at this very step, they all stop here, as one process would.
            stop = self._received(flags) == self.world_size
        if stop:
            self._settle(batch)
        return stop

    def at_epoch_end(self, asked: bool, batch: int) -> bool:
        """Settles the asks of the epoch's last steps; all ranks call it once per epoch.

        Args:
            asked: This rank's `model.stop_training`.
            batch: The epoch's last step.

        Returns:
            The agreed `stop_training`. One small blocking all_reduce, unless
            the ranks already agreed to stop during the steps.
        """
        if self._settled:
            self._settled = False
            return True
        if asked:
            self.request(batch, _DEFAULT_REASON)
        count = self._received(self._send(asked))
        if self._in_flight is not None:
            count += self._received(self._in_flight)
        self._in_flight = None
        if count > 0:
            self._settle(None)
            self._settled = False
            return True
        return False

    # ------------------------------------------------------------- internals
    @staticmethod
    def _send(asked: bool) -> tuple:
        flags = torch.tensor([int(bool(asked))], dtype=torch.int64)
        return dist.all_reduce(flags, group=env.control_group(), async_op=True), flags

    @staticmethod
    def _received(in_flight: tuple) -> int:
        work, flags = in_flight
        work.wait()
        return int(flags[0])  # a CPU tensor: no device sync

    def _settle(self, batch: Optional[int]) -> None:
        """Every rank learns every ask, shows the same message, and stops (or raises)."""
        if self._in_flight is not None:
            self._received(self._in_flight)  # every rank sent it: leave nothing in flight
        self._in_flight = None
        self._settled = True
        requests: list = [None] * self.world_size
        dist.all_gather_object(requests, self.pending_request, group=env.control_group())
        self.pending_request = None
        message = describe_stop(requests, self.world_size, batch)
        if any(request is not None and request.error for request in requests):
            self._settled = False  # the fit ends here
            raise RuntimeError(message)
        print_msg(message)
