"""Keras's Adadelta: rho 0.95, epsilon 1e-7, learning rate 0.001.

Owns the Adadelta update rule; the shared pipeline (clipping, weight decay,
EMA, accumulation, learning rate) is in `base.py`.
"""

from typing import Any, Optional

import torch

from torchfit.optimizers.base import LearningRate, Optimizer

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    """Adadelta as Keras computes it.

    `G = rho * G + (1 - rho) * g^2`;
    `d = -sqrt(D + epsilon) / sqrt(G + epsilon) * g`;
    `D = rho * D + (1 - rho) * d^2`; `w += lr * d`.

    Args:
        params: Parameters or param groups, or `None` to `build` later; a
            number here is the learning rate. Defaults to `None`.
        learning_rate: Float, schedule or callable. Defaults to `0.001`.
        rho: Decay rate of both averages. Defaults to `0.95`.
        epsilon: Small constant for numerical stability. Defaults to `1e-7`.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
            ema_momentum, ema_overwrite_frequency, loss_scale_factor,
            gradient_accumulation_steps, name: As in `Optimizer`.

    Example:

    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = Adadelta([w], learning_rate=1.0, rho=0.0, epsilon=1.0)
    >>> w.grad = torch.tensor([0.0])
    >>> _ = opt.step()  # a zero gradient gives a zero step
    >>> w.item()
    1.0
    """

    _update_reads_step = False  # the rule reads the learning rate, not the step

    def __init__(
        self,
        params: Any = None,
        learning_rate: LearningRate = 0.001,
        rho: float = 0.95,
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
        self.rho = rho
        self.epsilon = epsilon

    def _init_slots(self, param: torch.Tensor, state: dict) -> None:
        state["accumulated_grad"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["accumulated_delta_var"] = torch.zeros_like(
            param, memory_format=torch.preserve_format
        )

    def _update_step(self, params, grads, states, lr, step) -> None:
        rho, epsilon = self.rho, self.epsilon
        squared_grads = [s["accumulated_grad"] for s in states]
        squared_deltas = [s["accumulated_delta_var"] for s in states]
        torch._foreach_mul_(squared_grads, rho)
        torch._foreach_addcmul_(squared_grads, grads, grads, value=1.0 - rho)
        numerators = torch._foreach_add(squared_deltas, epsilon)
        torch._foreach_sqrt_(numerators)
        denominators = torch._foreach_add(squared_grads, epsilon)
        torch._foreach_sqrt_(denominators)
        deltas = torch._foreach_mul(numerators, grads)
        torch._foreach_div_(deltas, denominators)
        torch._foreach_neg_(deltas)
        torch._foreach_mul_(squared_deltas, rho)
        torch._foreach_addcmul_(squared_deltas, deltas, deltas, value=1.0 - rho)
        torch._foreach_add_(params, deltas, alpha=lr)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"rho": self.rho, "epsilon": self.epsilon})
        return config
