"""The event order of fit/evaluate/predict is a contract: Keras 3's, exactly."""

import collections
import dataclasses
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit.callbacks import Callback
from torchfit.logs import BatchLogs

HOOKS = [
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_test_begin",
    "on_test_end",
    "on_predict_begin",
    "on_predict_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
]


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.events = []


def _recording_hook(name):
    def hook(self, *args, **kwargs):
        index = [a for a in args if isinstance(a, int) and not isinstance(a, bool)]
        self.events.append(f"{name}:{index[0]}" if index else name)

    return hook


for _name in HOOKS:
    setattr(Recorder, _name, _recording_hook(_name))


def _model():
    torch.manual_seed(0)
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    model.compile(optimizer="sgd", loss="mse")
    return model


# Recorded from Keras 3.15 (torch backend) with the same fit call.
KERAS_FIT_EVENTS = [
    "on_train_begin",
    "on_epoch_begin:0",
    "on_train_batch_begin:0",
    "on_train_batch_end:0",
    "on_train_batch_begin:1",
    "on_train_batch_end:1",
    "on_test_begin",
    "on_test_batch_begin:0",
    "on_test_batch_end:0",
    "on_test_end",
    "on_epoch_end:0",
    "on_epoch_begin:1",
    "on_train_batch_begin:0",
    "on_train_batch_end:0",
    "on_train_batch_begin:1",
    "on_train_batch_end:1",
    "on_test_begin",
    "on_test_batch_begin:0",
    "on_test_batch_end:0",
    "on_test_end",
    "on_epoch_end:1",
    "on_train_end",
]


def test_fit_with_validation_calls_every_hook_in_keras_order():
    x = np.zeros((4, 3), "float32")
    y = np.zeros((4, 1), "float32")
    recorder = Recorder()
    _model().fit(
        x,
        y,
        batch_size=2,
        epochs=2,
        validation_data=(x[:2], y[:2]),
        callbacks=[recorder],
        verbose=0,
    )
    assert recorder.events == KERAS_FIT_EVENTS


def test_evaluate_and_predict_hook_order():
    x = np.zeros((4, 3), "float32")
    y = np.zeros((4, 1), "float32")
    model = _model()
    recorder = Recorder()
    model.evaluate(x, y, batch_size=2, callbacks=[recorder], verbose=0)
    assert recorder.events == [
        "on_test_begin",
        "on_test_batch_begin:0",
        "on_test_batch_end:0",
        "on_test_batch_begin:1",
        "on_test_batch_end:1",
        "on_test_end",
    ]
    recorder.events.clear()
    model.predict(x, batch_size=4, callbacks=[recorder], verbose=0)
    assert recorder.events == [
        "on_predict_begin",
        "on_predict_batch_begin:0",
        "on_predict_batch_end:0",
        "on_predict_end",
    ]


def test_batch_logs_are_lazy_and_epoch_logs_are_floats():
    seen = {}

    class Peek(Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.setdefault("batch", logs)

        def on_epoch_end(self, epoch, logs=None):
            seen["epoch"] = logs

    x = np.random.rand(8, 3).astype("float32")
    y = np.random.rand(8, 1).astype("float32")
    _model().fit(x, y, batch_size=4, callbacks=[Peek()], verbose=0)
    assert isinstance(seen["batch"], BatchLogs)
    assert isinstance(seen["epoch"]["loss"], float)


def test_epoch_loss_is_batch_size_weighted_mean():
    # With a zero learning rate the weights never move, so the epoch loss must
    # equal the loss over all 5 samples, although the batches are 2, 2 and 1.
    model = torchfit.Model(nn.Linear(3, 1), device="cpu")
    model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=0.0), loss="mse")
    x = np.random.rand(5, 3).astype("float32")
    y = np.random.rand(5, 1).astype("float32")
    history = model.fit(x, y, batch_size=2, shuffle=False, verbose=0)
    with torch.no_grad():
        pred = model.module(torch.from_numpy(x))
        expected = float(((pred - torch.from_numpy(y)) ** 2).mean())
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)


_HOST_CONVERSIONS = [
    "item",
    "tolist",
    "cpu",
    "numpy",
    "__float__",
    "__int__",
    "__bool__",
    "__index__",
]


