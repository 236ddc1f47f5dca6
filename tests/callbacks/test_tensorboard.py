import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit.callbacks import Callback, CallbackList, TensorBoard

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


class CountingOptimizer(torch.optim.SGD):
    """A torch optimizer that also counts steps, like torchfit's."""

    def __init__(self, params):
        super().__init__(params, lr=0.05)
        self.iterations = 0


class FakeModel:
    def __init__(self, with_embedding=False):
        layers = (
            [nn.Embedding(5, 3), nn.Flatten(), nn.Linear(6, 1)]
            if with_embedding
            else [nn.Linear(2, 1)]
        )
        self.module = nn.Sequential(*layers)
        self.optimizer = CountingOptimizer(self.module.parameters())
        self.stop_training = False
        self.example_inputs = (
            torch.zeros(1, 2, dtype=torch.long) if with_embedding else torch.zeros(1, 2),
        )


def _fit(callback, model, epochs=2, steps=4, validate=True):
    callbacks = CallbackList([callback], model=model, verbose=0, epochs=epochs, steps=steps)
    callbacks.on_train_begin()
    logs = {}
    for epoch in range(epochs):
        callbacks.on_epoch_begin(epoch)
        for step in range(steps):
            callbacks.on_train_batch_begin(step)
            model.optimizer.iterations += 1
            callbacks.on_train_batch_end(step, {"loss": torch.tensor(1.0 / (step + 1)), "mae": 0.5})
        logs = {"loss": 1.0 - epoch / 10, "mae": 0.5}
        if validate:
            callbacks.on_test_begin()
            callbacks.on_test_batch_end(0, {"loss": 0.9})
            callbacks.on_test_end({"loss": 0.9 - epoch / 10})
            logs.update(val_loss=0.9 - epoch / 10)
        callbacks.on_epoch_end(epoch, logs)
    callbacks.on_train_end(logs)


def _scalars(folder):
    accumulator = event_accumulator.EventAccumulator(
        str(folder), size_guidance={"scalars": 0, "histograms": 0}
    )
    accumulator.Reload()
    return accumulator


def _values(accumulator, tag):
    return [(e.step, pytest.approx(e.value)) for e in accumulator.Scalars(tag)]


def test_epoch_scalars_in_train_and_validation(tmp_path):
    _fit(TensorBoard(log_dir=tmp_path), FakeModel())
    train, validation = _scalars(tmp_path / "train"), _scalars(tmp_path / "validation")
    assert set(train.Tags()["scalars"]) == {"epoch_loss", "epoch_mae", "epoch_learning_rate"}
    assert _values(train, "epoch_loss") == [(0, 1.0), (1, 0.9)]
    assert _values(train, "epoch_learning_rate") == [(0, 0.05), (1, 0.05)]
    assert "epoch_loss" in validation.Tags()["scalars"]
    assert _values(validation, "epoch_loss") == [(0, 0.9), (1, 0.8)]
    # Evaluation during fit is logged against the optimizer's step count.
    assert _values(validation, "evaluation_loss_vs_iterations") == [(4, 0.9), (8, 0.8)]


def test_batch_scalars_every_n_batches(tmp_path):
    _fit(
        TensorBoard(log_dir=tmp_path, update_freq=2, write_steps_per_second=True),
        FakeModel(),
        validate=False,
    )
    train = _scalars(tmp_path / "train")
    assert [step for step, _ in _values(train, "batch_loss")] == [2, 4, 6, 8]
    assert _values(train, "batch_loss")[0] == (2, 0.5)
    assert {"batch_steps_per_second", "epoch_steps_per_second"} <= set(train.Tags()["scalars"])
    assert not (tmp_path / "validation").exists()


def test_update_freq_batch_is_every_batch(tmp_path):
    _fit(TensorBoard(log_dir=tmp_path, update_freq="batch"), FakeModel(), epochs=1, validate=False)
    assert len(_scalars(tmp_path / "train").Scalars("batch_loss")) == 4


def test_epoch_update_freq_has_no_batch_hooks(tmp_path):
    callback = TensorBoard(log_dir=tmp_path)
    assert not callback._overrides("on_train_batch_end")
    assert not callback._overrides("on_train_batch_begin")


