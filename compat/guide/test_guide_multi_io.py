"""The guide's "Passing data to multi-input, multi-output models", ported to torchfit:
the image + time-series model with `score_output` and `class_output`, its
plot_model picture, list/dict losses, metrics, loss_weights, `None` losses, and
fit on lists, dicts and a Dataset/DataLoader of dict tuples. The log keys are
those Keras 3 forms; where Keras 3 runs, its functional twin (same weights)
checks keys and numbers.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import shutil

import numpy as np
import pytest
import torch
from guide_support import ImageAndTimeseries

import torchfit

LOSS_KEYS = ["class_output_loss", "loss", "score_output_loss"]
METRIC_KEYS = sorted(
    LOSS_KEYS
    + [
        "class_output_categorical_accuracy",
        "score_output_mean_absolute_error",
        "score_output_mean_absolute_percentage_error",
    ]
)


def build_model():
    torch.manual_seed(0)
    return torchfit.Model(
        ImageAndTimeseries(), output_names=["score_output", "class_output"], device="cpu"
    )


def dummy_data(n=100, seed=0):
    rng = np.random.default_rng(seed)
    img_data = rng.random((n, 32, 32, 3)).astype("float32")
    ts_data = rng.random((n, 20, 10)).astype("float32")
    score_targets = rng.random((n, 1)).astype("float32")
    class_targets = rng.random((n, 5)).astype("float32")
    return img_data, ts_data, score_targets, class_targets


def guide_metrics():
    return [
        [torchfit.metrics.MeanAbsolutePercentageError(), torchfit.metrics.MeanAbsoluteError()],
        [torchfit.metrics.CategoricalAccuracy()],
    ]


def guide_losses():
    return [torchfit.losses.MeanSquaredError(), torchfit.losses.CategoricalCrossentropy()]


# ---------------------------------------------------------------- the picture


def test_plot_model_dot_source_names_both_inputs_and_outputs(tmp_path):
    path = tmp_path / "multi_input_and_output_model.dot"
    torchfit.utils.plot_model(
        build_model(),
        str(path),
        show_shapes=True,
        inputs={"img_input": (None, 32, 32, 3), "ts_input": (None, 20, 10)},
    )
    text = path.read_text()
    for name in (
        "img_input (Input)",
        "ts_input (Input)",
        "score_output (Output)",
        "class_output (Output)",
    ):
        assert name in text
    assert "(None, 32, 32, 3)" in text and "(None, 5)" in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_plot_model_png_and_svg(tmp_path):
    model = build_model()
    img_data, ts_data, score_targets, class_targets = dummy_data(n=8)
    model.compile(optimizer=torchfit.optimizers.RMSprop(1e-3), loss=guide_losses())
    model.fit([img_data, ts_data], [score_targets, class_targets], batch_size=4, verbose=0)
    # After a call, plot_model traces with the inputs the model has seen.
    png = tmp_path / "multi_input_and_output_model.png"
    torchfit.utils.plot_model(model, str(png), show_shapes=True)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    svg = tmp_path / "multi_input_and_output_model.svg"
    torchfit.utils.plot_model(model, str(svg), show_shapes=True)
    text = svg.read_text()
    for name in ("img_input", "ts_input", "score_output (Output)", "class_output (Output)"):
        assert name in text


# --------------------------------------------------------------- compile forms


@pytest.mark.parametrize("form", ["list", "dict"])
def test_losses_and_metrics_as_lists_or_dicts(form):
    model = build_model()
    losses, metrics = guide_losses(), guide_metrics()
    if form == "dict":
        losses = dict(zip(["score_output", "class_output"], losses))
        metrics = dict(zip(["score_output", "class_output"], metrics))
    model.compile(optimizer=torchfit.optimizers.RMSprop(1e-3), loss=losses, metrics=metrics)
    img_data, ts_data, score_targets, class_targets = dummy_data()
    history = model.fit(
        [img_data, ts_data],
        [score_targets, class_targets],
        batch_size=32,
        epochs=1,
        verbose=0,
        validation_data=([img_data, ts_data], [score_targets, class_targets]),
    )
    assert list(history.history) == sorted(METRIC_KEYS + ["val_" + key for key in METRIC_KEYS])


def test_loss_weights_weigh_the_score_loss_twice():
    model = build_model()
    model.compile(
        optimizer=torchfit.optimizers.RMSprop(1e-3),
        loss={
            "score_output": torchfit.losses.MeanSquaredError(),
            "class_output": torchfit.losses.CategoricalCrossentropy(),
        },
        metrics={"score_output": guide_metrics()[0], "class_output": guide_metrics()[1]},
        loss_weights={"score_output": 2.0, "class_output": 1.0},
    )
    img_data, ts_data, score_targets, class_targets = dummy_data()
    logs = model.evaluate(
        [img_data, ts_data], [score_targets, class_targets], verbose=0, return_dict=True
    )
    assert sorted(logs) == METRIC_KEYS
    assert logs["loss"] == pytest.approx(
        2.0 * logs["score_output_loss"] + logs["class_output_loss"], rel=1e-5
    )


@pytest.mark.parametrize(
    "loss",
    [
        [None, torchfit.losses.CategoricalCrossentropy()],
        {"class_output": torchfit.losses.CategoricalCrossentropy()},
    ],
)
def test_outputs_for_prediction_only(loss):
    model = build_model()
    model.compile(optimizer=torchfit.optimizers.RMSprop(1e-3), loss=loss)
    img_data, ts_data, score_targets, class_targets = dummy_data()
    before = model.module.score_output.weight.detach().clone()
    history = model.fit(
        [img_data, ts_data], [score_targets, class_targets], batch_size=32, verbose=0
    )
    assert list(history.history) == ["loss"]
    assert torch.equal(model.module.score_output.weight, before)
    score, classes = model.predict([img_data, ts_data], verbose=0)
    assert score.shape == (100, 1) and classes.shape == (100, 5)


# ------------------------------------------------------------------ data forms


def test_fit_on_lists_and_on_dicts():
    model = build_model()
    model.compile(optimizer=torchfit.optimizers.RMSprop(1e-3), loss=guide_losses())
    img_data, ts_data, score_targets, class_targets = dummy_data()
    # Fit on lists
    on_lists = model.fit(
        [img_data, ts_data], [score_targets, class_targets], batch_size=32, epochs=1, verbose=0
    )
    # Alternatively, fit on dicts
    on_dicts = model.fit(
        {"img_input": img_data, "ts_input": ts_data},
        {"score_output": score_targets, "class_output": class_targets},
        batch_size=32,
        epochs=1,
        verbose=0,
    )
    assert list(on_lists.history) == list(on_dicts.history) == LOSS_KEYS


class DictTuples(torch.utils.data.Dataset):
    """The guide's `Dataset.from_tensor_slices((inputs_dict, targets_dict))`."""

    def __init__(self, img_data, ts_data, score_targets, class_targets):
        self.arrays = img_data, ts_data, score_targets, class_targets

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        img, ts, score, klass = (array[index] for array in self.arrays)
        return {"img_input": img, "ts_input": ts}, {"score_output": score, "class_output": klass}


