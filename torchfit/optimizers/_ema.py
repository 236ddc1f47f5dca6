"""Keeps Keras's exponential moving average (EMA) of the weights.

Owns the EMA arguments' checks, the update after each optimizer call (the
average starts at the weights of the first call, and every
`ema_overwrite_frequency` iterations the weights take the average), and
swapping weights with their averages in place. Where the averages live (the
`"average"` entry of each parameter's state) and when these run belong to
`base.py`; the `SwapEMAWeights` callback calls `Optimizer.swap_ema_weights`.
"""

from typing import Optional

import torch

__all__ = ["check_arguments", "swap", "update"]


def check_arguments(momentum: float, overwrite_frequency: Optional[int]) -> None:
    """Raises `ValueError` for an `ema_momentum` outside [0, 1] or a bad frequency."""
    if not 0 <= momentum <= 1:
        raise ValueError(f"`ema_momentum` must be in the range [0, 1]. Received: {momentum}")
    if overwrite_frequency is not None and (
        not isinstance(overwrite_frequency, int) or overwrite_frequency < 1
    ):
        raise ValueError(
            "`ema_overwrite_frequency` must be an integer >= 1 or None."
            f" Received: ema_overwrite_frequency={overwrite_frequency!r}"
        )


def update(
    params: list,
    averages: list,
    momentum: float,
    iterations: int,
    overwrite_frequency: Optional[int] = None,
) -> None:
    """Moves each average toward its weight, in place.

    Args:
        params: The weights.
        averages: Their moving averages, in the same order.
        momentum: Weight of the old average, in [0, 1].
        iterations: Updates applied before this call (the optimizer's
            `iterations`): at 0 the averages become the weights.
        overwrite_frequency: Copy the averages into the weights when
            `iterations + 1` is a multiple of this; `None` never does.
            Defaults to `None`.
    """
    momentum = momentum if iterations != 0 else 0.0
    torch._foreach_mul_(averages, momentum)
    torch._foreach_add_(averages, params, alpha=1.0 - momentum)
    if overwrite_frequency and (iterations + 1) % overwrite_frequency == 0:
        torch._foreach_copy_(params, averages)


def swap(params: list, averages: list) -> None:
    """Exchanges the values of each weight and its average, in place."""
    if params:
        weights = torch._foreach_add(params, 0.0)
        torch._foreach_copy_(params, averages)
        torch._foreach_copy_(averages, weights)
