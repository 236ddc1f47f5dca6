import numpy as np
import pytest

from torchfit.callbacks import CallbackList, EarlyStopping


class FakeModel:
    def __init__(self):
        self.stop_training = False
        self.metrics = []
        self.weights = [np.zeros(2)]

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [w.copy() for w in weights]


def _run(callback, losses, model=None, key="val_loss"):
    model = model or FakeModel()
    callbacks = CallbackList([callback], model=model, verbose=0, epochs=len(losses), steps=1)
    callbacks.on_train_begin()
    stopped_at = None
    for epoch, loss in enumerate(losses):
        model.weights = [np.full(2, float(epoch))]
        callbacks.on_epoch_end(epoch, {"loss": loss, key: loss})
        if model.stop_training:
            stopped_at = epoch
            break
    callbacks.on_train_end()
    return stopped_at, model


def test_patience_zero_stops_at_first_non_improvement():
    assert _run(EarlyStopping(), [1.0, 0.9, 0.95, 0.5])[0] == 2


def test_patience_counts_epochs_without_improvement():
    assert _run(EarlyStopping(patience=2), [1.0, 1.1, 1.2, 0.5])[0] == 2
    assert _run(EarlyStopping(patience=2), [1.0, 1.1, 0.5, 0.6, 0.7])[0] == 4


def test_never_stops_at_epoch_zero():
    assert _run(EarlyStopping(baseline=0.1), [1.0])[0] is None


def test_baseline_must_be_beaten():
    assert _run(EarlyStopping(baseline=0.5, patience=1), [0.9, 0.95, 0.7])[0] == 1


def test_improving_above_baseline_keeps_training_as_in_keras():
    assert _run(EarlyStopping(baseline=0.5, patience=1), [0.9, 0.8, 0.7])[0] is None


def test_min_delta_is_absolute():
    assert _run(EarlyStopping(min_delta=0.1), [1.0, 0.95])[0] == 1


def test_max_mode_and_start_from_epoch():
    stopper = EarlyStopping(monitor="val_acc", mode="max", start_from_epoch=2)
    assert _run(stopper, [0.9, 0.1, 0.5, 0.4], key="val_acc")[0] == 3


def test_restore_best_weights_at_train_end_even_without_stopping():
    stopped, model = _run(EarlyStopping(patience=5, restore_best_weights=True), [1.0, 0.2, 0.4])
    assert stopped is None
    np.testing.assert_array_equal(model.weights[0], [1.0, 1.0])


def test_verbose_messages(capsys):
    _run(EarlyStopping(verbose=1, restore_best_weights=True), [1.0, 2.0])
    out = capsys.readouterr().out
    assert "Epoch 2: early stopping" in out
    assert "Restoring model weights from the end of the best epoch: 1." in out


def test_reusable_across_fits():
    stopper = EarlyStopping()
    assert _run(stopper, [1.0, 2.0])[0] == 1
    assert _run(stopper, [5.0, 4.0, 3.0])[0] is None


def test_unknown_monitor_fails_fast():
    with pytest.raises(ValueError, match="Available keys"):
        _run(EarlyStopping(monitor="los"), [1.0])


def test_real_fit_stops_and_restores_best_weights():
    torch = pytest.importorskip("torch")
    import torchfit

    torch.manual_seed(0)
    x = np.random.default_rng(0).random((32, 3)).astype("float32")
    y = x.sum(1, keepdims=True)
    model = torchfit.Model(torch.nn.Sequential(torch.nn.Linear(3, 1)))
    # A huge learning rate makes the loss blow up after the first epoch.
    model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=5.0), loss="mse")
    stopper = EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
    history = model.fit(x, y, epochs=20, batch_size=8, verbose=0, callbacks=[stopper])
    assert len(history.history["loss"]) < 20
    assert stopper.stopped_epoch > 0
    best = int(np.argmin(history.history["loss"]))
    assert stopper.best_epoch == best
    np.testing.assert_allclose(model.get_weights()[0], stopper.best_weights[0])


