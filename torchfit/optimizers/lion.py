"""Keras's Lion: the sign of an interpolated momentum as the step.

Owns the Lion update rule; the shared pipeline (clipping, weight decay, EMA,
accumulation, learning rate) is in `base.py`.
"""

from typing import Any, Optional

import torch

from torchfit.optimizers.base import LearningRate, Optimizer

__all__ = ["Lion"]


class Lion(Optimizer):
    """Lion as Keras computes it.

    `w -= lr * sign(beta_1 * m + (1 - beta_1) * g)`, then
    `m = beta_2 * m + (1 - beta_2) * g`.

    Args:
        params: Parameters or param groups, or `None` to `build` later; a
            number here is the learning rate. Defaults to `None`.
        learning_rate: Float, schedule or callable. Defaults to `0.001`.
        beta_1: Interpolation factor of the step, in (0, 1]. Defaults to
            `0.9`.
        beta_2: Decay of the momentum. Defaults to `0.99`.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
            ema_momentum, ema_overwrite_frequency, loss_scale_factor,
            gradient_accumulation_steps, name: As in `Optimizer`.

    Raises:
        ValueError: If `beta_1` is not in (0, 1].

    Example:

    >>> w = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
    >>> opt = Lion([w], learning_rate=0.1)
    >>> w.grad = torch.tensor([3.0, -0.5])
    >>> _ = opt.step()
    >>> w.data
    tensor([0.9000, 1.1000])
    """

    _update_reads_step = False  # the rule reads the learning rate, not the step

    def __init__(
        self,
        params: Any = None,
        learning_rate: LearningRate = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.99,
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
        if beta_1 <= 0 or beta_1 > 1:
            raise ValueError(
                "Argument `beta_1` must be in the (0, 1] range. Otherwise, the"
                f" optimizer degenerates to SignSGD. Received: beta_1={beta_1}."
            )
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

    def _init_slots(self, param: torch.Tensor, state: dict) -> None:
        state["momentum"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _update_step(self, params, grads, states, lr, step) -> None:
        momentums = [s["momentum"] for s in states]
        directions = torch._foreach_mul(momentums, self.beta_1)
        torch._foreach_add_(directions, grads, alpha=1.0 - self.beta_1)
        directions = torch._foreach_sign(directions)
        torch._foreach_add_(params, directions, alpha=-lr)
        torch._foreach_mul_(momentums, self.beta_2)
        torch._foreach_add_(momentums, grads, alpha=1.0 - self.beta_2)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2})
        return config
