"""Seeds every random number generator a training run draws from.

Owns `set_random_seed`: Python's `random`, NumPy's global generator and
torch's CPU and CUDA generators. Deterministic kernels (cuDNN flags,
`torch.use_deterministic_algorithms`) are the user's choice and are left alone.
"""

import random

import numpy as np
import torch

_global_seed = None


def set_random_seed(seed: int) -> None:
    """Seeds Python, NumPy and torch so a program runs the same way twice.

    Calls `random.seed(seed)`, `np.random.seed(seed)` and
    `torch.manual_seed(seed)`; the latter also seeds every CUDA device. Some
    GPU kernels stay nondeterministic; see `torch.use_deterministic_algorithms`.

    Args:
        seed: The seed, an int in `[0, 2**32)` (NumPy's range).

    Raises:
        ValueError: If `seed` is not an int, or is outside `[0, 2**32)`.

    Example:

    >>> set_random_seed(1337)
    >>> a = torch.rand(2)
    >>> set_random_seed(1337)
    >>> bool(torch.equal(a, torch.rand(2)))
    True
    """
    global _global_seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(
            "Expected `seed` argument to be an integer."
            f" Received: seed={seed!r} (of type {type(seed).__name__})."
        )
    seed = int(seed)
    if not 0 <= seed < 2**32:
        raise ValueError(
            f"`seed` must be in [0, 2**32) so NumPy accepts it. Received: seed={seed}."
        )
    _global_seed = seed
    random.seed(seed)
    np.random.seed(seed)
    # manual_seed also seeds every CUDA device (queued until CUDA initialises).
    torch.manual_seed(seed)


def get_random_seed():
    """Returns the seed last passed to `set_random_seed`, or `None` if never called."""
    return _global_seed
