"""The distribution of a model in one process: the identity, asked by the core like any other."""

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit.distribution import SingleProcess, distribution_of


def test_every_answer_is_the_identity(capsys):
    single = SingleProcess()
    data, outputs = object(), object()
    assert single.shard(data, "fit") is data
    assert single.gather_predictions(outputs, data) is outputs
    assert single.agree(True) is True and single.agree(False) is False
    assert (single.rank, single.world_size, single.is_chief, single.sharded) == (0, 1, True, False)
    assert single.loss_weight == 1.0 and single.state_dict_to_write(nn.Linear(1, 1)) is None
    metric = torchfit.metrics.Mean()
    metric.update_state(torch.tensor([2.0, 4.0]))
    single.reduce_metrics([metric])
    ((total, count),) = single.metric_states([metric])
    assert (total.item(), count.item()) == (6.0, 2.0) and metric.result().item() == 3.0
    single.request_stop(4, "Invalid loss, terminating training")
    assert capsys.readouterr().out.strip() == "Batch 4: Invalid loss, terminating training"
    with pytest.raises(RuntimeError, match="NaN at batch 4"):
        single.request_stop(4, "NaN at batch 4", error=True)


def test_write_once_writes_here():
    written = []
    SingleProcess().write_once(written.append, "file")
    assert written == ["file"]


def test_a_model_asks_its_distribution_for_the_forward_call_and_the_loss_weight():
    class Halving(SingleProcess):
        """Calls through, counting, and weighs every batch's loss by one half."""

        loss_weight = 0.5

        def __init__(self):
            self.calls = 0

        def call(self, model, *args, **kwargs):
            self.calls += 1
            return nn.Module.__call__(model, *args, **kwargs)

    def step(distribution):
        torch.manual_seed(0)
        model = torchfit.Model(nn.Linear(2, 1), device="cpu")
        model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=1.0), loss="mse")
        before = [w.copy() for w in model.get_weights()]
        if distribution is not None:
            model.use_distribution(distribution)
        model.train_on_batch(np.ones((4, 2), "float32"), np.zeros((4, 1), "float32"))
        return [after - was for after, was in zip(model.get_weights(), before)]

    assert isinstance(torchfit.Model(nn.Linear(1, 1)).distribution, SingleProcess)
    halving = Halving()
    full, half = step(None), step(halving)
    assert halving.calls == 1
    for a, b in zip(full, half):  # SGD: half the loss is half the step
        np.testing.assert_allclose(b, a / 2, rtol=1e-6)


def test_distribution_of_an_object_without_one_is_a_single_process():
    assert type(distribution_of(nn.Linear(1, 1))) is SingleProcess
    model = torchfit.Model(nn.Linear(1, 1))
    assert distribution_of(model) is model.distribution
