import math

import pytest
import torch

from torchfit.callbacks import CallbackList, TerminateOnNaN
from torchfit.logs import BatchLogs


class FakeModel:
    stop_training = False


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_stops_training_on_bad_loss(bad, capsys):
    model = FakeModel()
    callbacks = CallbackList([TerminateOnNaN()], model=model)
    callbacks.on_train_batch_end(0, BatchLogs(lambda: {"loss": torch.tensor(1.0)}))
    assert not model.stop_training
    callbacks.on_train_batch_end(1, BatchLogs(lambda: {"loss": torch.tensor(bad)}))
    assert model.stop_training
    assert "Batch 1: Invalid loss, terminating training" in capsys.readouterr().out


def test_raise_error_names_the_batch():
    callbacks = CallbackList([TerminateOnNaN(raise_error=True)], model=FakeModel())
    with pytest.raises(RuntimeError, match="at batch 7"):
        callbacks.on_train_batch_end(7, {"loss": float("nan")})


def test_no_loss_key_is_ignored():
    model = FakeModel()
    CallbackList([TerminateOnNaN()], model=model).on_train_batch_end(0, {"acc": math.nan})
    assert not model.stop_training


def test_real_fit_raises_on_nan_input():
    import numpy as np

    import torchfit

    x = np.ones((8, 2), "float32")
    x[5] = np.nan
    model = torchfit.Model(torch.nn.Sequential(torch.nn.Linear(2, 1)))
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(RuntimeError, match="batch 1"):
        model.fit(
            x,
            x[:, :1],
            epochs=1,
            batch_size=4,
            shuffle=False,
            verbose=0,
            callbacks=[TerminateOnNaN(raise_error=True)],
        )


def test_a_bad_loss_asks_the_models_distribution_to_stop_every_process():
    from torchfit.distribution import SingleProcess

    class Recording(SingleProcess):  # as a DistributedRun: the stop is settled later, by all
        def __init__(self):
            self.requests = []

        def request_stop(self, batch, reason, error=False):
            self.requests.append((batch, reason, error))

    for raise_error in (False, True):
        model = FakeModel()
        model.distribution = Recording()
        callbacks = CallbackList([TerminateOnNaN(raise_error=raise_error)], model=model)
        callbacks.on_train_batch_end(3, {"loss": math.nan})  # neither prints nor raises here
        ((batch, reason, error),) = model.distribution.requests
        assert (batch, error) == (3, raise_error) and model.stop_training
        assert ("at batch 3" in reason) == raise_error
