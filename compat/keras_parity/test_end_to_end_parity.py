"""The guide's MLP trained end to end by Keras 3 and by torchfit gives the same numbers.

The model is the guide's 784-64-64-10 ReLU MLP with logits out, compiled with
`SparseCategoricalCrossentropy(from_logits=True)` and
`SparseCategoricalAccuracy`. Keras builds it as a `keras.Sequential` (torch
backend); torchfit wraps the same layers as an `nn.Sequential`, with the
Keras kernels copied in (Dense kernels are `(in, out)`, Linear weights
`(out, in)`). Both fit the same fixed random data with `shuffle=False` and
batch size 64; History (train and `val_` keys), final weights, evaluate() and
predict() must agree.
"""

import os

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

keras = pytest.importorskip("keras")

import torchfit  # noqa: E402

# Keras's own torch backend converts through NumPy's legacy __array__ path.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# Per-epoch logs must agree to this; weights after training to WEIGHT_RTOL/ATOL.
LOG_RTOL = 1e-4
WEIGHT_RTOL, WEIGHT_ATOL = 1e-4, 1e-5
BATCH_SIZE = 64
# One sample of the smallest data set below (200 validation rows) flipping class.
ACCURACY_ATOL = 1.01 / 200


def _data(num_samples: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num_samples, 784)).astype("float32")
    y = rng.integers(0, 10, size=(num_samples,)).astype("int64")
    return x, y


def _optimizers(kind: str):
    """The same optimizer, built once by Keras and once by torchfit."""
    if kind == "rmsprop":
        return keras.optimizers.RMSprop(), torchfit.optimizers.RMSprop()
    if kind == "adam":
        return keras.optimizers.Adam(), torchfit.optimizers.Adam()
    if kind == "sgd_nesterov":
        options = {"learning_rate": 0.01, "momentum": 0.9, "nesterov": True}
        return keras.optimizers.SGD(**options), torchfit.optimizers.SGD(**options)
    # A schedule fast enough to change the lr noticeably within an epoch.
    schedule = {"initial_learning_rate": 0.05, "decay_steps": 10, "decay_rate": 0.7}
    if kind == "sgd_momentum_exponential_decay":
        return (
            keras.optimizers.SGD(
                keras.optimizers.schedules.ExponentialDecay(**schedule), momentum=0.9
            ),
            torchfit.optimizers.SGD(
                torchfit.optimizers.schedules.ExponentialDecay(**schedule), momentum=0.9
            ),
        )
    if kind == "rmsprop_exponential_decay":
        schedule = dict(schedule, initial_learning_rate=0.003, staircase=True)
        return (
            keras.optimizers.RMSprop(keras.optimizers.schedules.ExponentialDecay(**schedule)),
            torchfit.optimizers.RMSprop(torchfit.optimizers.schedules.ExponentialDecay(**schedule)),
        )
    raise ValueError(kind)


