"""Stateful metrics with Keras 3's names, defaults and numbers.

Owns the public `torchfit.metrics` namespace and turning identifiers into
metric objects: `get` (strings, configs, classes, instances, plain functions,
torchmetrics objects), `serialize`/`deserialize`, and `get_metric` /
`resolve_accuracy`, which pick the accuracy or crossentropy variant from the
shapes of a batch as Keras's `compile` does. The metrics themselves live in
the family modules; the `Metric` contract lives in `base.py`.
"""

import difflib
import inspect
from collections.abc import Callable
from typing import Any, Optional, Union

from .accuracy_metrics import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
    accuracy,
    binary_accuracy,
    categorical_accuracy,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)
from .base import Metric, to_snake_case
from .confusion_metrics import (
    AUC,
    FalseNegatives,
    FalsePositives,
    Precision,
    PrecisionAtRecall,
    Recall,
    RecallAtPrecision,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
    TrueNegatives,
    TruePositives,
)
from .correlation_metrics import (
    ConcordanceCorrelation,
    PearsonCorrelation,
    concordance_correlation,
    pearson_correlation,
)
from .f_score_metrics import F1Score, FBetaScore
from .hinge_metrics import (
    CategoricalHinge,
    Hinge,
    SquaredHinge,
    categorical_hinge,
    hinge,
    squared_hinge,
)
from .iou_metrics import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from .probabilistic_metrics import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    KLDivergence,
    Poisson,
    SparseCategoricalCrossentropy,
    binary_crossentropy,
    binary_focal_crossentropy,
    categorical_crossentropy,
    categorical_focal_crossentropy,
    kl_divergence,
    poisson,
    sparse_categorical_crossentropy,
)
from .reduction_metrics import METRIC_FUNCTIONS, Mean, MeanMetricWrapper, Sum
from .regression_metrics import (
    CosineSimilarity,
    LogCoshError,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    R2Score,
    RootMeanSquaredError,
    cosine_similarity,
    huber,
    log_cosh,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
)
from .torchmetrics_adapter import TorchMetricsAdapter, is_torchmetrics_metric

ALL_OBJECTS = (
    Metric, Mean, Sum, MeanMetricWrapper,
    MeanSquaredError, RootMeanSquaredError, MeanAbsoluteError,
    MeanAbsolutePercentageError, MeanSquaredLogarithmicError, CosineSimilarity,
    LogCoshError, R2Score,
    AUC, FalseNegatives, FalsePositives, Precision, PrecisionAtRecall, Recall,
    RecallAtPrecision, SensitivityAtSpecificity, SpecificityAtSensitivity,
    TrueNegatives, TruePositives,
    ConcordanceCorrelation, PearsonCorrelation,
    Hinge, SquaredHinge, CategoricalHinge,
    KLDivergence, Poisson, BinaryCrossentropy, CategoricalCrossentropy,
    SparseCategoricalCrossentropy,
    Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy,
    F1Score, FBetaScore,
    IoU, BinaryIoU, MeanIoU, OneHotIoU, OneHotMeanIoU,
)  # fmt: skip

# Class names, their snake_case, and Keras's aliases, as `keras.metrics.get`
# accepts them (so "io_u" for IoU, as in Keras).
ALL_OBJECTS_DICT: dict[str, type] = {cls.__name__: cls for cls in ALL_OBJECTS}
ALL_OBJECTS_DICT.update({to_snake_case(cls.__name__): cls for cls in ALL_OBJECTS})
ALL_OBJECTS_DICT.update(
    {
        "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy,
        "mse": MeanSquaredError, "MSE": MeanSquaredError,
        "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
        "mape": MeanAbsolutePercentageError, "MAPE": MeanAbsolutePercentageError,
        "msle": MeanSquaredLogarithmicError, "MSLE": MeanSquaredLogarithmicError,
    }
)  # fmt: skip

# Stateless per-sample functions by name, for `MeanMetricWrapper` configs.
_FUNCTIONS = METRIC_FUNCTIONS
_FUNCTIONS.update({
    fn.__name__: fn
    for fn in (
        accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy,
        top_k_categorical_accuracy, sparse_top_k_categorical_accuracy,
        mean_squared_error, mean_absolute_error, mean_absolute_percentage_error,
        mean_squared_logarithmic_error, cosine_similarity, log_cosh,
        kl_divergence, poisson, binary_crossentropy, categorical_crossentropy,
        sparse_categorical_crossentropy, hinge, squared_hinge, categorical_hinge,
        pearson_correlation, concordance_correlation,
        # Keras exports these loss functions as metrics too, with no class or string id.
        huber, binary_focal_crossentropy, categorical_focal_crossentropy,
    )
})  # fmt: skip

