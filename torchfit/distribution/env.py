"""Reads the torchrun environment and starts torch.distributed's process group.

Owns the process facts (world size, rank, local rank, which GPU a rank
drives), starting the process group when the user has not (NCCL on CUDA,
Gloo on CPU, with a timeout so a failed rank never leaves the others
waiting forever), and the few collectives every other part uses. What is
wrapped, sharded and reduced belongs to `strategies.py` and `sharding.py`.
"""

import atexit
import datetime
import gc
import os
import weakref
from typing import Optional

import torch
import torch.distributed as dist

__all__ = [
    "DEFAULT_TIMEOUT",
    "env_world_size",
    "is_initialized",
    "world_size",
    "rank",
    "local_rank",
    "is_chief",
    "initialize",
    "collective_device",
    "control_group",
    "barrier",
    "all_reduce_int",
    "broadcast_",
]

#: How long a collective waits for the other ranks before failing the job.
DEFAULT_TIMEOUT = datetime.timedelta(seconds=300)


def env_world_size() -> int:
    """The `WORLD_SIZE` torchrun set, or 1 outside torchrun."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def is_initialized() -> bool:
    """Whether a torch.distributed process group is running."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Processes in the running group (1 when none runs)."""
    return dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    """This process's rank in the running group (0 when none runs)."""
    return dist.get_rank() if is_initialized() else 0


def local_rank() -> int:
    """This process's index on its machine (`LOCAL_RANK`), 0 outside torchrun."""
    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        return 0


def is_chief() -> bool:
    """Whether this process prints and writes files (rank 0)."""
    return rank() == 0


def initialize(backend: Optional[str] = None, timeout: Optional[datetime.timedelta] = None) -> None:
    """Starts the process group from the torchrun environment, unless one runs.

    Args:
        backend: `"nccl"`, `"gloo"`, ... Defaults to NCCL when CUDA is
            available, else Gloo.
        timeout: How long a collective may wait. Defaults to `DEFAULT_TIMEOUT`.

    Raises:
        ValueError: When torch.distributed is unavailable, or the environment
            lacks what `init_process_group` needs (`MASTER_ADDR`, ...).
    """
    if is_initialized():
        return
    if not dist.is_available():
        raise ValueError("torch.distributed is not available in this build of torch.")
    missing = [
        name
        for name in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE")
        if name not in os.environ
    ]
    if missing:
        raise ValueError(
            f"Cannot start torch.distributed: the environment lacks {missing}. Launch the"
            " script with `torchrun --nproc_per_node=N script.py`, or call"
            " torch.distributed.init_process_group() yourself before fit()."
        )
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank() % torch.cuda.device_count())
    timeout = timeout or DEFAULT_TIMEOUT
    # The group torchfit starts, torchfit ends: a group (or store) left to
    # interpreter teardown can abort the process ("terminate called without
    # an active exception") after training has finished.
    atexit.register(_destroy_at_exit)
    attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    if attempt == 0:
        dist.init_process_group(backend, timeout=timeout)
        return
    # A group restarted by torchrun keeps its rendezvous keys apart from the
    # attempt it replaces: it must never read the addresses of dead processes.
    global _STORE
    rank_, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    hosts_store = rank_ == 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True"
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        world,
        is_master=hosts_store,
        timeout=timeout,
    )
    _STORE = dist.PrefixStore(f"torchfit/attempt_{attempt}", store)
    dist.init_process_group(backend, store=_STORE, rank=rank_, world_size=world, timeout=timeout)


_STORE = None  # the store of a restarted group, released with the group
_CONTROL = None  # (the default group, its control_group())
_RUNS: "weakref.WeakSet" = weakref.WeakSet()


def release_at_exit(run) -> None:
    """Lets the exit handler call `run.release()` (dropping its model's DDP wrapper)
    before the group ends."""
    _RUNS.add(run)


def _destroy_at_exit() -> None:
    # Gloo's worker threads must be joined while the interpreter still runs:
    # one woken during finalization tries to take the GIL and aborts the
    # process. They are joined when the last reference to the group goes, and
    # the DDP wrappers of the models hold such references: drop those first.
    global _STORE, _CONTROL
    _CONTROL = None  # its Gloo threads are joined with the group's
    for run in list(_RUNS):
        run.release()
    gc.collect()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _STORE = None
    gc.collect()


def collective_device() -> torch.device:
    """Where tensors handed to collectives must live (CUDA under NCCL)."""
    if is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def control_group():
    """A Gloo group over every rank for small host-side flags (made once per process group).

    Flags that steer the Python loop (stop now?) live on the CPU: sent
    through their own Gloo group they never wait for the GPU, whatever the
    main backend, and never interleave with the model's collectives. Every
    rank must make the first call at the same point, as for any new group.
    """
    global _CONTROL
    default = dist.group.WORLD
    if _CONTROL is None or _CONTROL[0] is not default:
        _CONTROL = (default, dist.new_group(backend="gloo"))
    return _CONTROL[1]


def barrier() -> None:
    """Waits for every rank (a no-op in a single process)."""
    if world_size() > 1:
        dist.barrier()


def all_reduce_int(value: int, op=None) -> int:
    """Reduces one Python int across ranks (SUM by default); one host sync."""
    tensor = torch.tensor([int(value)], dtype=torch.int64, device=collective_device())
    dist.all_reduce(tensor, op=op if op is not None else dist.ReduceOp.SUM)
    return int(tensor.item())


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrites `tensor` on every rank with rank `src`'s values; returns it."""
    device = collective_device()
    staged = tensor if tensor.device == device else tensor.to(device)
    dist.broadcast(staged, src=src)
    if staged is not tensor:
        tensor.copy_(staged)
    return tensor
