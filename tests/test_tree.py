"""torchfit.tree: walking the nested batches that flow through a step."""

import collections

import numpy as np
import pytest
import torch

from torchfit import tree


@pytest.mark.parametrize(
    "value, expected",
    [
        ([1], True),
        ((1, 2), True),
        ({"a": 1}, True),
        (torch.zeros(2), False),
        (np.zeros(2), False),
        (None, False),
        ("text", False),
    ],
)
def test_is_nested(value, expected):
    assert tree.is_nested(value) is expected


def test_flatten_walks_lists_tuples_and_dicts_in_order():
    structure = {"b": [1, (2, 3)], "a": {"c": 4}}
    # Dicts flatten in insertion order, not sorted order.
    assert tree.flatten(structure) == [1, 2, 3, 4]
    assert tree.flatten(5) == [5]
    assert tree.flatten([]) == []


def test_map_structure_keeps_the_structure_and_types():
    Pair = collections.namedtuple("Pair", ["left", "right"])
    structure = {"a": [1, 2], "b": (3, {"c": 4}), "d": Pair(5, 6)}
    mapped = tree.map_structure(lambda leaf: leaf * 10, structure)
    assert mapped == {"a": [10, 20], "b": (30, {"c": 40}), "d": Pair(50, 60)}
    assert isinstance(mapped["a"], list)
    assert isinstance(mapped["b"], tuple)
    assert isinstance(mapped["d"], Pair)


def test_map_structure_passes_none_through():
    calls = []
    result = tree.map_structure(lambda leaf: calls.append(leaf) or leaf, (1, None, [None, 2]))
    assert result == (1, None, [None, 2])
    assert calls == [1, 2]
    assert tree.map_structure(lambda leaf: 1 / 0, None) is None


def test_map_structure_keeps_ordered_dict_type():
    structure = collections.OrderedDict([("z", 1), ("a", 2)])
    mapped = tree.map_structure(lambda leaf: leaf + 1, structure)
    assert type(mapped) is collections.OrderedDict
    assert list(mapped.items()) == [("z", 2), ("a", 3)]
