"""The Keras guide's "Visualizing loss and metrics during training" section, as torchfit twins.

Source: the "Training & evaluation with the built-in methods" guide, "Using
the TensorBoard callback": live plots of the loss and metrics for training
and evaluation, optional histograms of the weights, optional embeddings, and
`update_freq`. The event files are read back with TensorBoard's own
`EventAccumulator`, as the TensorBoard app reads them. The guide's MNIST MLP
becomes the same MLP on the bundled 8x8 digits; `keras.` becomes
`torchfit.`.
"""

import os

import numpy as np
import pytest
from torch import nn

import torchfit
from torchfit.datasets import digits

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

STEPS_PER_EPOCH = 18  # 1149 training samples (validation_split=0.2 of 1437) in batches of 64
METRICS = ["loss", "sparse_categorical_accuracy"]


def _load(dtype="float32"):
    (x_train, y_train), _ = digits.load_data()
    x_train = x_train.reshape(-1, 64)
    x_train = x_train.astype("float32") / 16 if dtype == "float32" else x_train.astype("int64")
    return x_train, y_train.astype("int64")


def get_compiled_model(net=None):
    if net is None:
        net = nn.Sequential(
            nn.Linear(64, 64),
            nn.ReLU(),
            nn.Linear(64, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
            nn.Softmax(dim=-1),
        )
    model = torchfit.Model(net, device="cpu")
    model.compile(
        optimizer="rmsprop",
        loss="sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    return model


def _fit(callback, model=None, x_dtype="float32", epochs=2):
    torchfit.utils.set_random_seed(0)
    x_train, y_train = _load(x_dtype)
    model = model if model is not None else get_compiled_model()
    history = model.fit(
        x_train,
        y_train,
        batch_size=64,
        epochs=epochs,
        validation_split=0.2,
        callbacks=[callback],
        verbose=0,
    )
    return model, history


def _read(folder):
    accumulator = event_accumulator.EventAccumulator(
        str(folder), size_guidance={event_accumulator.SCALARS: 0, event_accumulator.HISTOGRAMS: 0}
    )
    accumulator.Reload()
    return accumulator


def _steps_and_values(accumulator, tag):
    events = accumulator.Scalars(tag)
    return [event.step for event in events], [event.value for event in events]


def test_guide_tensorboard_callback_writes_epoch_plots_for_training_and_evaluation(tmp_path):
    log_dir = str(tmp_path / "full_path_to_your_logs")
    callback = torchfit.callbacks.TensorBoard(
        log_dir=log_dir,
        histogram_freq=0,  # How often to log histogram visualizations
        embeddings_freq=0,  # How often to log embedding visualizations
        update_freq="epoch",
    )  # How often to write logs (default: once per epoch)
    _, history = _fit(callback)

    assert sorted(os.listdir(log_dir)) == ["train", "validation"]
    train, validation = (
        _read(os.path.join(log_dir, "train")),
        _read(os.path.join(log_dir, "validation")),
    )
    assert sorted(train.Tags()["scalars"]) == ["epoch_learning_rate"] + [
        f"epoch_{m}" for m in METRICS
    ]
    assert sorted(validation.Tags()["scalars"]) == sorted(
        [f"epoch_{m}" for m in METRICS] + [f"evaluation_{m}_vs_iterations" for m in METRICS]
    )
    for metric in METRICS:
        # Training values under train/, validation values (without "val_") under validation/.
        steps, values = _steps_and_values(train, f"epoch_{metric}")
        assert steps == [0, 1]
        np.testing.assert_allclose(values, history.history[metric], rtol=1e-6)
        steps, values = _steps_and_values(validation, f"epoch_{metric}")
        assert steps == [0, 1]
        np.testing.assert_allclose(values, history.history[f"val_{metric}"], rtol=1e-6)
        # The evaluation runs inside fit, plotted against optimizer steps.
        steps, values = _steps_and_values(validation, f"evaluation_{metric}_vs_iterations")
        assert steps == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
        np.testing.assert_allclose(values, history.history[f"val_{metric}"], rtol=1e-6)
    _, rates = _steps_and_values(train, "epoch_learning_rate")
    np.testing.assert_allclose(rates, [1e-3, 1e-3], rtol=1e-6)
    # No histograms, no embeddings, no per-batch plots with this configuration.
    assert train.Tags()["histograms"] == []
    assert not os.path.exists(os.path.join(log_dir, "train", "projector_config.pbtxt"))
    assert not [tag for tag in train.Tags()["scalars"] if tag.startswith("batch_")]
    # write_graph defaults to True, as in Keras: the module graph is there.
    assert train.Tags()["graph"]


def test_histogram_freq_one_logs_every_weight_every_epoch(tmp_path):
    model, _ = _fit(torchfit.callbacks.TensorBoard(log_dir=str(tmp_path), histogram_freq=1))
    train = _read(tmp_path / "train")
    names = [name for name, _ in model.module.named_parameters()]
    assert sorted(train.Tags()["histograms"]) == sorted(f"{name}/histogram" for name in names)
    for name, parameter in model.module.named_parameters():
        events = train.Histograms(f"{name}/histogram")
        assert [event.step for event in events] == [0, 1]
        last = events[-1].histogram_value
        # The histogram is of the weights after the last epoch.
        assert last.num == parameter.numel()
        np.testing.assert_allclose(
            last.sum, parameter.detach().double().sum().item(), rtol=1e-4, atol=1e-4
        )
        np.testing.assert_allclose(
            [last.min, last.max], [parameter.min().item(), parameter.max().item()], rtol=1e-6
        )


def test_histogram_freq_two_logs_every_other_epoch(tmp_path):
    _fit(torchfit.callbacks.TensorBoard(log_dir=str(tmp_path), histogram_freq=2), epochs=3)
    train = _read(tmp_path / "train")
    assert [event.step for event in train.Histograms("0.weight/histogram")] == [0, 2]


def test_embeddings_freq_one_writes_the_embedding_to_the_projector(tmp_path):
    # The guide's 3D view of "embedding spaces learned by your Embedding
    # layers": each digit pixel's intensity (0-16) is a token here.
    net = nn.Sequential(
        nn.Embedding(17, 3), nn.Flatten(), nn.Linear(64 * 3, 10), nn.Softmax(dim=-1)
    )
    model, _ = _fit(
        torchfit.callbacks.TensorBoard(log_dir=str(tmp_path), embeddings_freq=1),
        model=get_compiled_model(net),
        x_dtype="int64",
    )
    train_dir = tmp_path / "train"
    with open(train_dir / "projector_config.pbtxt") as file:
        config = file.read()
    assert config.count("embeddings {") == 2  # one per epoch
    for epoch in ("00000", "00001"):
        assert f'tensor_name: "0:{epoch}"' in config
    last = sorted(path for path in os.listdir(train_dir) if path.isdigit())[-1]
    folders = os.listdir(train_dir / last)
    tensors = np.loadtxt(train_dir / last / folders[0] / "tensors.tsv", delimiter="\t")
    # The file holds the trained embedding table.
    np.testing.assert_allclose(
        tensors, model.module[0].weight.detach().numpy(), rtol=1e-5, atol=1e-6
    )


def test_embeddings_freq_is_ignored_without_embedding_layers(tmp_path):
    _fit(torchfit.callbacks.TensorBoard(log_dir=str(tmp_path), embeddings_freq=1))
    assert not os.path.exists(tmp_path / "train" / "projector_config.pbtxt")


@pytest.mark.parametrize(
    ("update_freq", "expected_steps"),
    [
        ("epoch", []),
        ("batch", list(range(1, 2 * STEPS_PER_EPOCH + 1))),
        (10, [10, 20, 30]),
    ],
)
def test_update_freq_sets_how_often_batch_plots_are_written(tmp_path, update_freq, expected_steps):
    recorder = BatchLossRecorder()
    callback = torchfit.callbacks.TensorBoard(log_dir=str(tmp_path), update_freq=update_freq)
    torchfit.utils.set_random_seed(0)
    x_train, y_train = _load()
    model = get_compiled_model()
    model.fit(
        x_train,
        y_train,
        batch_size=64,
        epochs=2,
        validation_split=0.2,
        callbacks=[callback, recorder],
        verbose=0,
    )
    train = _read(tmp_path / "train")
    batch_tags = sorted(tag for tag in train.Tags()["scalars"] if tag.startswith("batch_"))
    if not expected_steps:
        assert batch_tags == []
        return
    assert batch_tags == [f"batch_{m}" for m in METRICS]
    steps, values = _steps_and_values(train, "batch_loss")
    assert steps == expected_steps
    # The running epoch mean of the loss at that step, as the batch logs hold it.
    np.testing.assert_allclose(values, [recorder.losses[step - 1] for step in steps], rtol=1e-6)
    # Epoch plots are written whatever update_freq is.
    assert _steps_and_values(train, "epoch_loss")[0] == [0, 1]


class BatchLossRecorder(torchfit.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(logs["loss"])
