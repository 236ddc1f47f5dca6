import pytest

from torchfit.callbacks import MonitorCallback


class Metric:
    def __init__(self, name, direction=None):
        self.name = name
        if direction:
            self._direction = direction


class FakeModel:
    def __init__(self, metrics=()):
        self.metrics = list(metrics)


def _monitor(monitor, mode="auto", metrics=(), min_delta=0):
    callback = MonitorCallback(monitor=monitor, mode=mode, min_delta=min_delta)
    callback.set_model(FakeModel(metrics))
    callback._set_monitor_op()
    return callback


@pytest.mark.parametrize(
    "monitor, improves",
    [
        ("val_loss", lambda cb: cb._is_improvement(0.1, 0.2)),
        ("loss", lambda cb: cb._is_improvement(0.1, 0.2)),
        ("val_accuracy", lambda cb: cb._is_improvement(0.9, 0.8)),
        ("output_a_auc", lambda cb: cb._is_improvement(0.9, 0.8)),
        ("mean_squared_error", lambda cb: cb._is_improvement(0.1, 0.2)),
        ("out_loss", lambda cb: cb._is_improvement(0.1, 0.2)),
    ],
)
def test_auto_mode_name_rule(monitor, improves):
    assert improves(_monitor(monitor))


def test_auto_mode_uses_metric_direction_first():
    # "accuracy" would be "up" by name; the metric says "down".
    callback = _monitor("val_my_accuracy", metrics=[Metric("my_accuracy", "down")])
    assert callback._is_improvement(0.1, 0.2)
    callback = _monitor("val_score", metrics=[Metric("score", "up")])
    assert callback._is_improvement(0.3, 0.2)


def test_auto_mode_unknown_direction_is_an_error():
    with pytest.raises(ValueError, match="mode='max'"):
        _monitor("val_score")


def test_explicit_modes_and_min_delta():
    assert _monitor("val_score", mode="max")._is_improvement(2, 1)
    callback = _monitor("val_score", mode="min", min_delta=0.5)
    assert not callback._is_improvement(0.8, 1.0)
    assert callback._is_improvement(0.4, 1.0)
    assert callback._is_improvement(5.0, None)


def test_unknown_mode_warns_and_falls_back():
    with pytest.warns(UserWarning, match="unknown"):
        callback = MonitorCallback(mode="minimum")
    assert callback.mode == "auto"


def test_missing_training_key_fails_fast_with_suggestions():
    callback = _monitor("accuracy")
    with pytest.raises(ValueError, match="Did you mean 'acc'") as info:
        callback.get_monitor_value({"acc": 0.5, "loss": 1.0})
    assert "Available keys: acc, loss" in str(info.value)


def test_missing_val_key_on_epoch_without_validation_only_warns():
    callback = _monitor("val_loss")
    with pytest.warns(UserWarning, match="val_loss"):
        assert callback.get_monitor_value({"loss": 1.0}) is None


def test_missing_val_key_when_validation_ran_fails():
    callback = _monitor("val_acc", mode="max")
    with pytest.raises(ValueError, match="val_accuracy"):
        callback.get_monitor_value({"loss": 1.0, "val_loss": 1.0, "val_accuracy": 0.5})
