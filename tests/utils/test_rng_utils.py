import random

import numpy as np
import pytest
import torch

from torchfit.utils.rng_utils import get_random_seed, set_random_seed


def _draw():
    return random.random(), float(np.random.rand()), torch.rand(3)


@pytest.mark.parametrize("seed", [0, 1337, 2**32 - 1])
def test_same_seed_repeats_every_generator(seed):
    set_random_seed(seed)
    first = _draw()
    set_random_seed(seed)
    second = _draw()
    assert first[:2] == second[:2]
    assert torch.equal(first[2], second[2])
    assert get_random_seed() == seed


def test_different_seeds_differ():
    set_random_seed(1)
    first = _draw()
    set_random_seed(2)
    second = _draw()
    assert first[0] != second[0] and first[1] != second[1]
    assert not torch.equal(first[2], second[2])


def test_numpy_integer_seed_is_accepted():
    set_random_seed(np.int64(5))
    assert get_random_seed() == 5


@pytest.mark.parametrize("seed", [1.0, "1", None, True])
def test_non_int_seed_raises(seed):
    with pytest.raises(ValueError, match="seed"):
        set_random_seed(seed)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_out_of_range_seed_raises(seed):
    with pytest.raises(ValueError, match="2\\*\\*32"):
        set_random_seed(seed)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_generator_is_seeded():
    set_random_seed(3)
    first = torch.rand(3, device="cuda")
    set_random_seed(3)
    assert torch.equal(first, torch.rand(3, device="cuda"))
