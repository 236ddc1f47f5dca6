"""Tests for capturing and restoring the global random generator states."""

import io
import random

import numpy as np
import pytest
import torch

from torchfit.utils.rng_state import get_rng_state, set_rng_state


def _draw():
    return (
        torch.rand(4),
        np.random.rand(4),
        np.random.randn(1),
        [random.random() for _ in range(4)],
        random.gauss(0, 1),
    )


@pytest.mark.parametrize("seed", [0, 123])
def test_round_trip_through_a_weights_only_file(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    np.random.randn(3)  # leaves a cached gaussian in NumPy's state
    random.gauss(0, 1)  # and in Python's
    buffer = io.BytesIO()
    torch.save(get_rng_state(), buffer)
    first = _draw()
    buffer.seek(0)
    set_rng_state(torch.load(buffer, weights_only=True))
    second = _draw()
    assert torch.equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    np.testing.assert_array_equal(first[2], second[2])
    assert first[3:] == second[3:]


def test_state_is_a_snapshot():
    state = get_rng_state()
    a = torch.rand(2)
    torch.rand(5)
    set_rng_state(state)
    assert torch.equal(a, torch.rand(2))


def test_missing_keys_are_a_clear_error():
    with pytest.raises(ValueError, match="lacks the keys"):
        set_rng_state({"torch": torch.get_rng_state()})
