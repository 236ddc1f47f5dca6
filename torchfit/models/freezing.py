"""Freezing a `torchfit.Model`, or a part of it, as Keras users expect.

Owns `model.trainable`, the train mode that keeps the BatchNorm layers of
frozen parts in inference mode, and Keras's rule that a change of `trainable`
takes effect at the next `compile`: there the flags of the whole tree are
applied (a plain `module.trainable = False` on a torch submodule included), the
optimizer holds exactly the trainable parameters, and `fit` warns once when the
flags changed since. What a flag is and what freezing does to one module
belong to `utils/trainable.py`; building the optimizer to `models/model.py`.

Between a change and the next `compile`: `set_trainable` and `model.trainable`
take `requires_grad` off (or give it back) at once, so a frozen part gets no
gradient from the next step and its BatchNorm layers run in inference mode; but
the optimizer keeps the parameters it was built with, so an unfrozen part only
trains after `compile`, and a frozen one is still in the optimizer's moving
average (EMA) until then. `fit` says so, once.
"""

import warnings

from torch import nn

from torchfit.utils import trainable as trainable_lib

__all__ = ["Freezing"]


class Freezing:
    """Keras's `trainable` for `torchfit.Model`, mixed into it."""

    # Ids of the parameters that trained at the last compile (None: never compiled).
    _compiled_trainable_ids = None

    @property
    def trainable(self) -> bool:
        """Whether the model trains: `False` freezes every weight in it (Keras's
        `model.trainable = False`).

        Takes effect on `requires_grad`, the weight lists and `summary()` at once,
        and on the optimizer at the next `compile()` (see `torchfit.utils.set_trainable`).
        BatchNorm layers of a frozen model run in inference mode, also in `fit`.
        """
        return self.__dict__.get("trainable", True)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        trainable_lib.set_trainable(self, value)

    def train(self, mode: bool = True):
        """Sets train (`True`) or eval mode, as `nn.Module.train`; in train mode the
        BatchNorm layers of frozen parts stay in inference mode, as in Keras."""
        nn.Module.train(self, mode)
        if mode:
            trainable_lib.keep_frozen_norms_in_inference(self)
        return self

    def _apply_trainable_flags(self):
        """The start of `compile`: the flags of the whole tree decide `requires_grad`.

        Returns the optimizer of the previous compile, for `_fit_optimizer_to_trainable`.
        """
        trainable_lib.apply_trainable(self)
        if self.training:
            trainable_lib.keep_frozen_norms_in_inference(self)
        return self.optimizer

    def _fit_optimizer_to_trainable(self, previous_optimizer) -> None:
        """After `compile` resolved the optimizer: it holds only trainable parameters.

        A new optimizer is built on them already (or on those the user chose). One
        that holds parameters frozen since drops them, with their state, so nothing
        moves them: no weight decay, no moving average. The optimizer of the previous
        compile, compiled again, also takes in the parameters unfrozen since, as a
        new param group (Keras's rule: trainable weights are decided at compile).
        """
        trainable = trainable_lib.trainable_parameters(self)
        previous = self._compiled_trainable_ids
        self._compiled_trainable_ids = frozenset(id(p) for p in trainable)
        optimizer = self.optimizer
        if optimizer is None:
            return
        held = _drop_parameters(optimizer, self._compiled_trainable_ids)
        if previous is not None and optimizer is previous_optimizer:
            unfrozen = [p for p in trainable if id(p) not in previous and id(p) not in held]
            if unfrozen:
                _add_parameters(optimizer, unfrozen, self.weights_module)

    def _warn_if_trainable_changed(self) -> None:
        """Keras's warning, once per compile: `trainable` changed since `compile`."""
        compiled = self._compiled_trainable_ids
        if compiled is None:
            return
        now = frozenset(id(p) for p in trainable_lib.trainable_parameters(self))
        if now == compiled:
            return
        self._compiled_trainable_ids = now
        warnings.warn(
            "The model's `trainable` state has changed since it was compiled"
            f" ({len(now - compiled)} parameters unfrozen, {len(compiled - now)} frozen)."
            " As in Keras, the change takes effect at the next compile: the optimizer"
            " still holds the parameters it was built with. Call `model.compile(...)`"
            " again before `fit()`.",
            stacklevel=3,
        )


def _drop_parameters(optimizer, keep: frozenset) -> set:
    """Removes from `optimizer` the parameters not in `keep` (and their state);
    returns the ids of the parameters it still holds."""
    held = set()
    for group in optimizer.param_groups:
        names = group.get("param_names")
        kept = [i for i, p in enumerate(group["params"]) if id(p) in keep]
        if len(kept) != len(group["params"]):
            for p in group["params"]:
                if id(p) not in keep:
                    optimizer.state.pop(p, None)
            group["params"] = [group["params"][i] for i in kept]
            if names is not None:
                group["param_names"] = [names[i] for i in kept]
        held.update(id(p) for p in group["params"])
    optimizer.param_groups[:] = [g for g in optimizer.param_groups if g["params"]]
    forget = getattr(optimizer, "forget_parameter_lookups", None)
    if forget is not None:
        forget()
    return held


def _add_parameters(optimizer, parameters: list, module: nn.Module) -> None:
    group = {"params": parameters}
    if any("param_names" in g for g in optimizer.param_groups):
        names = {id(p): name for name, p in module.named_parameters()}
        group["param_names"] = [names.get(id(p), "") for p in parameters]
    optimizer.add_param_group(group)
