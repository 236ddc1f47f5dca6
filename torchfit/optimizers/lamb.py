"""Keras's Lamb: Adam's step rescaled per parameter by a trust ratio.

Owns the Lamb update rule; the shared pipeline (clipping, weight decay, EMA,
accumulation, learning rate) is in `base.py`.
"""

from typing import Any, Optional

import torch

from torchfit.optimizers.base import LearningRate, Optimizer

__all__ = ["Lamb"]


class Lamb(Optimizer):
    """Lamb as Keras computes it.

    `m += (g - m) * (1 - beta_1)`, `v += (g^2 - v) * (1 - beta_2)`, then
    `u = m_hat / (sqrt(v_hat) + epsilon)` with the bias-corrected moments
    `m_hat = m / (1 - beta_1^t)` and `v_hat = v / (1 - beta_2^t)`, and
    `w -= ratio * lr * u`, where `ratio = ||w|| / ||u||` (L2 norms of the
    whole parameter), or 1 when either norm is 0. Unlike Adam, epsilon is
    added to the bias-corrected `sqrt(v_hat)`.

    Keras 3 exports `keras.optimizers.Lamb` but gives it no string id
    (`keras.optimizers.get("lamb")` fails), so neither does torchfit; it is
    saved and loaded by its class name.

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

    >>> w = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    >>> opt = Lamb([w], learning_rate=0.1)
    >>> w.grad = torch.tensor([1.0, 0.0])
    >>> _ = opt.step()  # u is about (1, 0): the step is lr * ||w|| / ||u|| = 0.5
    >>> [round(v, 4) for v in w.tolist()]
    [2.5, 4.0]
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
        state["velocity"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _update_step(self, params, grads, states, lr, step) -> None:
        momentums = [s["momentum"] for s in states]
        velocities = [s["velocity"] for s in states]
        torch._foreach_add_(
            momentums, torch._foreach_sub(grads, momentums), alpha=1.0 - self.beta_1
        )
        squares = torch._foreach_mul(grads, grads)
        torch._foreach_sub_(squares, velocities)
        torch._foreach_add_(velocities, squares, alpha=1.0 - self.beta_2)
        updates = torch._foreach_div(momentums, 1.0 - self.beta_1**step)
        denominators = torch._foreach_div(velocities, 1.0 - self.beta_2**step)
        torch._foreach_sqrt_(denominators)
        torch._foreach_add_(denominators, self.epsilon)
        torch._foreach_div_(updates, denominators)
        torch._foreach_mul_(updates, self._trust_ratios(params, updates))
        torch._foreach_add_(params, updates, alpha=-lr)

    @staticmethod
    def _trust_ratios(params: list, updates: list) -> list:
        """`||w|| / ||u||` per parameter, 1 where either norm is 0 (as 0-d tensors)."""
        weight_norms = torch.stack(torch._foreach_norm(params))
        update_norms = torch.stack(torch._foreach_norm(updates))
        usable = (weight_norms > 0) & (update_norms > 0)
        ratios = torch.where(usable, weight_norms / update_norms, torch.ones_like(weight_norms))
        return list(ratios.unbind())

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
