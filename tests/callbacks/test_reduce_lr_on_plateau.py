import pytest
import torch

from torchfit.callbacks import CallbackList, History, ReduceLROnPlateau


class RateOptimizer:
    def __init__(self, learning_rate):
        self.learning_rate = learning_rate


class FakeModel:
    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.metrics = []
        self.stop_training = False


def _run(callback, losses, optimizer):
    history = History()
    model = FakeModel(optimizer)
    callbacks = CallbackList([callback, history], model=model, verbose=0, epochs=len(losses), steps=1)
    callbacks.on_train_begin()
    for epoch, loss in enumerate(losses):
        callbacks.on_epoch_end(epoch, {"loss": loss, "val_loss": loss})
    return history.history["learning_rate"]


def test_reduces_after_patience_and_logs_rate():
    rates = _run(ReduceLROnPlateau(factor=0.5, patience=2), [1.0, 1.0, 1.0, 1.0, 1.0], RateOptimizer(0.1))
    assert rates == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05])


def test_min_delta_is_absolute():
    # Improvements of 5e-5 are below min_delta=1e-4: they count as plateau.
    losses = [1.0, 0.99995, 0.9999, 0.99985]
    rates = _run(ReduceLROnPlateau(factor=0.1, patience=1), losses, RateOptimizer(1.0))
    assert rates == pytest.approx([1.0, 1.0, 0.1, 0.01])


def test_cooldown_and_min_lr():
    # Keras's order: the cooldown counter drops before the check, so
    # cooldown=2 leaves one epoch uncounted after a reduction (as Keras).
    callback = ReduceLROnPlateau(factor=0.5, patience=2, cooldown=2, min_lr=0.3)
    rates = _run(callback, [1.0] * 8, RateOptimizer(1.0))
    assert rates == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.3, 0.3])


def test_plain_torch_optimizer_sets_every_group(capsys):
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.2)
    _run(ReduceLROnPlateau(factor=0.5, patience=1, verbose=1), [1.0, 1.0], optimizer)
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.1]
    assert "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.1." in capsys.readouterr().out


def test_factor_must_be_below_one():
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(factor=1.0)
