"""Keras's SGD: plain gradient descent, with optional (Nesterov) momentum.

Owns the SGD update rule; the shared pipeline (clipping, weight decay, EMA,
accumulation, learning rate) is in `base.py`.
"""

from typing import Any, Optional

import torch

from torchfit.optimizers.base import LearningRate, Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    """Gradient descent with Keras's momentum form.

    Without momentum: `w -= lr * g`. With momentum, the velocity holds the
    learning rate: `v = momentum * v - lr * g`, then `w += v`, or with
    Nesterov `w += momentum * v - lr * g`. (torch's SGD keeps `lr` outside the
    buffer; the two agree only while `lr` is constant.)

    Args:
        params: Parameters or param groups, or `None` to `build` later; a
            number here is the learning rate. Defaults to `None`.
        learning_rate: Float, schedule or callable. Defaults to `0.01`.
        momentum: Float in [0, 1]. Defaults to `0.0`.
        nesterov: Whether to use Nesterov momentum. Defaults to `False`.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
            ema_momentum, ema_overwrite_frequency, loss_scale_factor,
            gradient_accumulation_steps, name: As in `Optimizer`.

    Example:

    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = SGD([w], learning_rate=0.1)
    >>> w.grad = torch.tensor([2.0])
    >>> _ = opt.step()
    >>> w.data
    tensor([0.8000])
    """

    _update_reads_step = False  # the rule reads the learning rate, not the step

    def __init__(
        self,
        params: Any = None,
        learning_rate: LearningRate = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
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
        if (
            isinstance(momentum, bool)
            or not isinstance(momentum, (int, float))
            or not 0 <= momentum <= 1
        ):
            raise ValueError(
                f"`momentum` must be a float between [0, 1]. Received: momentum={momentum!r}"
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
        self.momentum = float(momentum)
        self.nesterov = nesterov

    def _init_slots(self, param: torch.Tensor, state: dict) -> None:
        if self.momentum != 0:
            state["momentum"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _update_step(self, params, grads, states, lr, step) -> None:
        if self.momentum == 0:
            torch._foreach_add_(params, grads, alpha=-lr)
            return
        velocities = [s["momentum"] for s in states]
        torch._foreach_mul_(velocities, self.momentum)
        torch._foreach_add_(velocities, grads, alpha=-lr)
        if self.nesterov:
            torch._foreach_add_(params, grads, alpha=-lr)
            torch._foreach_add_(params, velocities, alpha=self.momentum)
        else:
            torch._foreach_add_(params, velocities)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config