def test_fit_on_a_dataset_and_a_dataloader_of_dict_tuples():
    model = build_model()
    model.compile(optimizer=torchfit.optimizers.RMSprop(1e-3), loss=guide_losses())
    dataset = DictTuples(*dummy_data())
    history = model.fit(dataset, batch_size=64, epochs=1, verbose=0)
    assert list(history.history) == LOSS_KEYS
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True)
    history = model.fit(loader, epochs=1, verbose=0)
    assert list(history.history) == LOSS_KEYS


# --------------------------------------------------------- Keras 3 functional twin


def keras_twin(keras):
    layers = keras.layers
    image_input = keras.Input(shape=(32, 32, 3), name="img_input")
    timeseries_input = keras.Input(shape=(None, 10), name="ts_input")
    x1 = layers.Conv2D(3, 3, name="conv2d")(image_input)
    x1 = layers.GlobalMaxPooling2D()(x1)
    x2 = layers.Conv1D(3, 3, name="conv1d")(timeseries_input)
    x2 = layers.GlobalMaxPooling1D()(x2)
    x = layers.concatenate([x1, x2])
    score_output = layers.Dense(1, name="score_output")(x)
    class_output = layers.Dense(5, name="class_output")(x)
    return keras.Model(inputs=[image_input, timeseries_input], outputs=[score_output, class_output])