# (scores, baseline, patience, epoch it stops at or None, best epoch), derived by hand
# from Keras 3's rule: `wait` grows every watched epoch; an improvement over the best
# resets it only if it also beats the baseline (strictly); training stops at an epoch
# without improvement once `wait >= patience`.
BASELINE_CASES = [
    # 0.5 equals the baseline, so it does not beat it (a `<=` rule resets and stops at 3).
    ([0.9, 0.5, 0.6, 0.7, 0.8], 0.5, 2, 2, 1),
    # Improving above the baseline still counts (counting only worse epochs never stops;
    # starting the best at the baseline, as tf.keras 2, stops at 1).
    ([0.9, 0.8, 0.85, 0.7, 0.6], 0.5, 2, 2, 1),
    # Beating the baseline resets the wait (`wait > patience` would stop at 4).
    ([0.9, 0.4, 0.45, 0.42, 0.41, 0.3], 0.5, 2, 3, 1),
    # Improving, though never below the baseline, never stops.
    ([0.9, 0.8, 0.7, 0.6, 0.55], 0.5, 1, None, 4),
]


@pytest.mark.parametrize("scores, baseline, patience, stop, best", BASELINE_CASES)
def test_real_fit_baseline_and_patience(bias_fit, scripted, scores, baseline, patience, stop, best):
    stopper = EarlyStopping(
        monitor="score", mode="min", baseline=baseline, patience=patience, restore_best_weights=True
    )
    model, history, snapshots = bias_fit([scripted(scores), stopper], epochs=len(scores))
    assert history.epoch == list(range(len(scores) if stop is None else stop + 1))
    assert stopper.stopped_epoch == (stop or 0)
    assert stopper.best_epoch == best
    # The weights of the best epoch are back, not the last epoch's.
    for restored, saved in zip(model.get_weights(), snapshots.weights[best]):
        np.testing.assert_array_equal(restored, saved)
    if best != history.epoch[-1]:
        assert model.get_weights()[1] != snapshots.weights[-1][1]


def test_real_fit_restores_best_weights_when_another_callback_stops(bias_fit, scripted):
    import torchfit

    class StopAtTwo(torchfit.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = epoch == 2

    stopper = EarlyStopping(monitor="score", mode="min", patience=10, restore_best_weights=True)
    model, history, snapshots = bias_fit(
        [scripted([3.0, 1.0, 2.0, 0.5]), stopper, StopAtTwo()], epochs=4
    )
    assert history.epoch == [0, 1, 2] and stopper.stopped_epoch == 0
    np.testing.assert_array_equal(model.get_weights()[1], snapshots.weights[1][1])
    assert snapshots.weights[1][1] != snapshots.weights[2][1]


def test_state_dict_round_trip_continues_the_wait():
    stopper = EarlyStopping(patience=2, restore_best_weights=True)
    _, model = _run(stopper, [1.0, 1.1])
    state = stopper.state_dict()
    resumed = EarlyStopping(patience=2, restore_best_weights=True)
    model = FakeModel()
    callbacks = CallbackList([resumed], model=model, verbose=0, epochs=4, steps=1)
    callbacks.on_train_begin()
    resumed.load_state_dict(state)
    callbacks.on_epoch_end(2, {"val_loss": 1.2})
    # Third epoch without improvement: stops now, as the uninterrupted run would.
    assert model.stop_training and resumed.stopped_epoch == 2
    assert resumed.best == 1.0 and resumed.best_epoch == 0
    np.testing.assert_array_equal(resumed.best_weights[0], [0.0, 0.0])


@pytest.mark.parametrize("verbose", [0, 1])
def test_real_fit_prints_keras_messages_at_verbose_1_only(bias_fit, scripted, capsys, verbose):
    stopper = EarlyStopping(
        monitor="score", mode="min", patience=1, verbose=verbose, restore_best_weights=True
    )
    _, history, _ = bias_fit([scripted([1.0, 2.0, 3.0]), stopper], epochs=3)
    assert history.epoch == [0, 1]
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    expected = [
        "Epoch 2: early stopping",
        "Restoring model weights from the end of the best epoch: 1.",
    ]
    assert lines == (expected if verbose else [])
