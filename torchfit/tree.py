"""Walks the nested structures (tensors in lists, tuples and dicts) that flow
through a step.

Owns structure traversal only: what a leaf means belongs to the caller.
"""

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["batch_size_of", "flatten", "map_structure", "is_nested"]


def is_nested(value: Any) -> bool:
    """Whether `value` is a list, tuple or mapping (a structure, not a leaf)."""
    return isinstance(value, (list, tuple, Mapping))


def map_structure(fn: Callable[[Any], Any], structure: Any) -> Any:
    """Applies `fn` to every leaf of `structure`, keeping its shape.

    `None` leaves are passed through untouched.
    """
    if structure is None:
        return None
    if isinstance(structure, Mapping):
        mapped = {key: map_structure(fn, value) for key, value in structure.items()}
        return mapped if type(structure) is dict else type(structure)(mapped)
    if isinstance(structure, tuple) and hasattr(structure, "_fields"):
        return type(structure)(*(map_structure(fn, value) for value in structure))
    if isinstance(structure, (list, tuple)):
        return type(structure)(map_structure(fn, value) for value in structure)
    return fn(structure)


def flatten(structure: Any) -> list:
    """Returns the leaves of `structure` in order (dicts in insertion order),
    skipping `None`."""
    if structure is None:
        return []
    if isinstance(structure, Mapping):
        return [leaf for value in structure.values() for leaf in flatten(value)]
    if isinstance(structure, (list, tuple)):
        return [leaf for value in structure for leaf in flatten(value)]
    return [structure]


def batch_size_of(structure: Any) -> int:
    """The number of samples in a batch: the first dimension of its first leaf
    that has one (1 when no leaf has a dimension).

    Example:
    >>> import numpy as np
    >>> batch_size_of({"a": np.zeros(()), "b": [np.zeros((4, 2))]}), batch_size_of(3.0)
    (4, 1)
    """
    shape = getattr(structure, "shape", None)
    if shape is not None:  # one tensor or array: the common case, without a walk
        return int(shape[0]) if len(shape) else 1
    for leaf in flatten(structure):
        shape = getattr(leaf, "shape", None)
        if shape is not None and len(shape):
            return int(shape[0])
    return 1
