"""`torchfit.losses`: every Keras 3 loss, and how identifiers become Loss objects.

Owns the public namespace and the lookup rules: `get` (strings, config dicts,
Loss instances, plain callables, torch loss modules), `serialize` /
`deserialize` for compile configs, and `resolve_crossentropy` for the
shape-chosen `"crossentropy"`/`"ce"`. The loss classes live in losses.py and
probabilistic.py; weighting and reduction in loss.py.
"""

import difflib
import inspect
from collections.abc import Callable
from typing import Any, Optional

import torch

from torchfit.losses.loss import (
    Loss,
    LossFunctionWrapper,
    TorchLoss,
    reduce_weighted_values,
    squeeze_or_expand_to_same_rank,
    to_snake_case,
)
from torchfit.losses.losses import (
    CTC,
    CategoricalHinge,
    Circle,
    CosineSimilarity,
    Dice,
    Hinge,
    Huber,
    LogCosh,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    SquaredHinge,
    Tversky,
    categorical_hinge,
    circle,
    cosine_similarity,
    ctc,
    dice,
    hinge,
    huber,
    log_cosh,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
    squared_hinge,
    tversky,
)
from torchfit.losses.probabilistic import (
    BinaryCrossentropy,
    BinaryFocalCrossentropy,
    CategoricalCrossentropy,
    CategoricalFocalCrossentropy,
    CategoricalGeneralizedCrossEntropy,
    KLDivergence,
    Poisson,
    SparseCategoricalCrossentropy,
    binary_crossentropy,
    binary_focal_crossentropy,
    categorical_crossentropy,
    categorical_focal_crossentropy,
    categorical_generalized_cross_entropy,
    kl_divergence,
    poisson,
    sparse_categorical_crossentropy,
)

# Keras's short names, as plain functions (Keras exports them the same way).
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kl_divergence
bce = BCE = binary_crossentropy

_CLASSES = {
    cls.__name__: cls
    for cls in (
        MeanSquaredError,
        MeanAbsoluteError,
        MeanAbsolutePercentageError,
        MeanSquaredLogarithmicError,
        CosineSimilarity,
        Huber,
        LogCosh,
        Hinge,
        SquaredHinge,
        CategoricalHinge,
        KLDivergence,
        Poisson,
        BinaryCrossentropy,
        BinaryFocalCrossentropy,
        CategoricalCrossentropy,
        CategoricalFocalCrossentropy,
        SparseCategoricalCrossentropy,
        CategoricalGeneralizedCrossEntropy,
        Dice,
        Tversky,
        Circle,
        CTC,
    )
}

# Function name -> the class computing it, so string ids get the fast paths.
_FUNCTIONS = {
    "mean_squared_error": (mean_squared_error, MeanSquaredError),
    "mean_absolute_error": (mean_absolute_error, MeanAbsoluteError),
    "mean_absolute_percentage_error": (mean_absolute_percentage_error, MeanAbsolutePercentageError),
    "mean_squared_logarithmic_error": (mean_squared_logarithmic_error, MeanSquaredLogarithmicError),
    "cosine_similarity": (cosine_similarity, CosineSimilarity),
    "huber": (huber, Huber),
    "log_cosh": (log_cosh, LogCosh),
    "hinge": (hinge, Hinge),
    "squared_hinge": (squared_hinge, SquaredHinge),
    "categorical_hinge": (categorical_hinge, CategoricalHinge),
    "kl_divergence": (kl_divergence, KLDivergence),
    "poisson": (poisson, Poisson),
    "binary_crossentropy": (binary_crossentropy, BinaryCrossentropy),
    "binary_focal_crossentropy": (binary_focal_crossentropy, BinaryFocalCrossentropy),
    "categorical_crossentropy": (categorical_crossentropy, CategoricalCrossentropy),
    "categorical_focal_crossentropy": (
        categorical_focal_crossentropy,
        CategoricalFocalCrossentropy,
    ),
    "sparse_categorical_crossentropy": (
        sparse_categorical_crossentropy,
        SparseCategoricalCrossentropy,
    ),
    "dice": (dice, Dice),
    "tversky": (tversky, Tversky),
    "circle": (circle, Circle),
    "ctc": (ctc, CTC),
}