_ACCURACY_IDS = ("accuracy", "acc")
_CROSSENTROPY_IDS = ("crossentropy", "ce")

MetricIdentifier = Union[str, dict, Metric, type, Callable[..., Any], None]


def serialize(metric: Union[Metric, Callable[..., Any]]) -> Union[dict, str]:
    """Returns a config of `metric`: `{"class_name", "config"}`, or a function's name.

    Example:
    >>> serialize(MeanSquaredError())
    {'class_name': 'MeanSquaredError', 'config': {'name': 'mean_squared_error', 'dtype': 'float32'}}
    """
    if isinstance(metric, Metric):
        return {"class_name": type(metric).__name__, "config": metric.get_config()}
    name = getattr(metric, "__name__", None)
    if name in _FUNCTIONS and _FUNCTIONS[name] is metric:
        return name
    raise TypeError(
        "`metric` must be a torchfit Metric or a torchfit metric function."
        f" Received: metric of type {type(metric).__name__}."
    )


def deserialize(config: Union[dict, str], custom_objects: Optional[dict] = None) -> Any:
    """Rebuilds a metric (or returns a metric function) from `serialize`'s output.

    Args:
        config: A `{"class_name": ..., "config": {...}}` dict or a name.
        custom_objects: Optional mapping of extra class or function names.

    Raises:
        ValueError: If the class or function name is unknown.
    """
    objects = {**ALL_OBJECTS_DICT, **_FUNCTIONS, **(custom_objects or {})}
    if isinstance(config, str):
        if config not in objects:
            _raise_unknown(config, objects)
        return objects[config]
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            "`config` must be a dict with 'class_name' and 'config' keys, or a name."
            f" Received: config of type {type(config).__name__}."
        )
    class_name = config["class_name"]
    if class_name not in objects:
        _raise_unknown(class_name, objects)
    cls = objects[class_name]
    return cls.from_config(dict(config.get("config") or {}))


def get(identifier: MetricIdentifier) -> Optional[Metric]:
    """Returns the metric object an identifier stands for.

    Args:
        identifier: One of: None; a class name, its snake_case or an alias
            ("MeanSquaredError", "mean_squared_error", "mse"), which gives an
            instance with default arguments and Keras's default name; a
            `{"class_name", "config"}` dict; a `Metric` class or instance; a
            `torchmetrics.Metric` (wrapped in `TorchMetricsAdapter`); or a
            function `fn(y_true, y_pred)` (wrapped in `MeanMetricWrapper`,
            named after the function).

    Returns:
        A `Metric`, or None for None.

    Raises:
        ValueError: If the identifier cannot be interpreted.

    Example:
    >>> get("mse").name
    'mean_squared_error'
    """
    if identifier is None:
        return None
    if isinstance(identifier, Metric):
        return identifier
    if is_torchmetrics_metric(identifier):
        return TorchMetricsAdapter(identifier)
    if isinstance(identifier, dict):
        return _instance(deserialize(identifier), identifier)
    if isinstance(identifier, str):
        if identifier.lower() in _ACCURACY_IDS + _CROSSENTROPY_IDS and (
            identifier not in ALL_OBJECTS_DICT
        ):
            raise ValueError(
                f"The `metrics` identifier {identifier!r} depends on the shapes of"
                " the data. Use `get_metric(identifier, y_true, y_pred)`, or pass"
                " it to `compile(metrics=...)`."
            )
        if identifier not in ALL_OBJECTS_DICT:
            _raise_unknown(identifier, ALL_OBJECTS_DICT)
        return _instance(ALL_OBJECTS_DICT[identifier], identifier)
    if inspect.isclass(identifier) and issubclass(identifier, Metric):
        return _instance(identifier, identifier)
    if callable(identifier) and not inspect.isclass(identifier):
        return MeanMetricWrapper(identifier, name=_object_name(identifier))
    raise ValueError(
        "Could not interpret `metrics` identifier of type"
        f" {type(identifier).__name__}. Expected a string id, a config dict, a"
        " Metric class or instance, a torchmetrics.Metric or a function"
        " fn(y_true, y_pred)."
    )