def copy_keras_weights(keras_model, module):
    with torch.no_grad():
        kernel, bias = keras_model.get_layer("conv2d").get_weights()
        module.conv2d.weight.copy_(torch.as_tensor(np.asarray(kernel).transpose(3, 2, 0, 1)))
        module.conv2d.bias.copy_(torch.as_tensor(np.asarray(bias)))
        kernel, bias = keras_model.get_layer("conv1d").get_weights()
        module.conv1d.weight.copy_(torch.as_tensor(np.asarray(kernel).transpose(2, 1, 0)))
        module.conv1d.bias.copy_(torch.as_tensor(np.asarray(bias)))
        for name in ("score_output", "class_output"):
            kernel, bias = keras_model.get_layer(name).get_weights()
            getattr(module, name).weight.copy_(torch.as_tensor(np.asarray(kernel).T))
            getattr(module, name).bias.copy_(torch.as_tensor(np.asarray(bias)))


def compile_pair(keras, case):
    k, t = keras, torchfit
    if case == "list losses + metrics":
        return [
            dict(
                loss=[lib.losses.MeanSquaredError(), lib.losses.CategoricalCrossentropy()],
                metrics=[
                    [lib.metrics.MeanAbsolutePercentageError(), lib.metrics.MeanAbsoluteError()],
                    [lib.metrics.CategoricalAccuracy()],
                ],
            )
            for lib in (k, t)
        ]
    if case == "dict losses + loss_weights":
        return [
            dict(
                loss={
                    "score_output": lib.losses.MeanSquaredError(),
                    "class_output": lib.losses.CategoricalCrossentropy(),
                },
                metrics={
                    "score_output": [lib.metrics.MeanAbsoluteError()],
                    "class_output": [lib.metrics.CategoricalAccuracy()],
                },
                loss_weights={"score_output": 2.0, "class_output": 1.0},
            )
            for lib in (k, t)
        ]
    if case == "None loss":
        return [dict(loss=[None, lib.losses.CategoricalCrossentropy()]) for lib in (k, t)]
    if case == "one loss, string metrics, duplicates, weighted":
        return [
            dict(loss="mse", metrics=[["mae", "mae"], ["acc"]], weighted_metrics=[["mae"], ["mse"]])
        ] * 2
    raise AssertionError(case)


def twins(case):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    keras_model = keras_twin(keras)
    model = build_model()
    copy_keras_weights(keras_model, model.module)
    keras_args, torch_args = compile_pair(keras, case)
    keras_model.compile(optimizer=keras.optimizers.RMSprop(1e-3), **keras_args)
    model.compile(optimizer=torchfit.optimizers.RMSprop(1e-3), **torch_args)
    return keras_model, model


CASES = [
    "list losses + metrics",
    "dict losses + loss_weights",
    "None loss",
    "one loss, string metrics, duplicates, weighted",
]


@pytest.mark.parametrize(
    "case", ["list losses + metrics", "one loss, string metrics, duplicates, weighted"]
)
def test_evaluate_list_order_matches_keras(case):
    keras_model, model = twins(case)
    img_data, ts_data, score_targets, class_targets = dummy_data(n=16)
    x, y = [img_data, ts_data], [score_targets, class_targets]
    assert model.evaluate(x, y, batch_size=16, verbose=0) == pytest.approx(
        keras_model.evaluate(x, y, batch_size=16, verbose=0), rel=1e-4
    )


@pytest.mark.parametrize("case", CASES)
def test_keys_and_values_match_keras(case):
    keras_model, model = twins(case)
    img_data, ts_data, score_targets, class_targets = dummy_data(n=24)
    x, y = [img_data, ts_data], [score_targets, class_targets]
    sample_weight = np.linspace(0.5, 1.5, 24).astype(
        "float32"
    )  # one array, broadcast to both outputs

    ours = model.evaluate(
        x, y, sample_weight=sample_weight, batch_size=16, verbose=0, return_dict=True
    )
    theirs = keras_model.evaluate(
        x, y, sample_weight=sample_weight, batch_size=16, verbose=0, return_dict=True
    )
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        assert ours[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-6), key

    fit_args = dict(batch_size=12, epochs=2, verbose=0, shuffle=False, validation_data=(x, y))
    ours = model.fit(x, y, **fit_args).history
    theirs = keras_model.fit(x, y, **fit_args).history
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=2e-3, atol=1e-5, err_msg=key)

    ours_pred = model.predict(x, verbose=0)
    theirs_pred = keras_model.predict(x, verbose=0)
    for mine, reference in zip(ours_pred, theirs_pred):
        np.testing.assert_allclose(mine, np.asarray(reference), rtol=1e-3, atol=1e-5)