_ALIASES = {
    "mse": "mean_squared_error",
    "MSE": "mean_squared_error",
    "mae": "mean_absolute_error",
    "MAE": "mean_absolute_error",
    "mape": "mean_absolute_percentage_error",
    "MAPE": "mean_absolute_percentage_error",
    "msle": "mean_squared_logarithmic_error",
    "MSLE": "mean_squared_logarithmic_error",
    "kld": "kl_divergence",
    "KLD": "kl_divergence",
    "bce": "binary_crossentropy",
    "BCE": "binary_crossentropy",
}

_CROSSENTROPY_IDS = ("crossentropy", "ce")

# Functions usable only by object or config (Keras gives them no string id).
_EXTRA_FUNCTIONS = {"categorical_generalized_cross_entropy": categorical_generalized_cross_entropy}


def _valid_ids() -> list[str]:
    return sorted([*_CLASSES, *_FUNCTIONS, *_ALIASES, *_CROSSENTROPY_IDS])


def _unknown_id_error(identifier: str) -> ValueError:
    close = difflib.get_close_matches(identifier, _valid_ids(), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(
        f"Unknown `loss` identifier. Received: loss={identifier!r}.{hint}"
        " Expected a Keras loss class name (e.g. 'MeanSquaredError'), a function"
        " name (e.g. 'mean_squared_error'), an alias ('mse', 'mae', 'bce', ...),"
        " a Loss, a callable fn(y_true, y_pred) or a torch loss module."
    )


def _from_string(identifier: str) -> Loss:
    if identifier in _CLASSES:
        return _CLASSES[identifier]()
    function_name = _ALIASES.get(identifier, identifier)
    if function_name in _FUNCTIONS:
        # The string stays the name, as Keras's compile does ("mse" logs as mse).
        return _FUNCTIONS[function_name][1](name=identifier)
    if identifier.lower() in _CROSSENTROPY_IDS:
        return _ShapeResolvedCrossentropy(name=identifier)
    raise _unknown_id_error(identifier)


def get(identifier: Any) -> Optional[Loss]:
    """Returns a `Loss` for any identifier Keras accepts, plus torch loss modules.

    Args:
        identifier: `None`; a string (class name `"MeanSquaredError"`, function
            name `"mean_squared_error"`, alias `"mse"`, or `"crossentropy"`/`"ce"`
            resolved from shapes at the first call); a config dict with
            `class_name` and `config`; a `Loss` instance or class; a plain
            callable `fn(y_true, y_pred)`, wrapped so it gets Keras's sample
            weighting and reduction; or a torch loss module such as
            `nn.CrossEntropyLoss()`, wrapped in `TorchLoss` (called as
            `module(y_pred, y_true)`, the torch order).

    Returns:
        A `Loss`, or `None` for `None`.

    Raises:
        ValueError: For an unknown string, naming the closest valid ones.
        TypeError: For anything that is not a loss.

    Example:
        >>> get("mse").name
        'mse'
        >>> type(get("SparseCategoricalCrossentropy")).__name__
        'SparseCategoricalCrossentropy'
        >>> get(torch.nn.CrossEntropyLoss()).name
        'cross_entropy_loss'
    """
    if identifier is None:
        return None
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        return _from_string(identifier)
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, torch.nn.Module):
        return TorchLoss(identifier)
    if inspect.isclass(identifier):
        if issubclass(identifier, Loss):
            return identifier()
        if issubclass(identifier, torch.nn.Module):
            return TorchLoss(identifier())
    elif callable(identifier):
        return LossFunctionWrapper(identifier, name=_function_name(identifier))
    raise TypeError(
        "Could not interpret `loss` identifier."
        f" Received: loss of type {type(identifier).__name__}."
        " Expected a string, a config dict, a Loss, a callable fn(y_true, y_pred)"
        " or a torch loss module."
    )


def _function_name(fn: Callable) -> str:
    return getattr(fn, "__name__", None) or to_snake_case(type(fn).__name__)


def resolve_crossentropy(y_true: Any, y_pred: Any, name: str = "crossentropy") -> Loss:
    """Chooses the cross-entropy for `"crossentropy"`/`"ce"` from the shapes.

    Same rule as Keras's `"accuracy"` resolution: `y_pred.shape[-1] == 1` is
    binary; a lower-rank y_true, or a y_true with last dimension 1 against
    several classes, is sparse categorical; anything else is categorical.

    Args:
        y_true: Targets (only the shape is read).
        y_pred: Predictions (only the shape is read).
        name: Name of the returned loss. Defaults to `"crossentropy"`.

    Returns:
        A `BinaryCrossentropy`, `SparseCategoricalCrossentropy` or
        `CategoricalCrossentropy` with default arguments.
    """
    true_shape, pred_shape = (
        tuple(getattr(y_true, "shape", ())),
        tuple(getattr(y_pred, "shape", ())),
    )
    true_last = true_shape[-1] if true_shape else None
    pred_last = pred_shape[-1] if pred_shape else None
    if pred_last == 1:
        return BinaryCrossentropy(name=name)
    if len(true_shape) < len(pred_shape) or (
        true_last == 1 and pred_last is not None and pred_last > 1
    ):
        return SparseCategoricalCrossentropy(name=name)
    return CategoricalCrossentropy(name=name)


