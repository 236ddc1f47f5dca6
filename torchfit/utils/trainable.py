"""Keras's `trainable` flag on any torch module: what is frozen, and what freezing does.

Owns the flag itself (a `trainable` attribute, `False` on a frozen module; as in
Keras, setting it on a module sets it on every submodule), `set_trainable` (which
also takes `requires_grad` off the frozen parameters at once and puts it back when
unfrozen), which modules of a tree are frozen (a module is frozen when it or any
module above it says `trainable = False`), the weights that follows from it, and
running the BatchNorm layers of frozen parts in inference mode. When a model
applies the flags (at `compile`) and which parameters its optimizer holds belong
to `models/freezing.py`.

A parameter is trainable when its `requires_grad` is set and no module on its way
from the root is frozen. Unfreezing gives `requires_grad` back to the parameters
that freezing took it from, and only to those: a parameter frozen with
`requires_grad_(False)` by hand stays frozen.
"""

from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parameter import is_lazy

__all__ = [
    "apply_trainable",
    "frozen_modules",
    "has_uninitialized_weights",
    "is_trainable",
    "keep_frozen_norms_in_inference",
    "set_trainable",
    "trainable_parameters",
    "weight_counts",
]

# Names of the parameters of a module that freezing took `requires_grad` from (a set,
# in the module's __dict__, so it follows the module through copy.deepcopy and pickle).
_FROZEN_BY_FLAG = "_torchfit_frozen_parameters"
# Set on a BatchNorm layer that freezing switched from train to eval mode.
_NORM_SWITCHED = "_torchfit_norm_switched"


def _check_flag(trainable: Any) -> bool:
    if not isinstance(trainable, bool):
        raise TypeError(
            "`trainable` must be True or False."
            f" Received: trainable of type {type(trainable).__name__} ({trainable!r:.40})."
        )
    return trainable


def is_trainable(module: nn.Module) -> bool:
    """The module's own `trainable` flag: `False` only where it was set so.

    Example:
    >>> net = nn.Linear(2, 1)
    >>> is_trainable(net)
    True
    >>> net.trainable = False  # the Keras spelling works on any module
    >>> is_trainable(net)
    False
    """
    return getattr(module, "trainable", True) is not False


def set_trainable(module: nn.Module, trainable: bool) -> nn.Module:
    """Freezes (`False`) or unfreezes (`True`) a module, as Keras's `layer.trainable = ...`.

    Sets `module.trainable` on the module and every submodule (as Keras's setter
    does), takes `requires_grad` off their parameters at once (so the next
    backward pass gives them no gradient) and runs their BatchNorm layers in
    inference mode, as Keras's `BatchNormalization` does when not trainable.
    Unfreezing undoes exactly that: parameters frozen by hand with
    `requires_grad_(False)` stay frozen. A `torchfit.Model` trains the change
    from its next `compile()` (its optimizer is built over the trainable
    parameters there).

    `model.trainable = False` on a `torchfit.Model` calls this. On a plain torch
    module, `module.trainable = False` is honoured too, at the next `compile()`
    of the model holding it; this function makes it take effect at once.

    Args:
        module: Any `nn.Module`.
        trainable: `False` to freeze, `True` to unfreeze.

    Returns:
        `module`, for chaining.

    Raises:
        TypeError: If `trainable` is not a bool, or `module` is not an `nn.Module`.

    Example:
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    >>> _ = set_trainable(net[0], False)
    >>> [p.requires_grad for p in net.parameters()]
    [False, False, True, True]
    >>> _ = set_trainable(net, False)
    >>> net[1].training, net[1].trainable
    (False, False)
    >>> _ = set_trainable(net, True)
    >>> [p.requires_grad for p in net.parameters()], net[1].training
    ([True, True, True, True], True)
    """
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"`module` must be a torch.nn.Module. Received: module of type {type(module).__name__}."
        )
    trainable = _check_flag(trainable)
    for submodule in module.modules():
        # Written to __dict__: a torchfit.Model's `trainable` property reads it there,
        # and its setter calls this function.
        submodule.__dict__["trainable"] = trainable
        if trainable:
            _give_back_requires_grad(submodule)
            _restore_norm_mode(submodule)
        else:
            _take_requires_grad(submodule)
            _switch_norm_to_inference(submodule)
    return module


def _take_requires_grad(module: nn.Module) -> None:
    taken = module.__dict__.setdefault(_FROZEN_BY_FLAG, set())
    for name, parameter in module._parameters.items():
        if parameter is not None and parameter.requires_grad:
            parameter.requires_grad_(False)
            parameter.grad = None  # a frozen weight's last gradient means nothing now
            taken.add(name)


