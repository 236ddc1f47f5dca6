"""Keras-exact optimizers for torch: classes, string ids and (de)serialization.

Owns `get`, `serialize` and `deserialize` (the lookup Keras does for
`compile(optimizer="rmsprop")`). The shared pipeline is in `base.py`, each
update rule in its own module, learning-rate schedules in `schedules.py`.
"""

import difflib
from typing import Any, Optional, Union

import torch

from torchfit.optimizers import schedules
from torchfit.optimizers.adadelta import Adadelta
from torchfit.optimizers.adagrad import Adagrad
from torchfit.optimizers.adam import Adam
from torchfit.optimizers.adamax import Adamax
from torchfit.optimizers.adamw import AdamW
from torchfit.optimizers.base import Optimizer
from torchfit.optimizers.ftrl import Ftrl
from torchfit.optimizers.lion import Lion
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
    "schedules",
    "get",
    "serialize",
    "deserialize",
]

ALL_OBJECTS = (SGD, RMSprop, Adam, AdamW, Adagrad, Adadelta, Adamax, Nadam, Lion, Ftrl)
ALL_OBJECTS_DICT = {cls.__name__.lower(): cls for cls in ALL_OBJECTS}


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    """Returns `{"module", "class_name", "config", "registered_name"}` for `optimizer`.

    Example:

    >>> serialize(Adam())["class_name"]
    'Adam'
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"`optimizer` must be a torchfit Optimizer. Received: type {type(optimizer).__name__}."
        )
    cls = type(optimizer)
    builtin = ALL_OBJECTS_DICT.get(cls.__name__.lower()) is cls
    return {
        "module": "torchfit.optimizers" if builtin else cls.__module__,
        "class_name": cls.__name__,
        "config": optimizer.get_config(),
        "registered_name": None if builtin else cls.__name__,
    }


def _unknown_identifier(identifier: str) -> ValueError:
    close = difflib.get_close_matches(identifier.lower(), list(ALL_OBJECTS_DICT), n=3)
    return ValueError(
        f"Unknown optimizer: '{identifier}'."
        f" Closest valid ids: {close or sorted(ALL_OBJECTS_DICT)}."
    )


def deserialize(
    config: dict[str, Any], custom_objects: Optional[dict[str, Any]] = None
) -> Optimizer:
    """Creates an optimizer from `serialize()`'s output (Keras's layout works too).

    Class names are case-insensitive for the built-in optimizers.

    Args:
        config: A dict with `"class_name"` and `"config"`.
        custom_objects: Optional mapping of names to custom optimizer classes.

    Returns:
        An unbuilt optimizer.

    Raises:
        ValueError: If the class name is unknown.
    """
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            "`config` must be a dict with 'class_name' and 'config' keys."
            f" Received: type {type(config).__name__}."
        )
    name = config["class_name"]
    custom_objects = custom_objects or {}
    cls = custom_objects.get(name) or ALL_OBJECTS_DICT.get(str(name).lower())
    if cls is None:
        raise _unknown_identifier(str(name))
    return cls.from_config(dict(config.get("config") or {}), custom_objects=custom_objects)


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
        if cls is None:
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