def _twin_models(optimizer: str, seed: int = 0):
    """A Keras model and a torchfit model with identical initial weights, compiled alike."""
    keras.utils.set_random_seed(seed)
    keras_model = keras.Sequential(
        [
            keras.Input(shape=(784,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    net = nn.Sequential(
        nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)
    )
    with torch.no_grad():
        for linear, dense in zip(net[::2], keras_model.layers):
            kernel, bias = dense.get_weights()
            linear.weight.copy_(torch.from_numpy(kernel.T))
            linear.bias.copy_(torch.from_numpy(bias))
    keras_optimizer, torchfit_optimizer = _optimizers(optimizer)
    keras_model.compile(
        optimizer=keras_optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    model = torchfit.Model(net, device="cpu")
    model.compile(
        optimizer=torchfit_optimizer,
        loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[torchfit.metrics.SparseCategoricalAccuracy()],
    )
    return keras_model, model


def _keras_weights_as_torch(keras_model) -> list:
    """Keras weights in torch `Linear` layout, in `nn.Sequential` parameter order."""
    return [w.T if w.ndim == 2 else w for w in keras_model.get_weights()]


def _assert_same_history(keras_history: dict, torchfit_history: dict) -> None:
    assert sorted(torchfit_history) == sorted(keras_history)
    for key, expected in keras_history.items():
        # An accuracy counts argmaxes: a near-tie that float rounding breaks the
        # other way on another machine moves it by one sample.
        atol = ACCURACY_ATOL if "accuracy" in key else 0.0
        np.testing.assert_allclose(
            torchfit_history[key], expected, rtol=LOG_RTOL, atol=atol, err_msg=key
        )


def _assert_same_weights(keras_model, model) -> None:
    ours = [p.detach().numpy() for p in model.module.parameters()]
    theirs = _keras_weights_as_torch(keras_model)
    assert len(ours) == len(theirs)
    for index, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(
            a, b, rtol=WEIGHT_RTOL, atol=WEIGHT_ATOL, err_msg=f"weight {index}"
        )


def _fit_both(keras_model, model, x, y, **kwargs):
    options = dict(batch_size=BATCH_SIZE, shuffle=False, verbose=0, **kwargs)
    keras_history = keras_model.fit(x, y, **options).history
    torchfit_history = model.fit(x, y, **options).history
    return keras_history, torchfit_history


def test_initial_weights_and_logits_are_identical():
    keras_model, model = _twin_models("rmsprop")
    x, _ = _data(64, seed=0)
    for a, b in zip(
        [p.detach().numpy() for p in model.module.parameters()],
        _keras_weights_as_torch(keras_model),
    ):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), keras_model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("num_samples", [2000, 1984])  # ragged last batch (16), and none
@pytest.mark.parametrize("seed", [0, 1])
def test_one_epoch_rmsprop_history_and_weights_match(seed, num_samples):
    x, y = _data(num_samples, seed)
    keras_model, model = _twin_models("rmsprop", seed)
    keras_history, torchfit_history = _fit_both(keras_model, model, x, y, epochs=1)
    assert sorted(torchfit_history) == ["loss", "sparse_categorical_accuracy"]
    _assert_same_history(keras_history, torchfit_history)
    _assert_same_weights(keras_model, model)
    assert (
        model.optimizer.iterations == int(keras_model.optimizer.iterations) == -(-num_samples // 64)
    )


def test_two_epochs_with_validation_data_match():
    x, y = _data(2000, seed=2)
    x_val, y_val = _data(300, seed=3)  # 300 = 4 batches of 64 + a ragged 44
    keras_model, model = _twin_models("rmsprop")
    keras_history, torchfit_history = _fit_both(
        keras_model, model, x, y, epochs=2, validation_data=(x_val, y_val)
    )
    assert sorted(torchfit_history) == [
        "loss",
        "sparse_categorical_accuracy",
        "val_loss",
        "val_sparse_categorical_accuracy",
    ]
    assert all(len(values) == 2 for values in torchfit_history.values())
    _assert_same_history(keras_history, torchfit_history)
    _assert_same_weights(keras_model, model)


@pytest.mark.parametrize(
    "optimizer",
    ["adam", "sgd_nesterov", "sgd_momentum_exponential_decay", "rmsprop_exponential_decay"],
)
def test_other_optimizers_match_end_to_end(optimizer):
    x, y = _data(1000, seed=4)  # 15 batches of 64 + a ragged 40
    x_val, y_val = _data(200, seed=5)
    keras_model, model = _twin_models(optimizer)
    keras_history, torchfit_history = _fit_both(
        keras_model, model, x, y, epochs=2, validation_data=(x_val, y_val)
    )
    _assert_same_history(keras_history, torchfit_history)
    _assert_same_weights(keras_model, model)
    np.testing.assert_allclose(
        model.optimizer.learning_rate, float(keras_model.optimizer.learning_rate), rtol=1e-6
    )


def test_schedule_really_decays_the_learning_rate():
    # Guards the schedule variants above against a schedule that does nothing.
    keras_model, model = _twin_models("sgd_momentum_exponential_decay")
    x, y = _data(640, seed=6)
    _fit_both(keras_model, model, x, y, epochs=1)
    assert model.optimizer.iterations == 10
    np.testing.assert_allclose(model.optimizer.learning_rate, 0.05 * 0.7, rtol=1e-6)
    np.testing.assert_allclose(float(keras_model.optimizer.learning_rate), 0.05 * 0.7, rtol=1e-6)


def test_evaluate_and_predict_match_after_training():
    x, y = _data(2000, seed=7)
    x_test, y_test = _data(500, seed=8)
    keras_model, model = _twin_models("rmsprop")
    _fit_both(keras_model, model, x, y, epochs=1)

    keras_results = keras_model.evaluate(x_test, y_test, batch_size=BATCH_SIZE, verbose=0)
    torchfit_results = model.evaluate(x_test, y_test, batch_size=BATCH_SIZE, verbose=0)
    assert len(torchfit_results) == len(keras_results) == 2  # [loss, sparse_categorical_accuracy]
    np.testing.assert_allclose(torchfit_results, keras_results, rtol=LOG_RTOL)

    keras_dict = keras_model.evaluate(
        x_test, y_test, batch_size=BATCH_SIZE, verbose=0, return_dict=True
    )
    torchfit_dict = model.evaluate(
        x_test, y_test, batch_size=BATCH_SIZE, verbose=0, return_dict=True
    )
    assert sorted(torchfit_dict) == sorted(keras_dict)
    for key in keras_dict:
        np.testing.assert_allclose(torchfit_dict[key], keras_dict[key], rtol=LOG_RTOL, err_msg=key)

    keras_logits = keras_model.predict(x_test, batch_size=BATCH_SIZE, verbose=0)
    torchfit_logits = model.predict(x_test, batch_size=BATCH_SIZE, verbose=0)
    assert isinstance(torchfit_logits, np.ndarray)
    assert torchfit_logits.shape == keras_logits.shape == (500, 10)
    np.testing.assert_allclose(torchfit_logits, keras_logits, rtol=1e-4, atol=1e-5)
    # Classes agree wherever the top two logits are further apart than the
    # tolerance above; a closer pair is a tie that rounding may break either way.
    top_two = np.sort(keras_logits, axis=-1)[:, -2:]
    clear = (top_two[:, 1] - top_two[:, 0]) > 1e-3
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(torchfit_logits.argmax(-1)[clear], keras_logits.argmax(-1)[clear])