def _count_host_conversions(monkeypatch, run):
    counts = {"n": 0}
    for name in _HOST_CONVERSIONS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            counts["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    run()
    monkeypatch.undo()
    return counts["n"]


class _AddsTensorLogs(torchfit.Model):
    """A custom step that adds device tensors to super()'s logs."""

    def train_step(self, data):
        logs = super().train_step(data)
        logs["scale"] = self.module[0].weight.detach().abs().mean()
        return logs


@pytest.mark.parametrize(
    "verbose, model_class", [(0, torchfit.Model), (2, torchfit.Model), (0, _AddsTensorLogs)]
)
def test_training_steps_never_copy_values_to_the_host(monkeypatch, verbose, model_class, capsys):
    # The number of tensor-to-host conversions of a fit must not grow with the
    # number of steps: values cross only at epoch end (and at progress redraws,
    # which verbose=2 does not do mid-epoch), also for keys a custom step adds.
    def fit(num_samples):
        torch.manual_seed(0)
        model = model_class(
            nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)), device="cpu"
        )
        model.compile(
            optimizer="rmsprop",
            loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        x = np.random.rand(num_samples, 8).astype("float32")
        y = np.random.randint(0, 3, num_samples)
        # Build the metrics first so that one-off work is not counted.
        model.fit(x[:4], y[:4], batch_size=4, verbose=0)
        return lambda: model.fit(x, y, batch_size=4, epochs=1, verbose=verbose)

    few = _count_host_conversions(monkeypatch, fit(16))
    many = _count_host_conversions(monkeypatch, fit(400))
    assert few == many


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_step_does_not_synchronize():
    model = torchfit.Model(
        nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)), device="cuda"
    )
    model.compile(
        optimizer="rmsprop",
        loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    x = torch.rand(64, 8, device="cuda")
    y = torch.randint(0, 3, (64,), device="cuda")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # builds metrics, optimizer state
    iterator = iter([(x[i : i + 8], y[i : i + 8]) for i in range(0, 64, 8)])
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for batch in iterator:
            model.train_step(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_fit_starts_at_the_resume_point_skips_its_trained_batches_and_clears_it():
    from torchfit.callbacks.backup_and_restore import ResumePoint

    class Steps(torchfit.Model):
        def __init__(self):
            super().__init__(nn.Linear(1, 1), device="cpu")
            self.trained = []

        def train_step(self, data):
            self.trained.append(data[0][:, 0].tolist())
            return super().train_step(data)

    model = Steps()
    model.compile("sgd", "mse")
    x, y = np.arange(8.0, dtype="float32")[:, None], np.zeros((8, 1), "float32")
    resumed = []
    model.resume_point = ResumePoint(epoch=1, skip_batches=3, on_resumed=resumed.append)
    history = model.fit(x, y, batch_size=2, epochs=3, shuffle=False, verbose=0)
    assert history.epoch == [1, 2]
    assert model.trained == [[6.0, 7.0], [0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]]
    assert [batch[0][:, 0].tolist() for batch in resumed] == [[6.0, 7.0]]
    assert model.resume_point is None  # read once: the next fit starts where it is told
    assert model.fit(x, y, batch_size=8, epochs=1, verbose=0).epoch == [0]


# ------------------------------------------------------------ epochs of a fit
def _zero_linear(learning_rate=0.0, **optimizer_kwargs):
    module = nn.Linear(1, 1)
    with torch.no_grad():
        module.weight.zero_()
        module.bias.zero_()
    model = torchfit.Model(module, device="cpu")
    optimizer = torchfit.optimizers.SGD(learning_rate=learning_rate, **optimizer_kwargs)
    model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    return model


def _four_batches():
    for target in (1.0, 3.0, 5.0, 7.0):
        yield np.zeros((2, 1), "float32"), np.full((2, 1), target, "float32")


def test_each_epoch_logs_its_own_average_not_the_run_so_far():
    # The weights never move (learning rate 0, prediction 0) and the generator
    # goes on across epochs: epoch 1 sees targets 1 and 3, epoch 2 sees 5 and 7.
    # Metrics carried over from epoch 1 would log a loss of 21 for epoch 2.
    history = _zero_linear().fit(
        _four_batches(), steps_per_epoch=2, epochs=2, shuffle=False, verbose=0
    )
    assert history.history["loss"] == pytest.approx([5.0, 37.0])
    assert history.history["mae"] == pytest.approx([2.0, 6.0])


def test_fit_of_no_epochs_leaves_the_weights_alone_with_ema():
    # Keras copies the EMA weights into the model at the end of a fit that ran
    # epochs; a fit of 0 epochs changes nothing, even when the moving averages
    # (from an earlier fit) differ from the weights.
    model = _zero_linear(learning_rate=0.1, use_ema=True, ema_momentum=0.5)
    x = np.ones((4, 1), "float32")
    model.fit(x, 3 * x, batch_size=2, epochs=1, verbose=0)
    model.set_weights([np.full((1, 1), 7.0, "float32"), np.full((1,), -7.0, "float32")])
    model.fit(x, 3 * x, batch_size=2, epochs=0, verbose=0)
    weight, bias = model.get_weights()
    assert weight.tolist() == [[7.0]] and bias.tolist() == [-7.0]


class _SeesBatches(nn.Module):
    """Linear on the second feature; records the first (a sample index) of each
    training batch."""

    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(1, 1)
        self.seen = []

    def forward(self, x):
        if self.training:
            self.seen.append(x[:, 0].tolist())
        return self.dense(x[:, 1:])


class _CrashAfter(Callback):
    def __init__(self, iterations):
        super().__init__()
        self.iterations = iterations

    def on_train_batch_end(self, batch, logs=None):
        if self.model.optimizer.iterations == self.iterations:
            raise KeyboardInterrupt("crash")


def _fit_seeing_batches(backup_dir, crash_after=None):
    torchfit.utils.set_random_seed(5)
    x = np.stack([np.arange(24), np.random.rand(24)], axis=1).astype("float32")
    module = _SeesBatches()
    model = torchfit.Model(module, device="cpu")
    model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=0.1, momentum=0.9), loss="mse")
    callbacks = [torchfit.callbacks.BackupAndRestore(backup_dir, save_freq=1)]
    if crash_after is not None:
        callbacks.append(_CrashAfter(crash_after))
    try:
        model.fit(x, 2 * x[:, 1:], batch_size=4, epochs=2, verbose=0, callbacks=callbacks)
    except KeyboardInterrupt:
        pass
    return module


