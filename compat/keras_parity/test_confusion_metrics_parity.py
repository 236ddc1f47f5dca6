"""Confusion-matrix, F-score and IoU metrics against Keras 3 (torch backend).

Each case streams several weighted batches through a torchfit metric and the
Keras metric of the same name and arguments, compares the results, resets
both, streams fresh batches and compares again.
"""

import os
import warnings

os.environ["KERAS_BACKEND"] = "torch"

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras.src.utils.naming import reset_uids  # noqa: E402

from torchfit.metrics import confusion_metrics, f_score_metrics, iou_metrics  # noqa: E402

SEEDS = [0, 1, 2]
NUM_BATCHES = 3
BATCH = 16
CLASSES = 3


def _probabilities(rng, shape, quantized):
    values = rng.uniform(size=shape)
    # Predictions on the 0.1 grid land exactly on thresholds and bucket edges.
    return np.round(values, 1) if quantized else values


def _batch(rng, kind):
    """Returns (y_true, y_pred, sample_weight) as NumPy arrays for one batch."""
    weight = rng.uniform(0.0, 2.0, size=BATCH).astype("float32")
    if kind in ("binary", "binary_grid"):
        y_true = rng.integers(0, 2, size=BATCH)
        y_pred = _probabilities(rng, BATCH, kind == "binary_grid")
    elif kind in ("multi", "multi_grid"):
        y_true = rng.integers(0, 2, size=(BATCH, CLASSES))
        y_pred = _probabilities(rng, (BATCH, CLASSES), kind == "multi_grid")
    elif kind == "logits":
        y_true = rng.integers(0, 2, size=(BATCH, CLASSES))
        y_pred = rng.normal(scale=3.0, size=(BATCH, CLASSES))
    elif kind == "onehot":
        y_true = np.eye(CLASSES)[rng.integers(0, CLASSES, size=BATCH)]
        y_pred = _probabilities(rng, (BATCH, CLASSES), False)
    elif kind == "sparse_true":
        y_true = rng.integers(0, CLASSES, size=BATCH)
        y_pred = _probabilities(rng, (BATCH, CLASSES), False)
    elif kind == "sparse":
        # Includes -1 and CLASSES: out-of-range labels must be ignored.
        y_true = rng.integers(-1, CLASSES + 1, size=(BATCH, 2))
        y_pred = rng.integers(0, CLASSES, size=(BATCH, 2))
        weight = rng.integers(0, 4, size=(BATCH, 2))
    elif kind == "sparse_float_weight":
        y_true = rng.integers(0, CLASSES, size=BATCH)
        y_pred = rng.integers(0, CLASSES, size=BATCH)
        weight = rng.uniform(0.0, 3.0, size=BATCH).astype("float32")
    else:
        raise AssertionError(kind)
    return y_true.astype("float32"), y_pred.astype("float32"), weight


CONFUSION_CASES = [
    ("TruePositives", {}, "binary"),
    ("FalsePositives", {"thresholds": [0.3, 0.7]}, "binary_grid"),
    ("TrueNegatives", {"thresholds": [0.0, 0.25, 0.5, 0.75, 1.0]}, "binary_grid"),
    ("FalseNegatives", {"thresholds": [0.0, 0.5, 1.0]}, "multi_grid"),
    ("Precision", {}, "binary"),
    ("Precision", {"thresholds": [0.2, 0.5, 0.9]}, "multi_grid"),
    ("Precision", {"thresholds": [0.0, 0.5, 1.0]}, "multi_grid"),
    ("Precision", {"top_k": 2}, "multi"),
    ("Precision", {"class_id": 1}, "multi"),
    ("Precision", {"top_k": 1, "class_id": 2, "thresholds": [0.3, 0.6]}, "multi"),
    ("Recall", {}, "binary_grid"),
    ("Recall", {"thresholds": [0.1, 0.5, 0.8]}, "multi_grid"),
    ("Recall", {"top_k": 2}, "multi"),
    ("Recall", {"class_id": 0}, "multi"),
    ("AUC", {}, "binary"),
    ("AUC", {}, "binary_grid"),
    ("AUC", {"curve": "PR"}, "binary"),
    ("AUC", {"curve": "PR", "summation_method": "majoring"}, "binary"),
    ("AUC", {"summation_method": "minoring"}, "multi"),
    ("AUC", {"curve": "PRGAIN"}, "binary"),
    ("AUC", {"num_thresholds": 7}, "binary_grid"),
    ("AUC", {"thresholds": [0.1, 0.4, 0.45, 0.8]}, "binary_grid"),
    ("AUC", {"thresholds": [0.25, 0.5, 0.75]}, "binary_grid"),
    ("AUC", {"multi_label": True}, "multi"),
    ("AUC", {"multi_label": True, "curve": "PR", "num_labels": CLASSES}, "multi"),
    ("AUC", {"multi_label": True, "label_weights": [1.0, 2.0, 0.5]}, "multi"),
    ("AUC", {"multi_label": True, "thresholds": [0.2, 0.5, 0.7]}, "multi_grid"),
    ("AUC", {"label_weights": [1.0, 2.0, 0.5]}, "multi"),
    ("AUC", {"from_logits": True}, "logits"),
    ("AUC", {"from_logits": True, "multi_label": True, "curve": "PR"}, "logits"),
    ("PrecisionAtRecall", {"recall": 0.5}, "binary"),
    ("PrecisionAtRecall", {"recall": 0.8, "class_id": 1}, "multi"),
    ("RecallAtPrecision", {"precision": 0.6}, "binary_grid"),
    ("RecallAtPrecision", {"precision": 0.5, "num_thresholds": 1}, "binary"),
    ("SensitivityAtSpecificity", {"specificity": 0.6}, "binary"),
    ("SensitivityAtSpecificity", {"specificity": 0.4, "num_thresholds": 20}, "multi_grid"),
    ("SpecificityAtSensitivity", {"sensitivity": 0.4}, "binary"),
    ("SpecificityAtSensitivity", {"sensitivity": 0.7, "class_id": 2}, "multi"),
]

