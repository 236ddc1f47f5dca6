"""`torchfit.metrics.huber` and the focal crossentropies against Keras 3's functions.

Keras 3 exports these loss functions as metric functions (no metric class, no
string id). Each case compares the per-sample values on random batches, then
the mean that `MeanMetricWrapper(fn, **kwargs)` streams over weighted
batches, with every argument that changes the formula.
"""

import os

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

from torchfit import metrics  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RTOL, ATOL = 1e-5, 1e-6


def _regression(rng, n):
    # Errors on both sides of every delta used below.
    return rng.normal(size=(n, 4)).astype("float32"), 2 * rng.normal(size=(n, 4)).astype("float32")


def _binary(rng, n):
    return rng.integers(0, 2, size=(n, 3)).astype("float32"), rng.uniform(size=(n, 3)).astype(
        "float32"
    )


def _binary_logits(rng, n):
    return rng.integers(0, 2, size=(n, 3)).astype("float32"), 3 * rng.normal(size=(n, 3)).astype(
        "float32"
    )


def _one_hot(rng, n, logits=False):
    y_true = np.eye(5, dtype="float32")[rng.integers(0, 5, size=n)]
    scores = rng.normal(size=(n, 5)).astype("float32")
    if logits:
        return y_true, scores
    # Unnormalized positive scores: the function renormalizes them.
    return y_true, np.exp(scores)


CASES = [
    ("huber", {}, _regression),
    ("huber", {"delta": 0.3}, _regression),
    ("huber", {"delta": 2.5}, _regression),
    ("binary_focal_crossentropy", {}, _binary),
    (
        "binary_focal_crossentropy",
        {"gamma": 0.5, "apply_class_balancing": True, "alpha": 0.7},
        _binary,
    ),
    (
        "binary_focal_crossentropy",
        {"from_logits": True, "label_smoothing": 0.2, "gamma": 3.0},
        _binary_logits,
    ),
    ("binary_focal_crossentropy", {"axis": 0}, _binary),
    ("categorical_focal_crossentropy", {}, _one_hot),
    (
        "categorical_focal_crossentropy",
        {"alpha": 0.6, "gamma": 1.0, "label_smoothing": 0.1},
        _one_hot,
    ),
    (
        "categorical_focal_crossentropy",
        {"from_logits": True, "alpha": [0.1, 0.2, 0.3, 0.2, 0.2]},
        lambda rng, n: _one_hot(rng, n, logits=True),
    ),
]
IDS = [
    f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}" for name, kw, _ in CASES
]


def _keras_numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value), dtype="float64")


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("name", "kwargs", "data"), CASES, ids=IDS)
def test_function_matches_keras(name, kwargs, data, seed):
    y_true, y_pred = data(np.random.default_rng(seed), 9)
    expected = _keras_numpy(getattr(keras.metrics, name)(y_true, y_pred, **kwargs))
    actual = getattr(metrics, name)(y_true, y_pred, **kwargs)
    assert tuple(actual.shape) == expected.shape
    np.testing.assert_allclose(actual.double().numpy(), expected, rtol=RTOL, atol=ATOL)


# Reducing over the batch axis leaves no per-sample values to weight.
WRAPPED = [(case, i) for case, i in zip(CASES, IDS) if case[1].get("axis") != 0]


@pytest.mark.parametrize(
    ("name", "kwargs", "data"), [c for c, _ in WRAPPED], ids=[i for _, i in WRAPPED]
)
def test_wrapped_mean_matches_keras(name, kwargs, data):
    rng = np.random.default_rng(3)
    theirs = keras.metrics.MeanMetricWrapper(getattr(keras.metrics, name), **kwargs)
    ours = metrics.MeanMetricWrapper(getattr(metrics, name), **kwargs)
    for n in (8, 5, 7):
        y_true, y_pred = data(rng, n)
        weight = rng.uniform(0.0, 2.0, size=n).astype("float32")
        theirs.update_state(y_true, y_pred, sample_weight=weight)
        ours.update_state(y_true, y_pred, sample_weight=weight)
    np.testing.assert_allclose(
        float(ours.result()), _keras_numpy(theirs.result()), rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize(
    "name", ["huber", "binary_focal_crossentropy", "categorical_focal_crossentropy"]
)
def test_signature_defaults_and_string_ids_follow_keras(name):
    import inspect

    theirs = inspect.signature(getattr(keras.metrics, name)).parameters
    ours = inspect.signature(getattr(metrics, name)).parameters
    assert list(ours) == list(theirs)
    assert [p.default for p in ours.values()] == [p.default for p in theirs.values()]
    # Keras resolves none of them as a metric string id.
    with pytest.raises(ValueError):
        keras.metrics.get(name)
    with pytest.raises(ValueError, match=name):
        metrics.get(name)
    # ...but a wrapper's config names the function, and comes back.
    wrapper = metrics.MeanMetricWrapper(getattr(metrics, name))
    rebuilt = metrics.deserialize(metrics.serialize(wrapper))
    assert rebuilt._fn is getattr(metrics, name)