def get_metric(identifier: MetricIdentifier, y_true: Any, y_pred: Any) -> Metric:
    """Returns the metric `compile` builds for one output, as Keras 3 does.

    "accuracy"/"acc" (any case) pick `BinaryAccuracy` when `y_pred`'s last
    dimension is 1, else `SparseCategoricalAccuracy` when `y_true` has lower
    rank or a last dimension of 1, else `CategoricalAccuracy`.
    "crossentropy"/"ce" pick the crossentropy of the same kind. A string id
    names the metric with the user's spelling ("acc" logs `acc`, "mse" logs
    `mse`); anything else keeps its own name.

    Args:
        identifier: Anything `get` accepts, or one of the special strings.
        y_true: A batch of targets (only its shape is read), or a shape.
        y_pred: A batch of predictions (only its shape is read), or a shape.

    Returns:
        A new or the given `Metric`.

    Raises:
        ValueError: If `identifier` is None or cannot be interpreted.

    Example:
    >>> get_metric("acc", (32, 1), (32, 10)).__class__.__name__
    'SparseCategoricalAccuracy'
    """
    if identifier is None:
        raise ValueError("`metrics` entries must not be None. Received: None.")
    special = str(identifier).lower() if isinstance(identifier, str) else None
    if special in _ACCURACY_IDS or special in _CROSSENTROPY_IDS:
        is_binary, is_sparse = _target_kind(y_true, y_pred)
        if special in _ACCURACY_IDS:
            choices = (BinaryAccuracy, SparseCategoricalAccuracy, CategoricalAccuracy)
        else:
            choices = (BinaryCrossentropy, SparseCategoricalCrossentropy, CategoricalCrossentropy)
        cls = choices[0] if is_binary else choices[1] if is_sparse else choices[2]
        return cls(name=identifier)
    metric = get(identifier)
    if isinstance(identifier, str):
        metric.name = identifier
    return metric


def resolve_accuracy(identifier: MetricIdentifier, y_true: Any, y_pred: Any) -> Metric:
    """Alias of `get_metric`: resolves "accuracy"/"acc"/"crossentropy"/"ce" by shape."""
    return get_metric(identifier, y_true, y_pred)


def _target_kind(y_true: Any, y_pred: Any) -> tuple[bool, bool]:
    true_shape, pred_shape = _shape(y_true), _shape(y_pred)
    true_last = true_shape[-1] if true_shape else None
    pred_last = pred_shape[-1] if pred_shape else None
    is_binary = pred_last == 1
    is_sparse = len(true_shape) < len(pred_shape) or (
        true_last == 1 and pred_last is not None and pred_last > 1
    )
    return is_binary, is_sparse


def _shape(value: Any) -> tuple:
    if isinstance(value, tuple) and all(isinstance(d, int) for d in value):
        return value
    shape = getattr(value, "shape", None)
    if shape is None:
        import numpy as np

        shape = np.shape(value)
    return tuple(shape)


def _instance(obj: Any, identifier: Any) -> Metric:
    if isinstance(obj, Metric):
        return obj
    if inspect.isclass(obj) and issubclass(obj, Metric):
        try:
            return obj()
        except TypeError as err:
            raise ValueError(
                f"Metric {obj.__name__} needs arguments, so it cannot be built from"
                f" {identifier!r} alone. Pass an instance, e.g."
                f" {obj.__name__}(...), or a config dict."
            ) from err
    if callable(obj):
        return MeanMetricWrapper(obj, name=_object_name(obj))
    raise ValueError(f"Could not interpret `metrics` identifier: {identifier!r}.")


def _object_name(obj: Any) -> str:
    name = getattr(obj, "name", None)
    if isinstance(name, str):
        return name
    if hasattr(obj, "__name__"):
        return to_snake_case(obj.__name__) if obj.__name__ != "<lambda>" else "lambda"
    return to_snake_case(type(obj).__name__)


def _raise_unknown(identifier: str, objects: dict) -> None:
    valid = sorted(objects)
    close = difflib.get_close_matches(str(identifier), valid, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"Unknown `metrics` identifier: {identifier!r}.{hint}"
        " Valid ids are Keras metric class names, their snake_case"
        " (e.g. 'mean_squared_error') and aliases (e.g. 'mse', 'mae')."
    )


__all__ = sorted(
    [cls.__name__ for cls in ALL_OBJECTS]
    + list(_FUNCTIONS)
    + [
        "TorchMetricsAdapter",
        "deserialize",
        "get",
        "get_metric",
        "resolve_accuracy",
        "serialize",
    ]
)
