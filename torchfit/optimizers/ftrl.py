"""Keras's FTRL-Proximal, with L1, L2 and L2-shrinkage regularization.

Owns the Ftrl update rule; the shared pipeline (clipping, weight decay, EMA,
accumulation, learning rate) is in `base.py`. Ftrl is rarely used, so its rule
runs per parameter rather than with fused `_foreach` ops.
"""

from typing import Any, Optional

import torch

from torchfit.optimizers.base import LearningRate, Optimizer

__all__ = ["Ftrl"]


class Ftrl(Optimizer):
    """FTRL-Proximal as Keras computes it.

    With `p = -learning_rate_power`, `n` the accumulator and `z` the linear
    term: `n' = n + g^2`; `z += g + 2 * l2_shrinkage * w - (n'^p - n^p) / lr * w`;
    `w = (clip(z, -l1, l1) - z) / (n'^p / lr + 2 * (l2 + beta / (2 * lr)))`.

    Args:
        params: Parameters or param groups, or `None` to `build` later; a
            number here is the learning rate. Defaults to `None`.
        learning_rate: Float, schedule or callable. Defaults to `0.001`.
        learning_rate_power: Float <= 0. Defaults to `-0.5`.
        initial_accumulator_value: Starting accumulator value, >= 0.
            Defaults to `0.1`.
        l1_regularization_strength: Float >= 0. Defaults to `0.0`.
        l2_regularization_strength: Float >= 0. Defaults to `0.0`.
        l2_shrinkage_regularization_strength: Float >= 0, applied to the
            gradient (magnitude penalty). Defaults to `0.0`.
        beta: The FTRL-Proximal beta. Defaults to `0.0`.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
            ema_momentum, ema_overwrite_frequency, loss_scale_factor,
            gradient_accumulation_steps, name: As in `Optimizer`.

    Raises:
        ValueError: If an argument is outside its range.

    Example:

    >>> w = torch.nn.Parameter(torch.tensor([0.0]))
    >>> opt = Ftrl([w], learning_rate=0.1)
    >>> w.grad = torch.tensor([1.0])
    >>> _ = opt.step()
    >>> w.item() < 0
    True
    """

    _update_reads_step = False  # the rule reads the learning rate, not the step

    def __init__(
        self,
        params: Any = None,
        learning_rate: LearningRate = 0.001,
        learning_rate_power: float = -0.5,
        initial_accumulator_value: float = 0.1,
        l1_regularization_strength: float = 0.0,
        l2_regularization_strength: float = 0.0,
        l2_shrinkage_regularization_strength: float = 0.0,
        beta: float = 0.0,
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
        if learning_rate_power > 0.0:
            raise ValueError(
                "`learning_rate_power` needs to be negative or zero."
                f" Received: learning_rate_power={learning_rate_power}."
            )
        non_negative = {
            "initial_accumulator_value": initial_accumulator_value,
            "l1_regularization_strength": l1_regularization_strength,
            "l2_regularization_strength": l2_regularization_strength,
            "l2_shrinkage_regularization_strength": l2_shrinkage_regularization_strength,
        }
        for argument, value in non_negative.items():
            if value < 0.0:
                raise ValueError(
                    f"`{argument}` needs to be positive or zero. Received: {argument}={value}."
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
        self.learning_rate_power = learning_rate_power
        self.initial_accumulator_value = initial_accumulator_value
        self.l1_regularization_strength = l1_regularization_strength
        self.l2_regularization_strength = l2_regularization_strength
        self.l2_shrinkage_regularization_strength = l2_shrinkage_regularization_strength
        self.beta = beta

    def _init_slots(self, param: torch.Tensor, state: dict) -> None:
        state["accumulator"] = torch.full_like(
            param, self.initial_accumulator_value, memory_format=torch.preserve_format
        )
        state["linear"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _update_step(self, params, grads, states, lr, step) -> None:
        power = -self.learning_rate_power
        l1 = self.l1_regularization_strength
        l2 = self.l2_regularization_strength + self.beta / (2.0 * lr)
        shrinkage = 2.0 * self.l2_shrinkage_regularization_strength
        for param, grad, state in zip(params, grads, states):
            accumulator, linear = state["accumulator"], state["linear"]
            new_accumulator = accumulator + grad * grad
            new_power = new_accumulator.pow(power)
            sigma = (new_power - accumulator.pow(power)) / lr
            linear.add_(grad + shrinkage * param - sigma * param)
            quadratic = new_power / lr + 2.0 * l2
            param.copy_((linear.clamp(-l1, l1) - linear) / quadratic)
            accumulator.copy_(new_accumulator)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
                "beta": self.beta,
            }
        )
        return config
