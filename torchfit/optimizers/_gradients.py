"""Turns the gradients of one optimizer call into those the update rule sees.

Owns Keras's gradient steps between `.grad` and the update rule: collecting
each param group's gradients (from `.grad`, or from the lists given to
`apply`, checked against the variables), checking the accumulation and
clipping arguments, unscaling by `loss_scale_factor`,
gradient accumulation (the calls in between add into accumulators; the last
call of each cycle hands on the mean) and clipping by value, by each
variable's norm or by the global norm. The order of the steps, and where the
accumulators are stored, belong to `base.py`.

Every function works on lists of tensors with `torch._foreach_*` ops and
returns new gradients, so a `.grad` is never changed; nothing reads a tensor
value on the host.
"""

import warnings
from typing import Optional

import torch

__all__ = [
    "Batch",
    "accumulate",
    "accumulated_mean",
    "check_accumulation_steps",
    "check_clipping",
    "clip",
    "clip_by_global_norm",
    "clip_by_norm",
    "clip_by_value",
    "collect_grads",
    "group_grads",
    "unscale",
]

# (param group, params with a gradient, their gradients), one per param group.
Batch = tuple[dict, list, list]


def collect_grads(param_groups: list[dict]) -> list[Batch]:
    """Each param group's parameters that have a `.grad`, with those gradients.

    A parameter whose `.grad` is `None` is skipped (torch's convention), and
    so is a group with no gradient at all.
    """
    batches = []
    for group in param_groups:
        params, grads = [], []
        for param in group["params"]:
            if param.grad is not None:
                params.append(param)
                grads.append(param.grad)
        if params:
            batches.append((group, params, grads))
    return batches


def group_grads(
    grads: list,
    variables: list,
    param_groups: list[dict],
    group_index: dict[int, int],
    optimizer_name: str,
) -> list[Batch]:
    """Sorts `apply`'s gradients into their variables' param groups.

    Args:
        grads: Gradients (tensors, arrays or numbers), one per variable;
            `None` entries are skipped with a warning.
        variables: The parameters, in the same order.
        param_groups: The optimizer's param groups.
        group_index: `id(parameter)` -> index of its param group.
        optimizer_name: Named in the error for an unknown variable.

    Returns:
        One `Batch` per param group that received a gradient, in group order.

    Raises:
        ValueError: For an unknown variable, a gradient whose shape differs
            from its variable's, or when every gradient is `None`.
    """
    per_group: dict[int, tuple[list, list]] = {}
    missing = 0
    for grad, param in zip(grads, variables):
        if grad is None:
            missing += 1
            continue
        position = group_index.get(id(param))
        if position is None:
            raise ValueError(
                f"Unknown variable of shape {tuple(param.shape)}: optimizer"
                f" '{optimizer_name}' was built with other parameters. Pass the same"
                " parameters, or create a new optimizer."
            )
        if not isinstance(grad, torch.Tensor):
            grad = torch.as_tensor(grad, dtype=param.dtype, device=param.device)
        if grad.shape != param.shape:
            raise ValueError(
                f"Gradient of shape {tuple(grad.shape)} does not match its variable"
                f" of shape {tuple(param.shape)}."
            )
        params, gradients = per_group.setdefault(position, ([], []))
        params.append(param)
        gradients.append(grad)
    if not per_group:
        raise ValueError("No gradients provided for any variable.")
    if missing:
        warnings.warn(
            f"Gradients do not exist for {missing} variable(s); they are skipped.", stacklevel=2
        )
    return [(param_groups[i], *per_group[i]) for i in sorted(per_group)]


def check_accumulation_steps(steps: Optional[int]) -> None:
    """Raises `ValueError` unless `steps` is `None` or an int >= 2."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 2):
        raise ValueError(
            "`gradient_accumulation_steps` must be an integer >= 2."
            f" Received: gradient_accumulation_steps={steps!r}"
        )


def check_clipping(
    clipnorm: Optional[float], clipvalue: Optional[float], global_clipnorm: Optional[float]
) -> None:
    """Raises `ValueError` when more than one kind of clipping is set."""
    if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
        raise ValueError(
            "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set."
            f" Received: clipnorm={clipnorm}, clipvalue={clipvalue},"
            f" global_clipnorm={global_clipnorm}"
        )


def unscale(batches: list[Batch], loss_scale_factor: float) -> list[Batch]:
    """Divides every gradient by `loss_scale_factor` (undoes `scale_loss`)."""
    return [
        (group, params, torch._foreach_div(grads, loss_scale_factor))
        for group, params, grads in batches
    ]


def accumulate(batches: list[Batch], accumulators: list[list]) -> None:
    """Adds each gradient into its accumulator, in place.

    Args:
        batches: The call's gradients, one `Batch` per param group.
        accumulators: One list of accumulator tensors per batch, in the
            order of its params.
    """
    for (_, _, grads), group_accumulators in zip(batches, accumulators):
        torch._foreach_add_(group_accumulators, grads)


def accumulated_mean(batches: list[Batch], accumulators: list[list], steps: int) -> list[Batch]:
    """The mean gradient of a cycle: `(grads + accumulators) / steps`.

    Leaves the accumulators as they are; the caller resets them.
    """
    result = []
    for (group, params, grads), group_accumulators in zip(batches, accumulators):
        mean = torch._foreach_add(grads, group_accumulators)
        torch._foreach_div_(mean, float(steps))
        result.append((group, params, mean))
    return result


def clip(
    batches: list[Batch],
    clipnorm: Optional[float] = None,
    clipvalue: Optional[float] = None,
    global_clipnorm: Optional[float] = None,
) -> list[Batch]:
    """Clips the gradients of all batches together, as Keras does.

    The first positive one of `clipnorm`, `global_clipnorm` and `clipvalue`
    picks the clipping (the constructor allows only one); with none,
    `batches` comes back unchanged.

    Returns:
        New batches with the clipped gradients.
    """
    if clipnorm and clipnorm > 0:
        clip_all, limit = clip_by_norm, clipnorm
    elif global_clipnorm and global_clipnorm > 0:
        clip_all, limit = clip_by_global_norm, global_clipnorm
    elif clipvalue and clipvalue > 0:
        clip_all, limit = clip_by_value, clipvalue
    else:
        return batches
    flat = clip_all([g for _, _, grads in batches for g in grads], limit)
    result, start = [], 0
    for group, params, grads in batches:
        result.append((group, params, flat[start : start + len(grads)]))
        start += len(grads)
    return result


def clip_by_norm(grads: list, clipnorm: float) -> list:
    """Scales each gradient whose L2 norm exceeds `clipnorm` down to it."""
    # g * clipnorm / max(||g||, clipnorm): unchanged when the norm is small.
    scales = torch._foreach_maximum(torch._foreach_norm(grads), clipnorm)
    torch._foreach_reciprocal_(scales)
    torch._foreach_mul_(scales, clipnorm)
    return torch._foreach_mul(grads, scales)


def clip_by_global_norm(grads: list, clipnorm: float) -> list:
    """Scales all gradients by one factor so their joint L2 norm is at most `clipnorm`."""
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    # As Keras: a non-finite norm makes the scale NaN instead of hiding it.
    scale = clipnorm * torch.clamp(norm.reciprocal(), max=1.0 / clipnorm) + (norm - norm)
    return torch._foreach_mul(grads, scale)


def clip_by_value(grads: list, clipvalue: float) -> list:
    """Clamps every gradient element to `[-clipvalue, clipvalue]`."""
    clipped = torch._foreach_clamp_min(grads, -clipvalue)
    torch._foreach_clamp_max_(clipped, clipvalue)
    return clipped
