"""Keras's Nadam: Adam with Nesterov momentum and Keras's momentum schedule.

Owns the Nadam update rule and its running product of momentum factors
(`u_product`, saved in `state_dict`); the shared pipeline is in `base.py`.
"""

import math
from typing import Any, Optional

import torch

from torchfit.optimizers.base import LearningRate, Optimizer

__all__ = ["Nadam"]


class Nadam(Optimizer):
    """Nadam as Keras computes it.

    With `u_t = beta_1 * (1 - 0.5 * 0.96^t)` and `U_t = u_1 * ... * u_t`:
    `m_hat = u_{t+1} * m / (1 - U_{t+1}) + (1 - u_t) * g / (1 - U_t)`,
    `v_hat = v / (1 - beta_2^t)`, `w -= lr * m_hat / (sqrt(v_hat) + epsilon)`.
    (torch's NAdam uses `0.96^(0.004 t)` and eps 1e-8.)

    Args:
        params: Parameters or param groups, or `None` to `build` later; a
            number here is the learning rate. Defaults to `None`.
        learning_rate: Float, schedule or callable. Defaults to `0.001`.
        beta_1: Decay of the first moment. Defaults to `0.9`.
        beta_2: Decay of the second moment. Defaults to `0.999`.
        epsilon: Small constant for numerical stability. Defaults to `1e-7`.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
            ema_momentum, ema_overwrite_frequency, loss_scale_factor,
            gradient_accumulation_steps, name: As in `Optimizer`.

    Example:

    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = Nadam([w], learning_rate=0.1)
    >>> w.grad = torch.tensor([2.0])
    >>> _ = opt.step()
    >>> round(w.item(), 4)
    0.8937
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
        self._u_product = 1.0
        self._coefficients = (0.0, 0.0, 1.0)

    def _momentum_factor(self, step: int) -> float:
        return self.beta_1 * (1.0 - 0.5 * 0.96**step)

    def _prepare_update(self, step: int) -> None:
        # Advance the product once per update, whatever the number of groups.
        u_t = self._momentum_factor(step)
        u_next = self._momentum_factor(step + 1)
        u_product = self._u_product * u_t
        self._u_product = u_product
        self._coefficients = (
            u_next / (1.0 - u_product * u_next),
            (1.0 - u_t) / (1.0 - u_product),
            math.sqrt(1.0 - self.beta_2**step),
        )

    def _init_slots(self, param: torch.Tensor, state: dict) -> None:
        state["momentum"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["velocity"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _update_step(self, params, grads, states, lr, step) -> None:
        momentum_scale, grad_scale, velocity_correction = self._coefficients
        momentums = [s["momentum"] for s in states]
        velocities = [s["velocity"] for s in states]
        torch._foreach_mul_(momentums, self.beta_1)
        torch._foreach_add_(momentums, grads, alpha=1.0 - self.beta_1)
        torch._foreach_mul_(velocities, self.beta_2)
        torch._foreach_addcmul_(velocities, grads, grads, value=1.0 - self.beta_2)
        numerators = torch._foreach_mul(momentums, momentum_scale)
        torch._foreach_add_(numerators, grads, alpha=grad_scale)
        # sqrt(v / (1 - beta_2^t)) == sqrt(v) / sqrt(1 - beta_2^t)
        denominators = torch._foreach_sqrt(velocities)
        torch._foreach_div_(denominators, velocity_correction)
        torch._foreach_add_(denominators, self.epsilon)
        torch._foreach_addcdiv_(params, numerators, denominators, value=-lr)

    def _extra_state(self) -> dict[str, Any]:
        return {"u_product": self._u_product}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self._u_product = float(extra.get("u_product", 1.0))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
