"""Puts each batch of a generator, Sequence, Dataset or DataLoader into final form.

Owns reading one user batch: the tuple form, the checks that name the batch
(a `None` batch, inputs missing, x/y/sample_weight lengths that differ, a
sample_weight shaped unlike the targets, and, once the compiled loss knows
them, target values that are no class index), converting the leaves to
tensors, the move to the device and class weights. The rules for target
values belong to compiled.py; the batch format to data_adapter_utils.py; iterating
the source to each adapter.
"""

from collections.abc import Callable
from typing import Any, Optional

from torchfit.data import data_adapter_utils
from torchfit.tree import flatten, is_nested, map_structure

#: `check(y, where)`: raises when host targets cannot feed the compiled loss.
TargetCheck = Callable[[Any, str], None]


def describe_batch(index: Optional[int], source: str) -> str:
    """`"batch index 3 of the generator"`; `"a batch of the generator"` without an index."""
    if index is None:
        return f"a batch of the {source}"
    return f"batch index {index} of the {source}"


def _shape(leaf: Any) -> tuple:
    return tuple(getattr(leaf, "shape", ()))


def _shapes(part: Any) -> str:
    shapes = [_shape(leaf) for leaf in flatten(part)]
    return str(shapes[0]) if len(shapes) == 1 else str(shapes)


def check_lengths(batch: tuple, where: str) -> None:
    """Raises when the leaves of `(x, y, sample_weight)` differ in length.

    Example:
        >>> import torch
        >>> check_lengths((torch.zeros(4, 2), torch.zeros(3)), "a batch")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: In a batch, x has 4 samples but y has 3. Shapes: x (4, 2), y (3,). ...
    """
    sizes = {}
    for name, part in zip(("x", "y", "sample_weight"), batch):
        lengths = {_shape(leaf)[0] for leaf in flatten(part) if _shape(leaf)}
        if lengths:
            sizes[name] = lengths
    if len({n for lengths in sizes.values() for n in lengths}) <= 1:
        return
    counts = [
        f"{name} has {'/'.join(str(n) for n in sorted(lengths))}" for name, lengths in sizes.items()
    ]
    named = zip(("x", "y", "sample_weight"), batch)
    shapes = ", ".join(f"{name} {_shapes(part)}" for name, part in named if part is not None)
    raise ValueError(
        f"In {where}, {' samples but '.join(counts)}. Shapes: {shapes}."
        " Every part of a batch needs the same number of samples."
    )


def _strip_ones(shape: tuple) -> tuple:
    while shape and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def weight_fits_target(weight_shape: tuple, target_shape: tuple) -> bool:
    """Whether a sample weight of `weight_shape` can weigh targets of `target_shape`.

    One weight per sample, or per sample and timestep: without trailing axes
    of size 1, the weight's shape must start the target's.

    Example:
        >>> weight_fits_target((32,), (32, 1)), weight_fits_target((32, 1), (32,))
        (True, True)
        >>> weight_fits_target((32, 3), (32,))
        False
    """
    weight, target = _strip_ones(tuple(weight_shape)), _strip_ones(tuple(target_shape))
    return target[: len(weight)] == weight


def check_sample_weight(y: Any, sample_weight: Any, where: str) -> None:
    """Raises when a sample weight is shaped unlike the targets it weighs."""
    if sample_weight is None or y is None:
        return
    targets = flatten(y)
    weights = flatten(sample_weight)
    if not is_nested(sample_weight):
        pairs = [(sample_weight, target) for target in targets]
    elif len(weights) == len(targets):
        pairs = list(zip(weights, targets))
    else:
        return  # a structure mismatch: `match_sample_weight` and the loss name it
    for weight, target in pairs:
        if not weight_fits_target(_shape(weight), _shape(target)):
            raise ValueError(
                f"In {where}, `sample_weight` has shape {_shape(weight)} but the"
                f" targets it weighs have shape {_shape(target)}. Pass one weight per"
                " sample, shape (batch_size,), or per sample and timestep,"
                " shape (batch_size, timesteps)."
            )


