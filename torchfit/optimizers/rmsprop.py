"""Keras's RMSprop: rho 0.9, epsilon 1e-7 inside the square root.

Owns the RMSprop update rule; the shared pipeline (clipping, weight decay,
EMA, accumulation, learning rate) is in `base.py`.
"""

from typing import Any, Optional

import torch

from torchfit.optimizers.base import LearningRate, Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop as Keras computes it.

    `v = rho * v + (1 - rho) * g^2`, then `w -= lr * g / sqrt(v + epsilon)`.
    With `centered`, the mean gradient `a` is tracked too and the denominator
    is `sqrt(v - a^2 + epsilon)`. With `momentum`, the buffer accumulates the
    lr-scaled increment: `m = momentum * m + increment; w -= m`. (torch's
    RMSprop defaults to alpha 0.99 and adds eps outside the square root.)

    Args:
        params: Parameters or param groups, or `None` to `build` later; a
            number here is the learning rate. Defaults to `None`.
        learning_rate: Float, schedule or callable. Defaults to `0.001`.
        rho: Discount of the squared-gradient average. Defaults to `0.9`.
        momentum: Momentum factor. Defaults to `0.0`.
        epsilon: Small constant added inside the square root. Defaults to
            `1e-7`.
        centered: Normalize by the estimated gradient variance. Defaults to
            `False`.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
            ema_momentum, ema_overwrite_frequency, loss_scale_factor,
            gradient_accumulation_steps, name: As in `Optimizer`.

    Example:

    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = RMSprop([w], learning_rate=0.1, epsilon=0.0)
    >>> w.grad = torch.tensor([2.0])
    >>> _ = opt.step()  # v = 0.1 * 4 = 0.4; w -= 0.1 * 2 / sqrt(0.4)
    >>> round(w.item(), 4)
    0.6838
    """

    _update_reads_step = False  # the rule reads the learning rate, not the step

    def __init__(
        self,
        params: Any = None,
        learning_rate: LearningRate = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
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
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered

    def _init_slots(self, param: torch.Tensor, state: dict) -> None:
        state["velocity"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if self.momentum > 0:
            state["momentum"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if self.centered:
            state["average_gradient"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _update_step(self, params, grads, states, lr, step) -> None:
        rho = self.rho
        velocities = [s["velocity"] for s in states]
        torch._foreach_mul_(velocities, rho)
        torch._foreach_addcmul_(velocities, grads, grads, value=1.0 - rho)
        if self.centered:
            averages = [s["average_gradient"] for s in states]
            torch._foreach_mul_(averages, rho)
            torch._foreach_add_(averages, grads, alpha=1.0 - rho)
            denominators = torch._foreach_addcmul(velocities, averages, averages, value=-1.0)
            torch._foreach_add_(denominators, self.epsilon)
        else:
            denominators = torch._foreach_add(velocities, self.epsilon)
        torch._foreach_sqrt_(denominators)
        if self.momentum > 0:
            momentums = [s["momentum"] for s in states]
            torch._foreach_mul_(momentums, self.momentum)
            torch._foreach_addcdiv_(momentums, grads, denominators, value=lr)
            torch._foreach_sub_(params, momentums)
        else:
            torch._foreach_addcdiv_(params, grads, denominators, value=-lr)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "rho": self.rho,
                "momentum": self.momentum,
                "epsilon": self.epsilon,
                "centered": self.centered,
            }
        )
        return config