def test_histograms_images_and_graph(tmp_path):
    _fit(
        TensorBoard(log_dir=tmp_path, histogram_freq=1, write_images=True),
        FakeModel(),
        validate=False,
    )
    train = _scalars(tmp_path / "train")
    tags = train.Tags()
    assert set(tags["histograms"]) == {"0.weight/histogram", "0.bias/histogram"}
    assert [e.step for e in train.Histograms("0.weight/histogram")] == [0, 1]
    assert "0.weight/image" in tags["images"]
    assert tags["graph"]


def test_graph_skipped_quietly_without_example_inputs(tmp_path, recwarn):
    model = FakeModel()
    del model.example_inputs
    _fit(TensorBoard(log_dir=tmp_path), model, epochs=1, validate=False)
    assert not _scalars(tmp_path / "train").Tags()["graph"]
    assert not [w for w in recwarn if "TensorBoard" in str(w.message)]


def test_embeddings_written_for_embedding_modules(tmp_path):
    metadata = tmp_path / "labels.tsv"
    metadata.write_text("\n".join("abcde"))
    callback = TensorBoard(
        log_dir=tmp_path / "logs", embeddings_freq=1, embeddings_metadata={"0": str(metadata)}
    )
    _fit(callback, FakeModel(with_embedding=True), epochs=1, validate=False)
    config = (tmp_path / "logs" / "train" / "projector_config.pbtxt").read_text()
    assert "tensor_path" in config and "metadata_path" in config


def test_unknown_embedding_metadata_name(tmp_path):
    callback = TensorBoard(
        log_dir=tmp_path, embeddings_freq=1, embeddings_metadata={"nope": "x.tsv"}
    )
    with pytest.raises(ValueError, match="nope"):
        _fit(callback, FakeModel(with_embedding=True), epochs=1, validate=False)


def test_profile_batch_writes_a_torch_trace(tmp_path):
    _fit(TensorBoard(log_dir=tmp_path, profile_batch=(2, 3)), FakeModel(), epochs=1, validate=False)
    traces = [name for name in os.listdir(tmp_path / "train") if name.endswith(".pt.trace.json")]
    assert len(traces) == 1


@pytest.mark.parametrize("bad", [-1, (3, 2), "x", (1, 2, 3)])
def test_bad_profile_batch(bad):
    with pytest.raises(ValueError, match="profile_batch"):
        TensorBoard(profile_batch=bad)


