"""Keras's Adamax: Adam with the infinity norm in place of the second moment.

Owns the Adamax update rule; the shared pipeline (clipping, weight decay,
EMA, accumulation, learning rate) is in `base.py`.
"""

from typing import Any, Optional

import torch

from torchfit.optimizers.base import LearningRate, Optimizer

__all__ = ["Adamax"]


class Adamax(Optimizer):
    """Adamax as Keras computes it.

    `m = beta_1 * m + (1 - beta_1) * g`, `u = max(beta_2 * u, |g|)`, then
    `w -= lr * m / ((1 - beta_1^t) * (u + epsilon))`.

    Args:
        params: Parameters or param groups, or `None` to `build` later; a
            number here is the learning rate. Defaults to `None`.
        learning_rate: Float, schedule or callable. Defaults to `0.001`.
        beta_1: Decay of the first moment. Defaults to `0.9`.
        beta_2: Decay of the infinity norm. Defaults to `0.999`.
        epsilon: Small constant for numerical stability. Defaults to `1e-7`.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
            ema_momentum, ema_overwrite_frequency, loss_scale_factor,
            gradient_accumulation_steps, name: As in `Optimizer`.

    Example:

    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = Adamax([w], learning_rate=0.1, epsilon=0.0)
    >>> w.grad = torch.tensor([2.0])
    >>> _ = opt.step()  # m = 0.2, u = 2: w -= 0.1 * 0.2 / (0.1 * 2)
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

    def _init_slots(self, param: torch.Tensor, state: dict) -> None:
        state["momentum"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["norm"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _update_step(self, params, grads, states, lr, step) -> None:
        momentums = [s["momentum"] for s in states]
        norms = [s["norm"] for s in states]
        torch._foreach_mul_(momentums, self.beta_1)
        torch._foreach_add_(momentums, grads, alpha=1.0 - self.beta_1)
        torch._foreach_mul_(norms, self.beta_2)
        torch._foreach_maximum_(norms, torch._foreach_abs(grads))
        denominators = torch._foreach_add(norms, self.epsilon)
        torch._foreach_addcdiv_(
            params, momentums, denominators, value=-lr / (1.0 - self.beta_1**step)
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
