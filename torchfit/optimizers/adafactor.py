"""Keras's Adafactor: factored second moments for matrices, a full one for vectors.

Owns the Adafactor update rule; the shared pipeline (clipping, weight decay,
EMA, accumulation, learning rate) is in `base.py`.
"""

import math
from typing import Any, Optional

import torch

from torchfit.optimizers.base import LearningRate, Optimizer

__all__ = ["Adafactor"]


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.square().mean().sqrt()


class Adafactor(Optimizer):
    """Adafactor as Keras computes it.

    With `t` the 1-based step, `rho = min(lr, 1 / sqrt(t))`,
    `beta_2_t = 1 - t ** beta_2_decay` and `g2 = g^2 + epsilon_1`:

    - a parameter of rank >= 2 keeps a row average `r` (its last axis
      averaged out) and a column average `c` (its second-to-last axis
      averaged out), each moved as `x = beta_2_t * x + (1 - beta_2_t) * mean(g2)`;
      the second moment is `v = r / mean(r) (outer) c` over the last two axes;
    - a parameter of rank < 2 keeps a full `v = beta_2_t * v + (1 - beta_2_t) * g2`.

    Then `u = g / sqrt(v)`, `u /= max(1, rms(u) / clip_threshold)` and
    `w -= max(epsilon_2, rms(w)) * rho * u`.

    Keras takes `min(lr, 1 / sqrt(t))` whatever `relative_step` says (it
    applies the same minimum again after the `relative_step` branch), so the
    flag is kept for the config and changes no number, as in Keras 3. Unlike
    Keras, the full-size `v` of a factored parameter is not stored: it is
    recomputed from `r` and `c` each step, which gives the same numbers with
    Adafactor's memory saving.

    Args:
        params: Parameters or param groups, or `None` to `build` later; a
            number here is the learning rate. Defaults to `None`.
        learning_rate: Float, schedule or callable. Defaults to `0.001`.
        beta_2_decay: Decay exponent of `beta_2`. Defaults to `-0.8`.
        epsilon_1: Added to the squared gradient. Defaults to `1e-30`.
        epsilon_2: Lower bound of the weights' RMS in the step size.
            Defaults to `1e-3`.
        clip_threshold: Threshold of the update's RMS clipping (independent
            of `clipnorm`, `clipvalue` and `global_clipnorm`). Defaults to
            `1.0`.
        relative_step: Kept as in Keras (see above). Defaults to `True`.
        weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema,
            ema_momentum, ema_overwrite_frequency, loss_scale_factor,
            gradient_accumulation_steps, name: As in `Optimizer`.

    Example:

    >>> w = torch.nn.Parameter(torch.ones(2, 2))
    >>> opt = Adafactor([w], learning_rate=0.5)
    >>> w.grad = torch.full((2, 2), 3.0)
    >>> _ = opt.step()  # u = 1 everywhere; step = max(1e-3, rms(w)) * min(0.5, 1)
    >>> w.data
    tensor([[0.5000, 0.5000],
            [0.5000, 0.5000]])
    """

    def __init__(
        self,
        params: Any = None,
        learning_rate: LearningRate = 0.001,
        beta_2_decay: float = -0.8,
        epsilon_1: float = 1e-30,
        epsilon_2: float = 1e-3,
        clip_threshold: float = 1.0,
        relative_step: bool = True,
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
        self.beta_2_decay = beta_2_decay
        self.epsilon_1 = epsilon_1
        self.epsilon_2 = epsilon_2
        self.clip_threshold = clip_threshold
        self.relative_step = relative_step

    def _init_slots(self, param: torch.Tensor, state: dict) -> None:
        if param.dim() >= 2:
            shape = param.shape
            state["r"] = param.new_zeros(shape[:-1])
            state["c"] = param.new_zeros(shape[:-2] + shape[-1:])
        else:
            state["velocity"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _update_step(self, params, grads, states, lr, step) -> None:
        rho = min(lr, 1.0 / math.sqrt(step))
        beta_2_t = 1.0 - float(step) ** self.beta_2_decay
        for param, grad, state in zip(params, grads, states):
            self._update_one(param, grad.to(param.dtype), state, rho, beta_2_t)

    def _update_one(self, param, grad, state, rho: float, beta_2_t: float) -> None:
        step_size = torch.clamp(_rms(param), min=self.epsilon_2) * rho
        squared = grad.square().add_(self.epsilon_1)
        if param.dim() >= 2:
            r, c = state["r"], state["c"]
            r.mul_(beta_2_t).add_(squared.mean(dim=-1), alpha=1.0 - beta_2_t)
            c.mul_(beta_2_t).add_(squared.mean(dim=-2), alpha=1.0 - beta_2_t)
            velocity = (r / r.mean(dim=-1, keepdim=True)).unsqueeze(-1) * c.unsqueeze(-2)
        else:
            velocity = state["velocity"]
            velocity.mul_(beta_2_t).add_(squared, alpha=1.0 - beta_2_t)
        update = grad / velocity.sqrt()
        update.div_(torch.clamp(_rms(update) / self.clip_threshold, min=1.0))
        param.sub_(update.mul_(step_size))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "beta_2_decay": self.beta_2_decay,
                "epsilon_1": self.epsilon_1,
                "epsilon_2": self.epsilon_2,
                "clip_threshold": self.clip_threshold,
                "relative_step": self.relative_step,
            }
        )
        return config