F_SCORE_CASES = [
    ("F1Score", {}, "onehot"),
    ("F1Score", {"average": "micro"}, "onehot"),
    ("F1Score", {"average": "macro", "threshold": 0.5}, "multi"),
    ("F1Score", {"average": "weighted"}, "onehot"),
    ("F1Score", {"threshold": 0.4}, "multi_grid"),
    ("FBetaScore", {"beta": 2.0}, "onehot"),
    ("FBetaScore", {"beta": 0.5, "average": "micro", "threshold": 0.3}, "multi"),
    ("FBetaScore", {"beta": 2.0, "average": "weighted", "threshold": 0.6}, "multi"),
]

IOU_CASES = [
    ("IoU", {"num_classes": CLASSES, "target_class_ids": [0, 2]}, "sparse"),
    ("IoU", {"num_classes": CLASSES, "target_class_ids": [1], "ignore_class": 0}, "sparse"),
    (
        "IoU",
        {"num_classes": CLASSES, "target_class_ids": [0, 1], "sparse_y_pred": False},
        "sparse_true",
    ),
    ("MeanIoU", {"num_classes": CLASSES}, "sparse"),
    ("MeanIoU", {"num_classes": CLASSES, "ignore_class": 2}, "sparse"),
    ("MeanIoU", {"num_classes": CLASSES}, "sparse_float_weight"),
    ("MeanIoU", {"num_classes": CLASSES, "dtype": "float32"}, "sparse_float_weight"),
    ("OneHotIoU", {"num_classes": CLASSES, "target_class_ids": [0, 2]}, "onehot"),
    ("OneHotMeanIoU", {"num_classes": CLASSES}, "onehot"),
    ("OneHotMeanIoU", {"num_classes": CLASSES, "ignore_class": 1}, "onehot"),
    ("BinaryIoU", {}, "binary"),
    ("BinaryIoU", {"target_class_ids": [1], "threshold": 0.3}, "binary_grid"),
]

MODULES = {
    **{name: confusion_metrics for name, _, _ in CONFUSION_CASES},
    **{name: f_score_metrics for name, _, _ in F_SCORE_CASES},
    **{name: iou_metrics for name, _, _ in IOU_CASES},
}


def _case_id(case):
    name, kwargs, kind = case
    args = ",".join(f"{k}={v}" for k, v in kwargs.items())
    return f"{name}({args})-{kind}"


def _stream_and_compare(ours, theirs, rng, kind, weighting):
    for _ in range(NUM_BATCHES):
        y_true, y_pred, weight = _batch(rng, kind)
        sample_weight = {"array": weight, "none": None, "scalar": 0.5}[weighting]
        ours.update_state(y_true, y_pred, sample_weight=sample_weight)
        theirs.update_state(y_true, y_pred, sample_weight=sample_weight)
    expected = keras.ops.convert_to_numpy(theirs.result())
    got = ours.result().detach().cpu().numpy()
    assert got.shape == expected.shape
    # Counts are sums of float32 weights: allow rounding at the stream's scale.
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", CONFUSION_CASES + F_SCORE_CASES + IOU_CASES, ids=_case_id)
def test_matches_keras_over_stream_and_reset(case, seed):
    name, kwargs, kind = case
    ours = getattr(MODULES[name], name)(**kwargs)
    # Keras numbers repeated names ("auc_1"); resetting its counter gives the
    # default (clear_session would too, at 0.5 s a call).
    reset_uids()
    theirs = getattr(keras.metrics, name)(**kwargs)
    assert ours.name == theirs.name
    assert getattr(ours, "_direction", None) == getattr(theirs, "_direction", None)
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        # Float weights on int IoU states warn in both libraries, by design.
        warnings.simplefilter("ignore", UserWarning)
        _stream_and_compare(ours, theirs, rng, kind, "array")
        ours.reset_state()
        theirs.reset_state()
        _stream_and_compare(ours, theirs, rng, kind, "array")


SCALAR_OR_NO_WEIGHT_CASES = [
    ("Precision", {"thresholds": [0.2, 0.5]}, "multi"),
    ("AUC", {"curve": "PR"}, "binary"),
    ("AUC", {"multi_label": True}, "multi"),
    ("SensitivityAtSpecificity", {"specificity": 0.5}, "binary_grid"),
    ("MeanIoU", {"num_classes": CLASSES}, "sparse"),
]
# Keras's F-scores cannot take a scalar sample_weight, so they get None only.
WEIGHTINGS = [
    (case, weighting) for case in SCALAR_OR_NO_WEIGHT_CASES for weighting in ("none", "scalar")
]
WEIGHTINGS.append((("F1Score", {"average": "macro"}, "onehot"), "none"))


def _weighting_id(value):
    return value if isinstance(value, str) else _case_id(value)


@pytest.mark.parametrize(("case", "weighting"), WEIGHTINGS, ids=_weighting_id)
def test_matches_keras_without_or_with_scalar_weights(case, weighting):
    name, kwargs, kind = case
    ours = getattr(MODULES[name], name)(**kwargs)
    theirs = getattr(keras.metrics, name)(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _stream_and_compare(ours, theirs, np.random.default_rng(7), kind, weighting)