def test_resumed_fit_trains_every_remaining_batch_exactly_once(tmp_path):
    # 6 batches per epoch. The run crashes after the 8th step (the 2nd batch of
    # epoch 2), whose backup was not written yet: the resumed run restarts
    # after the 7th step and must train batches 2 to 6 of epoch 2, no fewer.
    reference = _fit_seeing_batches(tmp_path / "reference")
    crashed = _fit_seeing_batches(tmp_path / "run", crash_after=8)
    assert crashed.seen == reference.seen[:8]
    resumed = _fit_seeing_batches(tmp_path / "run")
    assert resumed.seen == reference.seen[7:]
    for name, value in reference.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name


def test_a_generator_used_up_by_the_last_epoch_ends_the_fit_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = _zero_linear().fit(
            _four_batches(), steps_per_epoch=2, epochs=2, shuffle=False, verbose=0
        )
    assert history.epoch == [0, 1]


def test_a_generator_used_up_before_the_last_epoch_warns_and_stops():
    with pytest.warns(UserWarning, match="ran out of data; interrupting training"):
        history = _zero_linear().fit(
            _four_batches(), steps_per_epoch=2, epochs=3, shuffle=False, verbose=0
        )
    assert history.epoch == [0, 1]


# ------------------------------------------------ predict: one container rule
_Heads = collections.namedtuple("_Heads", "score probs cache")


@dataclasses.dataclass
class _HeadsDC:
    score: torch.Tensor
    probs: torch.Tensor
    cache: object = None


@dataclasses.dataclass
class _ModelOutput(collections.OrderedDict):
    """Like a Hugging Face `ModelOutput`: a dataclass and a dict of its non-None entries."""

    loss: torch.Tensor = None
    score: torch.Tensor = None
    probs: torch.Tensor = None
    cache: object = None

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if getattr(self, field.name) is not None:
                self[field.name] = getattr(self, field.name)


class _Structured(nn.Module):
    def __init__(self, make):
        super().__init__()
        self.dense = nn.Linear(3, 4)
        self.make = make

    def forward(self, x):
        out = self.dense(x)
        return self.make(out[:, :1], out[:, 1:], object())


_MAKERS = {
    "namedtuple": _Heads,
    "dataclass": _HeadsDC,
    "ModelOutput": lambda score, probs, cache: _ModelOutput(score.sum(), score, probs, cache),
}


@pytest.mark.parametrize("kind", sorted(_MAKERS))
@pytest.mark.parametrize("batch_size", [4, 10])  # three batches, one batch
def test_predict_returns_one_container_whatever_the_number_of_batches(kind, batch_size):
    torch.manual_seed(0)
    model = torchfit.Model(_Structured(_MAKERS[kind]), device="cpu")
    x = np.random.default_rng(0).normal(size=(10, 3)).astype("float32")
    predictions = model.predict(x, batch_size=batch_size, verbose=0)
    expected = model.module.dense(torch.from_numpy(x)).detach().numpy()
    if kind == "namedtuple":  # the namedtuple, with arrays; the cache becomes None
        assert type(predictions) is _Heads and predictions.cache is None
        predictions = predictions._asdict()
        del predictions["cache"]
    assert type(predictions) is dict and list(predictions) == ["score", "probs"]  # no loss
    np.testing.assert_allclose(predictions["score"], expected[:, :1], rtol=1e-6)
    np.testing.assert_allclose(predictions["probs"], expected[:, 1:], rtol=1e-6)


def test_on_predict_batch_end_receives_the_container_predict_returns():
    seen = []

    class Outputs(Callback):
        def on_predict_batch_end(self, batch, logs=None):
            seen.append(type(logs["outputs"]))

    model = torchfit.Model(_Structured(_MAKERS["ModelOutput"]), device="cpu")
    model.compile(steps_per_execution=2)
    model.predict(np.zeros((6, 3), "float32"), batch_size=2, verbose=0, callbacks=[Outputs()])
    assert seen == [dict, dict]  # a group of two steps, then the last step alone
