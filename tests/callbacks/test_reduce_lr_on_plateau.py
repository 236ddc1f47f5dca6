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
    callbacks = CallbackList(
        [callback, history], model=model, verbose=0, epochs=len(losses), steps=1
    )
    callbacks.on_train_begin()
    for epoch, loss in enumerate(losses):
        callbacks.on_epoch_end(epoch, {"loss": loss, "val_loss": loss})
    return history.history["learning_rate"]


def test_reduces_after_patience_and_logs_rate():
    rates = _run(
        ReduceLROnPlateau(factor=0.5, patience=2), [1.0, 1.0, 1.0, 1.0, 1.0], RateOptimizer(0.1)
    )
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


# (scores, patience, cooldown, min_lr, rate each epoch trains with), derived by hand from
# Keras 3's rule: at each epoch end the cooldown counter first drops (resetting the wait),
# then the epoch is judged; so `cooldown=c` leaves c - 1 epochs unjudged after a reduction
# (a counter dropping after the judgement would leave c, and reduce one epoch later).
COOLDOWN_CASES = [
    ([1.0] * 8, 2, 2, 0.0, [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]),
    ([1.0] * 6, 1, 1, 0.0, [1, 1, 0.5, 0.25, 0.125, 0.0625]),
    # An improvement inside the cooldown becomes the new best.
    ([1.0, 1.0, 0.5, 0.6, 0.7, 0.8], 1, 2, 0.0, [1, 1, 0.5, 0.5, 0.25, 0.25]),
    ([1.0] * 8, 2, 2, 0.3, [1, 1, 1, 0.5, 0.5, 0.5, 0.3, 0.3]),
]


@pytest.mark.parametrize("scores, patience, cooldown, min_lr, rates", COOLDOWN_CASES)
def test_real_fit_trains_with_the_reduced_rate(
    bias_fit, bias_steps, scripted, scores, patience, cooldown, min_lr, rates
):
    callback = ReduceLROnPlateau(
        monitor="score", mode="min", factor=0.5, patience=patience, cooldown=cooldown, min_lr=min_lr
    )
    model, history, snapshots = bias_fit([scripted(scores), callback], epochs=len(scores))
    # The bias gains the rate at each step: the epochs trained with these rates.
    assert bias_steps(snapshots) == pytest.approx(rates, rel=1e-5)
    assert history.history["learning_rate"] == pytest.approx(rates)
    assert model.optimizer.param_groups[0]["lr"] == pytest.approx(model.optimizer.learning_rate)


def test_state_dict_round_trip_continues_the_cooldown():
    callback = ReduceLROnPlateau(factor=0.5, patience=1, cooldown=3)
    optimizer = RateOptimizer(1.0)
    _run(callback, [1.0, 1.0], optimizer)  # reduced at the second epoch: cooling down
    state = callback.state_dict()
    assert state == {"best": 1.0, "wait": 0, "cooldown_counter": 3}
    resumed = ReduceLROnPlateau(factor=0.5, patience=1, cooldown=3)
    callbacks = CallbackList([resumed], model=FakeModel(optimizer), verbose=0, epochs=5, steps=1)
    callbacks.on_train_begin()
    resumed.load_state_dict(state)
    for epoch in (2, 3):
        callbacks.on_epoch_end(epoch, {"val_loss": 1.0})
    assert optimizer.learning_rate == 0.5  # still cooling down, as without the break
    callbacks.on_epoch_end(4, {"val_loss": 1.0})
    assert optimizer.learning_rate == 0.25


def test_real_fit_at_min_lr_reduces_no_more_and_says_nothing(
    bias_fit, bias_steps, scripted, capsys
):
    # The rate reaches min_lr after epoch 2; the plateau goes on, but a rate at
    # min_lr is not "reduced" again (Keras compares old_lr > min_lr).
    callback = ReduceLROnPlateau(
        monitor="score", mode="min", patience=1, factor=0.5, min_lr=0.25, verbose=1
    )
    _, history, snapshots = bias_fit([scripted([1.0] * 4), callback], epochs=4, learning_rate=0.5)
    assert bias_steps(snapshots) == [0.5, 0.5, 0.25, 0.25]
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert lines == ["Epoch 2: ReduceLROnPlateau reducing learning rate to 0.25."]
    assert callback.wait == 2  # still counting: no reduction reset it


def test_real_fit_reduces_silently_at_the_default_verbose(bias_fit, bias_steps, scripted, capsys):
    # verbose=0 (the default) reduces the rate without a word, as Keras (`verbose > 0`).
    callback = ReduceLROnPlateau(monitor="score", mode="min", patience=1, factor=0.5)
    _, _, snapshots = bias_fit([scripted([1.0] * 3), callback], epochs=3, learning_rate=0.5)
    assert bias_steps(snapshots) == [0.5, 0.5, 0.25]
    assert capsys.readouterr().out == ""
