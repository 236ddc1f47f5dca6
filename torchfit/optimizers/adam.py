"""Keras's Adam: epsilon 1e-7 in the "epsilon-hat" form, optional AMSGrad.

Owns the Adam update rule (AdamW reuses it); the shared pipeline (clipping,
weight decay, EMA, accumulation, learning rate) is in `base.py`.
"""

import math
from typing import Any, Optional

import torch

from torchfit.optimizers.base import LearningRate, Optimizer

__all__ = ["Adam"]


class Adam(Optimizer):
    """Adam as Keras computes it.

    `m = beta_1 * m + (1 - beta_1) * g`, `v = beta_2 * v + (1 - beta_2) * g^2`,
    then `w -= alpha_t * m / (sqrt(v) + epsilon)` with
    `alpha_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`: epsilon is added to
    the uncorrected `sqrt(v)` (torch adds it to the corrected one). With
    `amsgrad`, the running maximum of `v` is used instead of `v`.

    Args:
        params: Parameters or param groups, or `None` to `build` later; a
            number here is the learning rate. Defaults to `None`.
        learning_rate: Float, schedule or callable. Defaults to `0.001`.
        beta_1: Decay of the first moment. Defaults to `0.9`.
        beta_2: Decay of the second moment. Defaults to `0.999`.
        epsilon: Small constant for numerical stability. Defaults to `1e-7`.
        amsgrad: Use the AMSGrad variant. Defaults to `False`.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
            ema_momentum, ema_overwrite_frequency, loss_scale_factor,
            gradient_accumulation_steps, name: As in `Optimizer`.

    Example:

    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = Adam([w], learning_rate=0.1)
    >>> w.grad = torch.tensor([2.0])
    >>> _ = opt.step()  # the first Adam step moves by about lr
    >>> round(w.item(), 4)
    0.9
    """

    def __init__(
        self,
        params: Any = None,
        learning_rate: LearningRate = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        *,
        weight_decay: Optional[float] = None,
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
        super().__init__(
            params,
            learning_rate,
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
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.amsgrad = amsgrad

    def _init_slots(self, param: torch.Tensor, state: dict) -> None:
        state["momentum"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["velocity"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if self.amsgrad:
            state["velocity_hat"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _update_step(self, params, grads, states, lr, step) -> None:
        beta_1, beta_2 = self.beta_1, self.beta_2
        alpha = lr * math.sqrt(1.0 - beta_2**step) / (1.0 - beta_1**step)
        momentums = [s["momentum"] for s in states]
        velocities = [s["velocity"] for s in states]
        torch._foreach_mul_(momentums, beta_1)
        torch._foreach_add_(momentums, grads, alpha=1.0 - beta_1)
        torch._foreach_mul_(velocities, beta_2)
        torch._foreach_addcmul_(velocities, grads, grads, value=1.0 - beta_2)
        if self.amsgrad:
            maxima = [s["velocity_hat"] for s in states]
            torch._foreach_maximum_(maxima, velocities)
            velocities = maxima
        denominators = torch._foreach_sqrt(velocities)
        torch._foreach_add_(denominators, self.epsilon)
        torch._foreach_addcdiv_(params, momentums, denominators, value=-alpha)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "amsgrad": self.amsgrad,
            }
        )
        return config
