"""Sees through `torch.compile`'s wrapper to the module it compiled.

Owns `uncompiled`: the module a compiled module (`torch.compile(net)`, an
`OptimizedModule`) stands for, whose weights are saved and loaded under their
own names (no `_orig_mod.` prefix), whose layers a summary lists, and whose
`forward` says which inputs it takes; and `uncompiled_names`, which reads a
state_dict saved from a compiled module under those names. Compiling belongs to the user, or to
`compile(jit_compile=True)` in `models/forward.py`.
"""

import sys

from torch import nn

__all__ = ["uncompiled", "uncompiled_names"]

#: What `torch.compile`'s wrapper puts before the names in its `state_dict`.
COMPILED_PREFIX = "_orig_mod."


def _optimized_module_class():
    """torch's `OptimizedModule`, or `None` when nothing was compiled in this process
    (torch.compile loads `torch._dynamo`, which is slow to import for nothing)."""
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")
    return getattr(eval_frame, "OptimizedModule", None)


def uncompiled(module: nn.Module) -> nn.Module:
    """The module `torch.compile` wrapped, or `module` itself when it is not compiled.

    Args:
        module: Any `nn.Module`, compiled or not.

    Returns:
        The original module: its `state_dict` has the names a plain module
        loads, and it is the very module the compiled one runs (one set of weights).

    Example:
    >>> import torch
    >>> net = nn.Linear(2, 1)
    >>> uncompiled(torch.compile(net)) is net, uncompiled(net) is net
    (True, True)
    """
    optimized = _optimized_module_class()
    while optimized is not None and isinstance(module, optimized):
        # `_orig_mod` is where torch keeps the original module; it has no public name.
        module = module._orig_mod
    return module


def uncompiled_names(state: dict, module: nn.Module) -> dict:
    """`state` with the names `module` uses, when it was saved from a compiled module.

    A `state_dict` taken from `torch.compile(net)` names every weight
    `_orig_mod.<name>`; loading it into a plain module needs `<name>`.

    Example:
    >>> import torch
    >>> sorted(uncompiled_names(torch.compile(nn.Linear(2, 1)).state_dict(), nn.Linear(2, 1)))
    ['bias', 'weight']
    """
    if not isinstance(state, dict) or not state:
        return state
    if not all(isinstance(key, str) and key.startswith(COMPILED_PREFIX) for key in state):
        return state
    if any(key.startswith(COMPILED_PREFIX) for key in module.state_dict()):
        return state
    return {key[len(COMPILED_PREFIX) :]: value for key, value in state.items()}
