"""Per-rank shares of global batches, and the single-process no-op."""

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit import distribution
from torchfit.distribution.sharding import _batch_bounds, local_batch_size, local_bounds


@pytest.mark.parametrize("start,stop,world", [(0, 64, 2), (64, 117, 2), (0, 7, 3), (10, 11, 4)])
def test_local_bounds_cover_the_batch_contiguously(start, stop, world):
    shares = [local_bounds(start, stop, rank, world) for rank in range(world)]
    assert shares[0][0] == start and shares[-1][1] == stop
    assert all(a[1] == b[0] for a, b in zip(shares, shares[1:]))
    sizes = [high - low for low, high in shares]
    assert max(sizes) - min(sizes) <= 1


def test_loss_weights_average_to_one_per_global_batch():
    bounds0 = _batch_bounds(117, 64, 0, 2)
    bounds1 = _batch_bounds(117, 64, 1, 2)
    assert [(low, high) for low, high, _ in bounds0] == [(0, 32), (64, 91)]
    assert [(low, high) for low, high, _ in bounds1] == [(32, 64), (91, 117)]
    for (_, _, w0), (_, _, w1) in zip(bounds0, bounds1):
        assert (w0 + w1) / 2 == pytest.approx(1.0)
    assert bounds0[1][2] == pytest.approx(27 * 2 / 53)


def test_indivisible_global_batch_is_a_clear_error():
    assert local_batch_size(64, 4) == 16
    with pytest.raises(
        ValueError, match=r"multiple of the world size.*batch_size=30.*batch_size=28"
    ):
        local_batch_size(30, 4)


def test_single_process_is_untouched():
    distribution.set_distribution(distribution.DataParallel())
    try:
        model = torchfit.Model(nn.Linear(3, 1), device="cpu")
        model.compile(optimizer="sgd", loss="mse")
        model.fit(np.ones((8, 3), "float32"), np.zeros((8, 1), "float32"), verbose=0)
        # Still the single-process distribution: no DistributedRun, so no DDP wrapper.
        assert type(model.distribution) is distribution.SingleProcess
        assert not torch.distributed.is_initialized()
    finally:
        distribution.set_distribution(None)


def test_set_distribution_rejects_other_objects():
    with pytest.raises(TypeError, match="DataParallel"):
        distribution.set_distribution("ddp")


def test_an_adapter_that_splits_by_rows_is_sharded_through_its_public_surface():
    from torchfit.data import DataAdapter
    from torchfit.distribution.sharding import shard_adapter

    class Rows(DataAdapter):  # none of torchfit's own adapters: only what `split_by` promises
        split_by, num_samples, batch_size, shuffle, num_batches = "rows", 11, 4, False, 3

        def row_batches(self, order, bounds):
            assert order is None
            return ((torch.arange(low, high),) for low, high in bounds)

    class RankZero:  # what a DistributedRun tells the sharding
        rank, world_size, sharded, loss_weight, model = 0, 2, False, 1.0, None

    run = RankZero()
    sharded = shard_adapter(Rows(), run, "fit")
    assert sharded.batch_size == 2
    seen = [(x.tolist(), run.loss_weight) for (x,) in sharded.get_iterator()]
    assert seen == [([0, 1], 1.0), ([4, 5], 1.0), ([8, 9], pytest.approx(2 * 2 / 3))]
    assert run.loss_weight == 1.0  # back to a whole batch's weight once the epoch is over
