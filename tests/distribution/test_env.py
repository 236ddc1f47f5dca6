"""Reading the torchrun environment in a single process."""

import pytest
import torch

from torchfit.distribution import env


def test_a_single_process_is_rank_zero_of_one(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert env.env_world_size() == 1
    assert env.world_size() == 1
    assert env.rank() == 0
    assert env.is_chief()
    env.barrier()  # a no-op without a process group


def test_initialize_without_torchrun_says_how_to_launch(monkeypatch):
    if env.is_initialized():
        pytest.skip("a process group is already running")
    for name in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="torchrun --nproc_per_node"):
        env.initialize()


def test_collectives_use_the_cpu_without_nccl():
    assert env.collective_device() == torch.device("cpu")
