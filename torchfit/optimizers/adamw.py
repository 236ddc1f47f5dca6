"""Keras's AdamW: Adam with decoupled weight decay on by default (0.004).

Owns only AdamW's defaults and its weight-decay check; the update rule is
`adam.py`'s and the decay itself is `base.py`'s.
"""

from typing import Any, Optional

from torchfit.optimizers.adam import Adam
from torchfit.optimizers.base import LearningRate

__all__ = ["AdamW"]


class AdamW(Adam):
    """Adam with decoupled weight decay: `w -= w * weight_decay * lr` each step.

    Keras's default `weight_decay` is 0.004 (torch's AdamW uses 0.01) and
    epsilon is Keras's Adam form (see `Adam`).

    Args:
        params: Parameters or param groups, or `None` to `build` later; a
            number here is the learning rate. Defaults to `None`.
        learning_rate: Float, schedule or callable. Defaults to `0.001`.
        weight_decay: Decoupled weight decay; must not be `None`. Defaults to
            `0.004`.
        beta_1: Decay of the first moment. Defaults to `0.9`.
        beta_2: Decay of the second moment. Defaults to `0.999`.
        epsilon: Small constant for numerical stability. Defaults to `1e-7`.
        amsgrad: Use the AMSGrad variant. Defaults to `False`.
        clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor,
            gradient_accumulation_steps, name: As in `Optimizer`.

    Raises:
        ValueError: If `weight_decay` is `None`.

    Example:

    >>> AdamW().weight_decay
    0.004
    """

    def __init__(
        self,
        params: Any = None,
        learning_rate: LearningRate = 0.001,
        weight_decay: float = 0.004,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        *,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: Optional[int] = None,
        loss_scale_factor: Optional[float] = None,
        gradient_accumulation_steps: Optional[int] = None,
        name: Optional[str] = None,
        **kwargs: Any,
    ):
        if weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
        super().__init__(
            params,
            learning_rate,
            beta_1,
            beta_2,
            epsilon,
            amsgrad,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
            **kwargs,
        )