def test_bad_update_freq():
    with pytest.raises(ValueError, match="update_freq"):
        TensorBoard(update_freq="step")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_real_tensorboard_server_serves_the_scalars(tmp_path):
    _fit(TensorBoard(log_dir=tmp_path), FakeModel())
    binary = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    if not os.path.exists(binary):
        pytest.skip("the tensorboard command is not installed next to this Python")
    port = _free_port()
    server = subprocess.Popen(
        [
            binary,
            "--logdir",
            str(tmp_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run=train&tag=epoch_loss"
        deadline = time.time() + 25
        points = None
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    points = json.loads(response.read())
                if points:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.3)
        assert points, "tensorboard did not serve the scalars in time"
        assert [(step, round(value, 5)) for _, step, value in points] == [(0, 1.0), (1, 0.9)]
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_real_fit_writes_keras_tags(tmp_path):
    import numpy as np

    import torchfit

    x = np.ones((8, 2), "float32")
    model = torchfit.Model(nn.Sequential(nn.Linear(2, 1)))
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    callback = TensorBoard(log_dir=tmp_path, histogram_freq=1, update_freq="batch")
    model.fit(
        x,
        x[:, :1],
        epochs=2,
        batch_size=4,
        verbose=0,
        validation_data=(x, x[:, :1]),
        callbacks=[callback],
    )
    train, validation = _scalars(tmp_path / "train"), _scalars(tmp_path / "validation")
    train_tags = set(train.Tags()["scalars"])
    assert {"epoch_loss", "epoch_learning_rate", "batch_loss"} <= train_tags
    assert [e.step for e in train.Scalars("epoch_loss")] == [0, 1]
    assert [e.step for e in train.Scalars("batch_loss")] == [1, 2, 3, 4]
    assert "epoch_loss" in validation.Tags()["scalars"]
    assert "0.weight/histogram" in train.Tags()["histograms"]
    assert train.Tags()["graph"]


@pytest.mark.parametrize("below", [False, True], ids=["file", "under_a_file"])
def test_log_dir_that_is_a_file_fails_before_training(tmp_path, bias_fit, below):
    import warnings

    (tmp_path / "taken").write_text("mine")
    log_dir = tmp_path / "taken" / "logs" if below else tmp_path / "taken"
    callback = TensorBoard(log_dir=str(log_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no misleading warning on the way
        with pytest.raises(ValueError, match="`log_dir`.*'.*taken'.* is a file"):
            bias_fit([callback], epochs=1)
    assert callback.model.optimizer.iterations == 0
    assert (tmp_path / "taken").read_text() == "mine"


def test_state_dict_continues_the_batch_steps(tmp_path):
    first = TensorBoard(log_dir=str(tmp_path), update_freq=1)
    _fit(first, FakeModel(), epochs=1, steps=3)
    resumed = TensorBoard(log_dir=str(tmp_path), update_freq=1)
    callbacks = CallbackList([resumed], model=FakeModel(), verbose=0, epochs=2, steps=3)
    callbacks.on_train_begin()
    resumed.load_state_dict(first.state_dict())
    callbacks.on_train_batch_end(0, {"loss": 0.5})
    callbacks.on_train_end()
    assert resumed.state_dict() == {"global_train_batch": 4}


# ------------------------------------------------------------ real fits: images
def _fixed_fit(module, weights, x, y, callback, epochs=1):
    """A fit that never moves the weights (learning rate 0), so the logs show `weights`."""
    model = torchfit.Model(module, device="cpu")
    model.compile(optimizer=torchfit.optimizers.SGD(learning_rate=0.0), loss="mse")
    model.set_weights([np.asarray(w, "float32") for w in weights])
    model.fit(x, y, batch_size=2, epochs=epochs, verbose=0, shuffle=False, callbacks=[callback])


def _grey_images(folder):
    """{tag: the image of the first event, as an (H, W) array of 0..255}."""
    image_module = pytest.importorskip("PIL.Image")
    accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={"images": 0})
    accumulator.Reload()
    images = {}
    for tag in accumulator.Tags()["images"]:
        event = accumulator.Images(tag)[0]
        pixels = np.array(image_module.open(io.BytesIO(event.encoded_image_string)))
        assert pixels.shape[:2] == (event.height, event.width)
        images[tag] = pixels[..., 0].astype(float) if pixels.ndim == 3 else pixels.astype(float)
    return images


def _assert_scaled(pixels, expected):
    """`pixels` shows `expected` scaled from its min..max to 0..255 (truncated)."""
    expected = np.asarray(expected, float)
    scaled = 255 * (expected - expected.min()) / (expected.max() - expected.min())
    assert pixels.shape == scaled.shape
    assert np.abs(pixels - scaled).max() <= 1.0, (pixels, scaled)


def test_real_fit_weight_images_span_the_grey_range_wide_side_across(tmp_path):
    tall = np.arange(6).reshape(3, 2) * 0.1 - 0.2  # 3x2: drawn transposed, 2 rows of 3
    square = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 80.0]])  # drawn as is
    bias = np.array([-3.0, 0.0, 9.0])
    module = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 3))
    x, y = np.ones((4, 2), "float32"), np.ones((4, 3), "float32")
    callback = TensorBoard(log_dir=tmp_path, histogram_freq=1, write_images=True, write_graph=False)
    _fixed_fit(module, [tall, bias, square, np.zeros(3)], x, y, callback)
    images = _grey_images(tmp_path / "train")
    _assert_scaled(images["0.weight/image"], tall.T)
    _assert_scaled(images["1.weight/image"], square)
    _assert_scaled(images["0.bias/image"], bias[:, None])  # a column, as in Keras
    assert not images["1.bias/image"].any()  # a constant weight is black, not NaN