class BatchConverter:
    """Puts each batch of a generator, Dataset or Sequence into final form.

    Standardizes the tuple (`standardize_batch`), checks it, converts leaves to
    tensors (floats to float32 when `cast=True`), moves them to `device` with
    `non_blocking=True`, and appends class weights when a table is given.
    Target values are checked on the host once `check_targets` has installed
    the compiled loss's check.

    Args:
        device: Target device, or `None` to leave tensors where they are.
        cast: Convert NumPy/numbers and floats to float32 tensors. A user's
            DataLoader is passed with `cast=False`: its tensors keep their dtype.
        class_weight: `{class_index: weight}` or `None`.
        source: How the data was given, for error messages ("generator").

    Example:
        >>> import torch
        >>> convert = BatchConverter()
        >>> batch = (torch.zeros(2, 3, dtype=torch.float64), torch.tensor([0, 1]))
        >>> x, y = convert(batch, index=0)
        >>> x.dtype, y.tolist()
        (torch.float32, [0, 1])
        >>> convert(None, index=4)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: The generator gave None as batch index 4. Each batch must be ...
    """

    def __init__(self, device=None, cast=True, class_weight=None, source="generator"):
        self.device = device
        self.cast = cast
        self.source = source
        self.table = None
        if class_weight is not None:
            self.table = data_adapter_utils.class_weight_lookup(class_weight, device)
        self._check: Optional[TargetCheck] = None
        self._unchecked = None  # (host targets, where) of the last batch seen without a check

    def __call__(self, batch: Any, index: Optional[int] = None) -> tuple:
        where = describe_batch(index, self.source)
        batch = self._standardize(batch, index, where)
        if self.cast:
            batch = map_structure(data_adapter_utils.host_tensor, batch)
        check_lengths(batch, where)
        if len(batch) == 3:
            check_sample_weight(batch[1], batch[2], where)
        self._check_targets_of(batch, where)
        if self.cast:
            batch = data_adapter_utils.structure_to_device(batch, self.device)
        else:
            batch = data_adapter_utils.move_to_device(batch, self.device)
        if self.table is not None:
            batch = self._add_class_weights(batch)
        return batch

    def check_targets(self, check: TargetCheck) -> None:
        """Installs `check` for the coming batches and runs it on the last one.

        The last batch was converted before the compiled loss was built, so its
        host targets were kept for this: no batch reaches the loss unchecked.
        """
        self._check = check
        unchecked, self._unchecked = self._unchecked, None
        if unchecked is not None:
            check(*unchecked)

    def _check_targets_of(self, batch: tuple, where: str) -> None:
        y = batch[1] if len(batch) > 1 else None
        if y is None:
            return
        if self._check is not None:
            self._check(y, f"in {where}")
        else:
            self._unchecked = (y, f"in {where}")

    def _standardize(self, batch: Any, index: Optional[int], where: str) -> tuple:
        if batch is None:
            which = f"batch index {index}" if index is not None else "a batch"
            raise ValueError(
                f"The {self.source} gave None as {which}."
                " Each batch must be `x`, `(x, y)` or `(x, y, sample_weight)`."
            )
        batch = data_adapter_utils.standardize_batch(batch)
        if batch[0] is None:
            raise ValueError(
                f"In {where}, the inputs `x` are None. Each batch must be `x`,"
                " `(x, y)` or `(x, y, sample_weight)` with arrays or tensors."
            )
        return batch

    def _add_class_weights(self, batch: tuple) -> tuple:
        if len(batch) == 3:
            raise ValueError(
                f"You cannot use `class_weight` when the {self.source} already"
                " yields `(x, y, sample_weight)`: fold the class weights into"
                " the sample weights instead."
            )
        if len(batch) == 1 or batch[1] is None:
            raise ValueError(
                f"`class_weight` needs targets, but the {self.source} yields batches without `y`."
            )
        weights = data_adapter_utils.class_weight_for_targets(batch[1], None, self.table)
        return (batch[0], batch[1], weights)