class _ShapeResolvedCrossentropy(Loss):
    """`"crossentropy"`/`"ce"`: picks its cross-entropy from the first batch's shapes."""

    def __init__(self, name="crossentropy", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.resolved: Optional[Loss] = None

    @property
    def target_rule(self):
        return None if self.resolved is None else self.resolved.target_rule

    def __call__(self, y_true, y_pred, sample_weight=None):
        if self.resolved is None:
            self.resolved = resolve_crossentropy(y_true, y_pred, name=self.name)
            self.resolved.reduction = self.reduction
            self.resolved._dtype = self._dtype
        return self.resolved(y_true, y_pred, sample_weight)

    def call(self, y_true, y_pred):
        if self.resolved is None:
            self.resolved = resolve_crossentropy(y_true, y_pred, name=self.name)
        return self.resolved.call(y_true, y_pred)


def serialize(loss: Any) -> Any:
    """Returns a JSON-friendly description of `loss` that `deserialize` rebuilds.

    Args:
        loss: A `Loss` (gives `{"class_name": ..., "config": ...}`), a string
            (returned as is), a built-in loss function (its name) or `None`.

    Returns:
        A dict, a string or `None`.
    """
    if loss is None or isinstance(loss, str):
        return loss
    if isinstance(loss, _ShapeResolvedCrossentropy):
        return loss.name
    if isinstance(loss, Loss):
        return {"class_name": type(loss).__name__, "config": loss.get_config()}
    name = getattr(loss, "__name__", None)
    if callable(loss) and name is not None:
        return name
    raise TypeError(f"Cannot serialize a loss of type {type(loss).__name__}.")


def _find_function(name: str, custom_objects: Optional[dict]) -> Callable:
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    name = _ALIASES.get(name, name)
    if name in _FUNCTIONS:
        return _FUNCTIONS[name][0]
    if name in _EXTRA_FUNCTIONS:
        return _EXTRA_FUNCTIONS[name]
    raise ValueError(
        f"Unknown loss function {name!r} in a LossFunctionWrapper config."
        " Pass it in `custom_objects={name: fn}`."
    )


def deserialize(config: Any, custom_objects: Optional[dict] = None) -> Optional[Loss]:
    """Rebuilds a loss from `serialize`'s output.

    Args:
        config: A string id, or a dict with `class_name` and `config`.
        custom_objects: Optional mapping of names to user `Loss` classes or
            functions. Defaults to None.

    Returns:
        A `Loss`, or `None` for `None`.
    """
    if config is None:
        return None
    if isinstance(config, str):
        if custom_objects and config in custom_objects:
            return get(custom_objects[config])
        return get(config)
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            "`config` must be a string id or a dict with 'class_name' and 'config'."
            f" Received: config of type {type(config).__name__}."
        )
    class_name = config["class_name"]
    arguments = dict(config.get("config") or {})
    known = {
        **_CLASSES,
        "LossFunctionWrapper": LossFunctionWrapper,
        "TorchLoss": TorchLoss,
        **(custom_objects or {}),
    }
    if class_name not in known:
        close = difflib.get_close_matches(class_name, list(known), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"Unknown loss class_name {class_name!r} in `config`.{hint}"
            " Pass user classes in `custom_objects`."
        )
    cls = known[class_name]
    if cls is LossFunctionWrapper:
        arguments["fn"] = _find_function(arguments["fn"], custom_objects)
    if not (inspect.isclass(cls) and issubclass(cls, Loss)):
        return get(cls)
    return cls.from_config(arguments)


__all__ = [
    "Loss",
    "LossFunctionWrapper",
    "TorchLoss",
    *_CLASSES,
    *_FUNCTIONS,
    "categorical_generalized_cross_entropy",
    *_ALIASES,
    "get",
    "serialize",
    "deserialize",
    "resolve_crossentropy",
    "reduce_weighted_values",
    "squeeze_or_expand_to_same_rank",
]
