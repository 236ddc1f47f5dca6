"""Chooses the dtype a model computes in: Keras's dtype policies on torch autocast.

Owns the policy names (`"float32"`, `"mixed_float16"`, `"mixed_bfloat16"`,
`"bfloat16"`, `"float16"`), the global policy, and the loss scaler that
`mixed_float16` needs. Where autocast is entered belongs to the model.
"""

import difflib
from typing import Optional, Union

import torch

# Keras 3 exports it here too: keras.mixed_precision.LossScaleOptimizer.
from torchfit.optimizers.loss_scale_optimizer import LossScaleOptimizer

__all__ = [
    "DTypePolicy",
    "LossScaleOptimizer",
    "Policy",
    "global_policy",
    "set_global_policy",
    "set_dtype_policy",
    "dtype_policy",
]

_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}


class DTypePolicy:
    """A dtype policy: the dtype of the weights and the dtype of the computation.

    Args:
        name: `"float32"`, `"float16"`, `"bfloat16"`, `"mixed_float16"` or
            `"mixed_bfloat16"`. Mixed policies keep float32 weights and run
            the forward pass and loss under autocast. Defaults to `None`:
            the global policy's name.

    Example:
    >>> policy = DTypePolicy("mixed_bfloat16")
    >>> policy.compute_dtype, policy.variable_dtype
    ('bfloat16', 'float32')
    """

    def __init__(self, name: Optional[str] = None):
        if name is None:
            name = _global_policy.name
        if not isinstance(name, str):
            raise TypeError(
                "`name` must be a policy name such as 'mixed_float16'."
                f" Received: name of type {type(name).__name__}."
            )
        if name not in _valid_names():
            close = difflib.get_close_matches(name, sorted(_valid_names()), n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise ValueError(
                f"Unknown dtype policy name={name!r}.{hint}"
                f" Expected one of {sorted(_valid_names())}."
            )
        self.name = name
        if name.startswith("mixed_"):
            self.compute_dtype = name[len("mixed_") :]
            self.variable_dtype = "float32"
        else:
            self.compute_dtype = self.variable_dtype = name

    @property
    def is_mixed(self) -> bool:
        """Whether the computation runs in a lower precision than the weights."""
        return self.compute_dtype != self.variable_dtype

    @property
    def torch_compute_dtype(self) -> torch.dtype:
        return _DTYPES[self.compute_dtype]

    @property
    def needs_loss_scaling(self) -> bool:
        """float16 gradients underflow without loss scaling; bfloat16 ones don't."""
        return self.is_mixed and self.compute_dtype == "float16"

    def __eq__(self, other) -> bool:
        return isinstance(other, DTypePolicy) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f'<DTypePolicy "{self.name}">'


Policy = DTypePolicy


def _valid_names() -> set:
    return set(_DTYPES) | {"mixed_float16", "mixed_bfloat16"}


_global_policy = DTypePolicy("float32")


def get_policy(policy: Union[str, DTypePolicy, None]) -> DTypePolicy:
    """Resolves a policy argument: `None` means the global policy."""
    if policy is None:
        return _global_policy
    if isinstance(policy, DTypePolicy):
        return policy
    return DTypePolicy(policy)


def set_global_policy(policy: Union[str, DTypePolicy, None]) -> None:
    """Sets the policy of every model compiled from now on without its own `dtype_policy`.

    Args:
        policy: A policy name or `DTypePolicy`; `None` resets to `"float32"`.
    """
    global _global_policy
    if policy is not None and not isinstance(policy, (str, DTypePolicy)):
        raise ValueError(
            "`policy` must be a policy name such as 'mixed_float16' or a `DTypePolicy`."
            f" Received: policy of type {type(policy).__name__}."
        )
    _global_policy = DTypePolicy("float32") if policy is None else get_policy(policy)


def global_policy() -> DTypePolicy:
    """The current global policy."""
    return _global_policy


# Keras 3 spells these too.
set_dtype_policy = set_global_policy
dtype_policy = global_policy


def make_loss_scaler(policy: DTypePolicy, device: torch.device) -> Optional[torch.amp.GradScaler]:
    """A dynamic loss scaler with Keras's `LossScaleOptimizer` settings, when needed.

    Keras starts at 2**15 and doubles the scale after 2,000 finite steps,
    halving it (and skipping the update) on a non-finite gradient.
    """
    if not policy.needs_loss_scaling:
        return None
    return torch.amp.GradScaler(
        device.type, init_scale=2.0**15, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000
    )