def test_real_fit_conv_kernels_are_one_grey_image_each(tmp_path):
    # A Conv2d on one input channel has a (5, 1, 2, 2) weight: five 2x2 kernels,
    # drawn side by side as Keras draws each kernel as its own image. A 4-d
    # weight (the second Conv2d) cannot be drawn and is left out.
    kernels = np.arange(20).reshape(5, 1, 2, 2) ** 2 / 10.0
    module = nn.Sequential(nn.Conv2d(1, 5, 2), nn.Conv2d(5, 3, 2), nn.Flatten())
    weights = [kernels, np.zeros(5), np.zeros((3, 5, 2, 2)), np.zeros(3)]
    x, y = np.ones((4, 1, 3, 3), "float32"), np.ones((4, 3), "float32")
    callback = TensorBoard(log_dir=tmp_path, histogram_freq=1, write_images=True, write_graph=False)
    _fixed_fit(module, weights, x, y, callback)
    images = _grey_images(tmp_path / "train")
    assert "1.weight/image" not in images
    _assert_scaled(images["0.weight/image"], np.concatenate(list(kernels[:, 0]), axis=1))


# ----------------------------------------------------------- real fits: profiler
class _NamesItsCalls(nn.Module):
    """Each forward call runs inside a profiler range named `forward_<call number>`."""

    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(2, 1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        with torch.profiler.record_function(f"forward_{self.calls}"):
            return self.dense(x)


@pytest.mark.parametrize(
    "profile_batch, profiled",
    [
        ((2, 3), ["forward_2", "forward_3"]),
        ("2,3", ["forward_2", "forward_3"]),
        (3, ["forward_3"]),
        ("3", ["forward_3"]),
    ],
)
def test_real_fit_profiles_exactly_the_batches_asked_for(tmp_path, profile_batch, profiled):
    model = torchfit.Model(_NamesItsCalls(), device="cpu")
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((8, 2), "float32")
    callback = TensorBoard(log_dir=tmp_path, profile_batch=profile_batch, write_graph=False)
    model.fit(x, x[:, :1], batch_size=2, epochs=1, verbose=0, callbacks=[callback])  # 4 batches
    traces = [name for name in os.listdir(tmp_path / "train") if name.endswith(".pt.trace.json")]
    assert len(traces) == 1
    with open(tmp_path / "train" / traces[0]) as file:
        events = json.load(file)["traceEvents"]
    names = {event.get("name", "") for event in events}
    assert sorted(name for name in names if name.startswith("forward_")) == profiled


# --------------------------------------------------- real fits: steps per second
class _Clock(Callback):
    """Times of the hooks it sees; one before TensorBoard and one after bracket
    what TensorBoard measures."""

    def __init__(self):
        super().__init__()
        self.times = {}

    def _mark(self, hook):
        self.times.setdefault(hook, []).append(time.time())

    def on_epoch_begin(self, epoch, logs=None):
        self._mark("epoch_begin")

    def on_epoch_end(self, epoch, logs=None):
        self._mark("epoch_end")

    def on_train_batch_begin(self, batch, logs=None):
        self._mark("batch_begin")

    def on_train_batch_end(self, batch, logs=None):
        self._mark("batch_end")


class _SlowLinear(nn.Linear):
    """Each call takes at least `PAUSE` seconds."""

    PAUSE = 0.005

    def forward(self, x):
        time.sleep(self.PAUSE)
        return super().forward(x)


def test_real_fit_logs_steps_per_second_as_a_rate(tmp_path):
    # TensorBoard times each batch and epoch inside the span two clocks around it
    # see, and each batch holds a pause: rate >= steps / span, rate <= 1 / pause.
    model = torchfit.Model(_SlowLinear(2, 1), device="cpu")
    model.compile(optimizer="sgd", loss="mse")
    before, after = _Clock(), _Clock()
    callback = TensorBoard(
        log_dir=tmp_path, update_freq=1, write_steps_per_second=True, write_graph=False
    )
    x = np.ones((8, 2), "float32")
    model.fit(x, x[:, :1], batch_size=2, epochs=2, verbose=0, callbacks=[before, callback, after])
    train = _scalars(tmp_path / "train")
    per_batch = [event.value for event in train.Scalars("batch_steps_per_second")]
    spans = np.subtract(after.times["batch_end"], before.times["batch_begin"])
    assert len(per_batch) == len(spans) == 8
    for rate, span in zip(per_batch, spans):
        assert 0.999 / span <= rate <= 1.001 / _SlowLinear.PAUSE
    per_epoch = [event.value for event in train.Scalars("epoch_steps_per_second")]
    spans = np.subtract(after.times["epoch_end"], before.times["epoch_begin"])
    for rate, span in zip(per_epoch, spans):
        assert 4 * 0.999 / span <= rate <= 1.001 / _SlowLinear.PAUSE
