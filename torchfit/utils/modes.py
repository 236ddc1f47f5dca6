"""Runs a block of code with a module in train or eval mode, then puts every mode back.

Owns `run_in_mode`, which the steps (`model(x, training=False)`) and the loops
(evaluate and predict run in eval mode) share, and the cheap check that spares
the hot path the walk over the submodules. Which mode a step asks for belongs to
the caller.
"""

import contextlib
from collections.abc import Iterator

from torch import nn

__all__ = ["mode_differs", "run_in_mode"]


def mode_differs(model: nn.Module, training: bool) -> bool:
    """Whether `model` (or the module it wraps) is not in the mode `training` asks for.

    Two attribute reads: the hot path (a step already in its mode) pays nothing more.
    """
    if model.training != training:
        return True
    wrapped = model._modules.get("module")
    return wrapped is not None and wrapped.training != training


@contextlib.contextmanager
def run_in_mode(model: nn.Module, training: bool) -> Iterator[None]:
    """Runs the block with `model` in train (`True`) or eval (`False`) mode, then
    puts every submodule back in the mode it had, also when the block raises.

    The walk over the submodules happens only when the mode has to change.

    Example:
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    >>> with run_in_mode(net, False):
    ...     net[1].training
    False
    >>> net[1].training
    True
    """
    if not mode_differs(model, training):
        yield
        return
    # Each submodule's own flag is kept: a part the user froze in eval() stays so.
    saved = [(module, module.training) for module in model.modules()]
    model.train(training)
    try:
        yield
    finally:
        for module, was_training in saved:
            module.training = was_training
