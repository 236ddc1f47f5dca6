"""Keras's Muon: orthogonalized momentum for matrices, an Adam fallback for the rest.

Owns the Muon update rule, the Newton-Schulz orthogonalization, which
parameters go to the Adam fallback (Keras's rule, read on torch parameter
names) and Muon's two weight decays; the shared pipeline (clipping, EMA,
accumulation, learning rate) is in `base.py`.
"""

import math
import re
import warnings
from typing import Any, Optional

import torch

from torchfit.optimizers.base import LearningRate, Optimizer

__all__ = ["Muon"]


class Muon(Optimizer):
    """Muon as Keras computes it.

    A parameter takes the Adam fallback when it is not 2-D, when
    `exclude_embeddings` is set and its name contains "embedding" (any
    case), or when one of the `exclude_layers` regular expressions matches
    its name (`re.search`). Keras reads these on the variable path
    (`"dense/kernel"`); torchfit on the parameter's name from
    `named_parameters()` (`"dense.weight"`), which `Model.compile` passes. A
    torch `nn.Embedding` is a parameter named `<attribute>.weight`: it takes
    the fallback when its name contains "embedding" or matches
    `exclude_layers`. Keras recommends the fallback for the output layer too:
    name it in `exclude_layers`. Built on unnamed parameters, only the rank
    rule applies.

    Muon step (other 2-D parameters): `m = momentum * m + g`; with
    `nesterov` the direction is `g + momentum * m`, else `m`; it is
    orthogonalized by `ns_steps` Newton-Schulz iterations (coefficients
    `muon_a`, `muon_b`, `muon_c`) and `w -= lr * O * sqrt(max(rows, cols)) *
    rms_rate` (without the last two factors when `rms_rate` is `None`).
    A torch weight is the transpose of Keras's kernel; the orthogonalization
    and the scale are transpose-symmetric, so the numbers are the same.

    Adam fallback: Keras's Adam (epsilon added to the uncorrected `sqrt(v)`)
    at `lr * adam_lr_ratio`, with `adam_beta_1`, `adam_beta_2`.

    Weight decay: `w -= w * wd * lr` before the step, with `wd =
    weight_decay` for Muon parameters (a param group's `weight_decay`
    overrides it) and `adam_weight_decay` for the fallback; `None` skips it.

    Args:
        params: Parameters (preferably `named_parameters()`) or param groups,
            or `None` to `build` later; a number here is the learning rate.
            Defaults to `None`.
        learning_rate: Float, schedule or callable. Defaults to `0.001`.
        adam_beta_1: Decay of the fallback's first moment. Defaults to `0.9`.
        adam_beta_2: Decay of the fallback's second moment. Defaults to
            `0.999`.
        adam_weight_decay: Weight decay of the fallback parameters. Defaults
            to `0.004`.
        epsilon: The fallback's epsilon. Defaults to `1e-7`.
        weight_decay: Weight decay of the Muon parameters. Defaults to
            `0.004`.
        exclude_layers: Regular expressions; a parameter whose name matches
            one takes the fallback. Defaults to `None` (none).
        exclude_embeddings: Send parameters named like embeddings to the
            fallback. Defaults to `True`.
        muon_a, muon_b, muon_c: Newton-Schulz coefficients. Default to
            `3.4445`, `-4.7750`, `2.0315`.
        adam_lr_ratio: The fallback's learning rate over `learning_rate`.
            Defaults to `1`.
        momentum: Momentum of the Muon step. Defaults to `0.95`.
        ns_steps: Number of Newton-Schulz iterations. Defaults to `5`.
        nesterov: Use Nesterov momentum. Defaults to `True`.
        rms_rate: Moonlight's update scale (arXiv 2502.16982); `None`
            disables it. Defaults to `0.2`.
        clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor,
            gradient_accumulation_steps, name: As in `Optimizer`.

    Example:

    >>> layer = torch.nn.Linear(3, 2)
    >>> opt = Muon(layer.named_parameters())
    >>> layer(torch.ones(1, 3)).sum().backward()
    >>> _ = opt.step()
    >>> sorted(name for name, p in layer.named_parameters() if "velocity" in opt.state[p])
    ['bias']
    """

    def __init__(
        self,
        params: Any = None,
        learning_rate: LearningRate = 0.001,
        adam_beta_1: float = 0.9,
        adam_beta_2: float = 0.999,
        adam_weight_decay: Optional[float] = 0.004,
        epsilon: float = 1e-7,
        weight_decay: Optional[float] = 0.004,
        *,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: Optional[int] = None,
        loss_scale_factor: Optional[float] = None,
        gradient_accumulation_steps: Optional[int] = None,
        name: Optional[str] = None,
        exclude_layers: Optional[list] = None,
        exclude_embeddings: bool = True,
        muon_a: float = 3.4445,
        muon_b: float = -4.7750,
        muon_c: float = 2.0315,
        adam_lr_ratio: float = 1,
        momentum: float = 0.95,
        ns_steps: int = 5,
        nesterov: bool = True,
        rms_rate: Optional[float] = 0.2,
        **kwargs: Any,
    ):
        # `build` (called by the base class when params are given) reads these.
        self.exclude_layers = _check_exclude_layers(exclude_layers)
        self.exclude_embeddings = exclude_embeddings
        self._names_by_id: Optional[dict[int, Optional[str]]] = None
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
        self.adam_beta_1 = adam_beta_1
        self.adam_beta_2 = adam_beta_2
        self.epsilon = epsilon
        self.muon_a = muon_a
        self.muon_b = muon_b
        self.muon_c = muon_c
        self.adam_lr_ratio = adam_lr_ratio
        self.momentum = momentum
        self.ns_steps = ns_steps
        self.nesterov = nesterov
        self.adam_weight_decay = adam_weight_decay
        self.rms_rate = rms_rate

    # ------------------------------------------------- which rule per parameter

    def build(self, params) -> None:
        was_built = self._built
        super().build(params)
        if was_built:
            return
        unnamed = [
            p
            for group in self.param_groups
            if group.get("param_names") is None
            for p in group["params"]
            if p.dim() == 2
        ]
        if not unnamed:
            return
        if self.exclude_layers:
            raise ValueError(
                f"`exclude_layers={self.exclude_layers}` matches parameter names, but Muon"
                f" '{self.name}' was given {len(unnamed)} unnamed 2-D parameters. Build it"
                " with `module.named_parameters()`."
            )
        if self.exclude_embeddings:
            warnings.warn(
                f"Muon '{self.name}' was given unnamed parameters, so it cannot tell"
                " embeddings (which Keras sends to its Adam fallback) from other matrices."
                " Build it with `module.named_parameters()`, or pass"
                " `exclude_embeddings=False` to silence this.",
                stacklevel=2,
            )

    def _should_use_adamw(self, param: torch.Tensor, name: Optional[str]) -> bool:
        """Keras's rule, on the parameter's name from `named_parameters()`."""
        if param.dim() != 2:
            return True
        if name is None:
            return False
        if self.exclude_embeddings and "embedding" in name.lower():
            return True
        return any(re.search(pattern, name) for pattern in self.exclude_layers)

    def _states(self, params: list) -> list[dict]:
        # Names are looked up only while new slots are made, from a fresh map.
        self._names_by_id = None
        try:
            return super()._states(params)
        finally:
            self._names_by_id = None

    def _name_of(self, param: torch.Tensor) -> Optional[str]:
        if self._names_by_id is None:
            self._names_by_id = {}
            for group in self.param_groups:
                names = group.get("param_names") or [None] * len(group["params"])
                for p, name in zip(group["params"], names):
                    self._names_by_id[id(p)] = name
        return self._names_by_id.get(id(param))

    def _init_slots(self, param: torch.Tensor, state: dict) -> None:
        # As in Keras, a velocity marks a parameter of the Adam fallback.
        state["momentum"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if self._should_use_adamw(param, self._name_of(param)):
            state["velocity"] = torch.zeros_like(param, memory_format=torch.preserve_format)

    # ------------------------------------------------------------ weight decay

    def _apply_weight_decay(self, group: dict, params: list, lr: float) -> None:
        excluded = self._excluded()
        muon, adam = [], []
        for param in params:
            if id(param) not in excluded:
                (adam if "velocity" in self.state[param] else muon).append(param)
        for decay, chosen in ((group["weight_decay"], muon), (self.adam_weight_decay, adam)):
            if decay is not None and chosen:
                decrements = torch._foreach_mul(chosen, decay)
                torch._foreach_mul_(decrements, lr)
                torch._foreach_sub_(chosen, decrements)

    # ---------------------------------------------------------------- updates

    def _update_step(self, params, grads, states, lr, step) -> None:
        adam = [i for i, state in enumerate(states) if "velocity" in state]
        if adam:
            self._adam_step(
                [params[i] for i in adam], [grads[i] for i in adam],
                [states[i] for i in adam], lr * self.adam_lr_ratio, step,
            )  # fmt: skip
        for param, grad, state in zip(params, grads, states):
            if "velocity" not in state:
                self._muon_step(param, grad, state["momentum"], lr)

    def _adam_step(self, params, grads, states, lr: float, step: int) -> None:
        beta_1, beta_2 = self.adam_beta_1, self.adam_beta_2
        alpha = lr * math.sqrt(1.0 - beta_2**step) / (1.0 - beta_1**step)
        momentums = [s["momentum"] for s in states]
        velocities = [s["velocity"] for s in states]
        torch._foreach_add_(momentums, torch._foreach_sub(grads, momentums), alpha=1.0 - beta_1)
        squares = torch._foreach_mul(grads, grads)
        torch._foreach_sub_(squares, velocities)
        torch._foreach_add_(velocities, squares, alpha=1.0 - beta_2)
        denominators = torch._foreach_sqrt(velocities)
        torch._foreach_add_(denominators, self.epsilon)
        steps = torch._foreach_mul(momentums, alpha)
        torch._foreach_div_(steps, denominators)
        torch._foreach_sub_(params, steps)

    def _muon_step(self, param, grad, momentum_buffer, lr: float) -> None:
        momentum_buffer.add_(grad + momentum_buffer * (self.momentum - 1))
        direction = grad + self.momentum * momentum_buffer if self.nesterov else momentum_buffer
        update = self.zeropower_via_newtonschulz5(direction, self.ns_steps) * lr
        if self.rms_rate is not None:
            update = update * math.sqrt(max(update.shape[0], update.shape[1])) * self.rms_rate
        param.sub_(update)

    def zeropower_via_newtonschulz5(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """Approximately orthogonalizes `x` (`U V^T` of its SVD) by a quintic iteration.

        Works on the wide orientation of the last two axes and scales `x` to a
        Frobenius norm of at most 1 first, as Keras does.

        Raises:
            ValueError: If `x` has fewer than 2 dimensions.
        """
        if x.dim() < 2:
            raise ValueError(
                "Expected gradient or momentum to have at least 2 dimensions."
                f" Received: shape={tuple(x.shape)}"
            )
        a, b, c = self.muon_a, self.muon_b, self.muon_c
        tall = x.shape[-2] > x.shape[-1]
        if tall:
            x = x.transpose(-2, -1)
        x = x / (torch.linalg.norm(x, dim=(-2, -1), keepdim=True) + 1e-7)
        for _ in range(steps):
            gram = x @ x.transpose(-2, -1)
            polynomial = b * gram + c * gram @ gram
            x = a * x + polynomial @ x
        return x.transpose(-2, -1) if tall else x

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "adam_beta_1": self.adam_beta_1,
                "adam_beta_2": self.adam_beta_2,
                "epsilon": self.epsilon,
                "exclude_layers": self.exclude_layers,
                "muon_a": self.muon_a,
                "muon_b": self.muon_b,
                "muon_c": self.muon_c,
                "adam_lr_ratio": self.adam_lr_ratio,
                "momentum": self.momentum,
                "ns_steps": self.ns_steps,
                "nesterov": self.nesterov,
                "exclude_embeddings": self.exclude_embeddings,
                "adam_weight_decay": self.adam_weight_decay,
                "rms_rate": self.rms_rate,
            }
        )
        return config


def _check_exclude_layers(exclude_layers: Any) -> list:
    if exclude_layers is None:
        return []
    if isinstance(exclude_layers, str) or not all(isinstance(k, str) for k in exclude_layers):
        raise TypeError(
            "`exclude_layers` must be a list of strings (regular expressions matched"
            f" against parameter names). Received: {exclude_layers!r:.80}. Wrap a single"
            " pattern in a list: exclude_layers=['output']."
        )
    return list(exclude_layers)
