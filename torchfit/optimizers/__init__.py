"""Keras-exact optimizers for torch: classes, string ids and (de)serialization.

Owns `get`, `serialize` and `deserialize` (the lookup Keras does for
`compile(optimizer="rmsprop")`). The shared pipeline is in `base.py`, each
update rule in its own module, learning-rate schedules in `schedules.py`.
"""

import difflib
from typing import Any, Union

import torch

from torchfit.optimizers import schedules
from torchfit.optimizers.adadelta import Adadelta
from torchfit.optimizers.adafactor import Adafactor
from torchfit.optimizers.adagrad import Adagrad
from torchfit.optimizers.adam import Adam
from torchfit.optimizers.adamax import Adamax
from torchfit.optimizers.adamw import AdamW
from torchfit.optimizers.base import Optimizer, deserialize, serialize
from torchfit.optimizers.ftrl import Ftrl
from torchfit.optimizers.lamb import Lamb
from torchfit.optimizers.lion import Lion
from torchfit.optimizers.loss_scale_optimizer import LossScaleOptimizer
from torchfit.optimizers.muon import Muon
from torchfit.optimizers.nadam import Nadam
from torchfit.optimizers.rmsprop import RMSprop
from torchfit.optimizers.sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "RMSprop",
    "Adam",
    "AdamW",
    "Adagrad",
    "Adadelta",
    "Adamax",
    "Nadam",
    "Lion",
    "Ftrl",
    "Adafactor",
    "Lamb",
    "Muon",
    "LossScaleOptimizer",
    "schedules",
    "get",
    "serialize",
    "deserialize",
]

ALL_OBJECTS = (SGD, RMSprop, Adam, AdamW, Adagrad, Adadelta, Adamax, Nadam, Lion, Ftrl)
ALL_OBJECTS += (Adafactor, Muon, LossScaleOptimizer, Lamb)
ALL_OBJECTS_DICT = {cls.__name__.lower(): cls for cls in ALL_OBJECTS}
# Keras 3 deserializes Lamb by its class name but gives it no string id:
# `keras.optimizers.get("lamb")` raises.
_NOT_STRING_IDS = {"lamb"}


def _unknown_identifier(identifier: str) -> ValueError:
    valid = sorted(set(ALL_OBJECTS_DICT) - _NOT_STRING_IDS)
    close = difflib.get_close_matches(identifier.lower(), valid, n=3)
    hint = ""
    if identifier.lower() in _NOT_STRING_IDS:
        name = ALL_OBJECTS_DICT[identifier.lower()].__name__
        hint = f" As in Keras, {name} has no string id: pass {name}() instead."
    return ValueError(
        f"Unknown optimizer: '{identifier}'.{hint} Closest valid ids: {close or valid}."
    )


def get(identifier: Any) -> Union[Optimizer, torch.optim.Optimizer, type, None]:
    """Resolves what `compile(optimizer=...)` accepts.

    Args:
        identifier: A string id (`"rmsprop"`, `"Adam"`; case-insensitive), a
            config dict, an optimizer instance (torchfit or torch; returned
            as is), a `torch.optim.Optimizer` subclass (returned as is, for the
            model to create with its parameters), or `None`.

    Returns:
        The optimizer, the class, or `None`.

    Raises:
        ValueError: For an unknown id or an uninterpretable identifier.

    Example:

    >>> type(get("rmsprop")).__name__
    'RMSprop'
    """
    if identifier is None:
        return None
    if isinstance(identifier, str):
        cls = ALL_OBJECTS_DICT.get(identifier.lower())
        if cls is None or identifier.lower() in _NOT_STRING_IDS:
            raise _unknown_identifier(identifier)
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, torch.optim.Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, torch.optim.Optimizer):
        return identifier
    raise ValueError(
        "Could not interpret optimizer identifier of type"
        f" {type(identifier).__name__}. Expected a string id such as 'rmsprop',"
        " a config dict, or an optimizer instance or class."
    )
