"""Keras's Adagrad: accumulators start at 0.1, epsilon inside the square root.

Owns the Adagrad update rule; the shared pipeline (clipping, weight decay,
EMA, accumulation, learning rate) is in `base.py`.
"""

from typing import Any, Optional

import torch

from torchfit.optimizers.base import LearningRate, Optimizer

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad as Keras computes it.

    `a += g^2`, then `w -= lr * g / sqrt(a + epsilon)`, with `a` starting at
    `initial_accumulator_value` (torch starts at 0 and adds eps outside).

    Args:
        params: Parameters or param groups, or `None` to `build` later; a
            number here is the learning rate. Defaults to `None`.
        learning_rate: Float, schedule or callable. Defaults to `0.001`.
        initial_accumulator_value: Starting value of the accumulators.
            Defaults to `0.1`.
        epsilon: Small constant added inside the square root. Defaults to
            `1e-7`.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
            ema_momentum, ema_overwrite_frequency, loss_scale_factor,
            gradient_accumulation_steps, name: As in `Optimizer`.

    Example:

    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = Adagrad([w], learning_rate=0.1, initial_accumulator_value=0.0, epsilon=0.0)
    >>> w.grad = torch.tensor([2.0])
    >>> _ = opt.step()  # w -= 0.1 * 2 / sqrt(4)
    >>> round(w.item(), 4)
    0.9
    """

    _update_reads_step = False  # the rule reads the learning rate, not the step

    def __init__(
        self,
        params: Any = None,
        learning_rate: LearningRate = 0.001,
        initial_accumulator_value: float = 0.1,
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
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def _init_slots(self, param: torch.Tensor, state: dict) -> None:
        state["accumulator"] = torch.full_like(
            param, self.initial_accumulator_value, memory_format=torch.preserve_format
        )

    def _update_step(self, params, grads, states, lr, step) -> None:
        accumulators = [s["accumulator"] for s in states]
        torch._foreach_addcmul_(accumulators, grads, grads)
        denominators = torch._foreach_add(accumulators, self.epsilon)
        torch._foreach_sqrt_(denominators)
        torch._foreach_addcdiv_(params, grads, denominators, value=-lr)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon}
        )
        return config