def _give_back_requires_grad(module: nn.Module) -> None:
    for name in module.__dict__.pop(_FROZEN_BY_FLAG, ()):
        parameter = module._parameters.get(name)
        if parameter is not None:
            parameter.requires_grad_(True)


def _switch_norm_to_inference(module: nn.Module) -> None:
    if isinstance(module, _BatchNorm) and module.training:
        module.training = False
        module.__dict__[_NORM_SWITCHED] = True


def _restore_norm_mode(module: nn.Module) -> None:
    if module.__dict__.pop(_NORM_SWITCHED, False):
        module.training = True


def frozen_modules(root: nn.Module) -> list:
    """The modules of `root`'s tree that are frozen: those whose own `trainable`
    is `False`, and everything below them (each module once).

    Example:
    >>> net = nn.Sequential(nn.Sequential(nn.Linear(2, 2)), nn.Linear(2, 1))
    >>> net[0].trainable = False
    >>> [type(m).__name__ for m in frozen_modules(net)]
    ['Sequential', 'Linear']
    """
    found: dict = {}

    def walk(module: nn.Module, frozen: bool) -> None:
        frozen = frozen or not is_trainable(module)
        if frozen:
            found[id(module)] = module
        for child in module.children():
            if not (frozen and id(child) in found):
                walk(child, frozen)

    walk(root, False)
    return list(found.values())


def _frozen_parameter_ids(frozen: list) -> set:
    return {id(p) for module in frozen for p in module._parameters.values() if p is not None}


def trainable_parameters(root: nn.Module) -> list:
    """The parameters of `root` that train: `requires_grad` set and no frozen module
    on their way from `root` (each once, in `parameters()` order)."""
    frozen = _frozen_parameter_ids(frozen_modules(root))
    return [p for p in root.parameters() if p.requires_grad and id(p) not in frozen]


def apply_trainable(root: nn.Module) -> None:
    """Brings `requires_grad` in line with the `trainable` flags of `root`'s tree.

    Parameters of frozen modules lose `requires_grad`; those that lost it to a
    flag since lifted get it back. A flag written as a plain attribute
    (`module.trainable = False` on a torch module) takes effect here.
    """
    frozen = frozen_modules(root)
    frozen_ids = {id(module) for module in frozen}
    for module in root.modules():
        if id(module) not in frozen_ids:
            _give_back_requires_grad(module)
    for module in frozen:
        _take_requires_grad(module)


def keep_frozen_norms_in_inference(root: nn.Module) -> None:
    """Puts the BatchNorm layers of the frozen parts of `root` in eval mode (Keras's
    `BatchNormalization` runs in inference mode when it is not trainable)."""
    for module in frozen_modules(root):
        if isinstance(module, _BatchNorm):
            module.training = False


def _is_weight_buffer(name: str, buffer: Any, module: nn.Module) -> bool:
    # BatchNorm's running statistics count as weights (Keras's moving mean and
    # variance); integer counters such as `num_batches_tracked` do not.
    return (
        isinstance(buffer, torch.Tensor)
        and name not in module._non_persistent_buffers_set
        and (buffer.is_floating_point() or buffer.is_complex())
    )


def has_uninitialized_weights(root: nn.Module) -> bool:
    """Whether a lazy module of `root` has not seen an input yet (its shapes are unknown).

    Example:
    >>> has_uninitialized_weights(nn.LazyLinear(2)), has_uninitialized_weights(nn.Linear(2, 2))
    (True, False)
    """
    tensors = [*root.parameters(), *root.buffers()]
    return any(is_lazy(tensor) for tensor in tensors)


def weight_counts(root: nn.Module) -> tuple[int, int]:
    """`(trainable, non_trainable)` weight counts of `root`, as `summary()` prints them.

    Non-trainable counts the frozen parameters and the persistent floating-point
    buffers (BatchNorm's running mean and variance), each tensor once.

    Example:
    >>> weight_counts(nn.BatchNorm1d(3))
    (6, 6)
    """
    trainable = {id(p): p for p in trainable_parameters(root)}
    non_trainable = {id(p): p for p in root.parameters() if id(p) not in trainable}
    for module in root.modules():
        for name, buffer in module._buffers.items():
            if _is_weight_buffer(name, buffer, module):
                non_trainable[id(buffer)] = buffer
    return (
        sum(p.numel() for p in trainable.values()),
        sum(t.numel() for t in non_trainable.values()),
    )
