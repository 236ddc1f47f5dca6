"""The `Loss` base class and Keras 3's rules for weighting and reducing losses.

Owns `Loss`, the five reductions, how `sample_weight` and masks are matched to
the per-sample losses (`squeeze_or_expand_to_same_rank`,
`reduce_weighted_values`), `LossFunctionWrapper` (a plain `fn(y_true, y_pred)`
as a Loss) and `TorchLoss` (a torch loss module as a Loss). The formulas live
in losses.py and probabilistic.py; string ids and configs live in __init__.py.

Nothing here reads a tensor value on the host: every branch is on shapes,
dtypes or Python arguments, so a loss call never forces a device sync.
"""

import copy
import inspect
import re
from collections.abc import Callable
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from torchfit.losses.targets import ClassIndices

__all__ = [
    "Loss",
    "LossFunctionWrapper",
    "TorchLoss",
    "reduce_weighted_values",
    "squeeze_or_expand_to_same_rank",
    "standardize_reduction",
]

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)
_MEAN_REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight")
_FULL_PRECISION = (torch.float32, torch.float64)
_DTYPE_NAMES = {
    "float16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float": torch.float32,
    "float64": torch.float64,
    "double": torch.float64,
    "mixed_float16": torch.float16,
    "mixed_bfloat16": torch.bfloat16,
}


def standardize_reduction(reduction: Optional[str]) -> Optional[str]:
    """Checks `reduction` against Keras's five reductions and returns it."""
    if reduction not in REDUCTIONS:
        raise ValueError(
            "Invalid value for argument `reduction`."
            f" Received: reduction={reduction!r}."
            " Expected one of 'sum_over_batch_size', 'sum', 'mean',"
            " 'mean_with_sample_weight', 'none' or None."
        )
    return reduction


def standardize_dtype(dtype: Any) -> Optional[torch.dtype]:
    """Turns a dtype name, torch dtype or dtype policy into a float torch dtype.

    `None` stays `None`: the loss then computes in y_pred's precision (float32
    for half-precision or non-float predictions, as Keras's floatx).
    """
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    if isinstance(dtype, str) and dtype in _DTYPE_NAMES:
        return _DTYPE_NAMES[dtype]
    compute_dtype = getattr(dtype, "compute_dtype", None)
    if compute_dtype is not None:
        return standardize_dtype(compute_dtype)
    raise ValueError(
        "Invalid value for argument `dtype`."
        f" Received: dtype={dtype!r} of type {type(dtype).__name__}."
        f" Expected a floating torch dtype or one of {sorted(_DTYPE_NAMES)}."
    )


def to_snake_case(name: str) -> str:
    """`"CrossEntropyLoss"` -> `"cross_entropy_loss"` (Keras's naming rule)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def as_tensor(x: Any, device=None, dtype: Optional[torch.dtype] = None) -> Tensor:
    """Returns `x` as a tensor on `device` with `dtype` (no copy when it already is)."""
    if isinstance(x, Tensor):
        if (dtype is None or x.dtype == dtype) and (device is None or x.device == device):
            return x  # a per-step call: skips `Tensor.to`'s dispatch (~1 us)
        return x.to(device=device, dtype=dtype)
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = x.copy()  # torch warns on read-only NumPy memory.
    return torch.as_tensor(x, dtype=dtype, device=device)


def squeeze_or_expand_to_same_rank(x1: Tensor, x2: Tensor, expand_rank_1: bool = True):
    """Makes two tensors whose ranks differ by one the same rank, as Keras does.

    Only a trailing dimension of size 1 is touched: it is squeezed from the
    higher-rank tensor, or, when the other tensor is rank 1 and
    `expand_rank_1`, a trailing dimension is added to that one instead.

    Returns:
        The pair `(x1, x2)`, possibly reshaped.
    """
    rank1, rank2 = x1.dim(), x2.dim()
    if rank1 == rank2:
        return x1, x2
    if rank1 == rank2 + 1 and x1.shape[-1] == 1:
        if rank2 == 1 and expand_rank_1:
            x2 = x2.unsqueeze(-1)
        else:
            x1 = x1.squeeze(-1)
    if rank2 == rank1 + 1 and x2.shape[-1] == 1:
        if rank1 == 1 and expand_rank_1:
            x1 = x1.unsqueeze(-1)
        else:
            x2 = x2.squeeze(-1)
    return x1, x2


def _divide_no_nan(numerator: Tensor, divisor):
    """`numerator / divisor`, or 0 where `divisor` is 0 (gradients stay finite)."""
    if not isinstance(divisor, Tensor):
        return numerator / divisor if divisor != 0 else numerator * 0.0
    is_zero = divisor == 0
    safe = torch.where(is_zero, torch.ones_like(divisor), divisor)
    return torch.where(is_zero, torch.zeros_like(numerator), numerator / safe)


def _reduce_values(values: Tensor, sample_weight, reduction: Optional[str]) -> Tensor:
    if reduction is None or reduction == "none" or values.dim() == 0 or tuple(values.shape) == (0,):
        return values
    total = values.sum()
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        divisor = sample_weight.sum() if isinstance(sample_weight, Tensor) else sample_weight
        return _divide_no_nan(total, divisor)
    count = values.numel()
    return total / count if count else total


def _apply_mask(sample_weight, mask: Tensor, dtype: torch.dtype, reduction: Optional[str]):
    """Folds a validity mask into the sample weights, as Keras's `apply_mask`.

    For the mean reductions a valid entry weighs `total / valid`, so that the
    later division by the element count becomes a division by the valid count.
    """
    float_mask = mask.to(dtype)
    if reduction in ("mean", "sum_over_batch_size"):
        valid = float_mask.sum()
        mask_weight = torch.where(valid > 0, mask.numel() / valid, torch.zeros_like(valid))
        float_mask = float_mask * mask_weight
    if sample_weight is None:
        return float_mask
    if isinstance(sample_weight, Tensor):
        float_mask, sample_weight = squeeze_or_expand_to_same_rank(float_mask, sample_weight)
    return sample_weight * float_mask


def reduce_weighted_values(
    values: Tensor,
    sample_weight: Any = None,
    mask: Optional[Tensor] = None,
    reduction: Optional[str] = "sum_over_batch_size",
) -> Tensor:
    """Weights per-sample losses and reduces them with Keras 3's rules.

    `"sum_over_batch_size"` and `"mean"` divide the weighted sum by the number
    of loss elements (not by the sum of the weights); `"mean_with_sample_weight"`
    divides by the sum of the weights; `"sum"` sums; `"none"`/`None` returns the
    weighted values. A 0-d or empty `values` is returned unreduced.

    Args:
        values: Per-sample (or per-element) losses.
        sample_weight: `None`, a Python number, or an array/tensor that
            broadcasts against `values` after `squeeze_or_expand_to_same_rank`.
        mask: Optional boolean tensor of valid entries (e.g. from `ignore_class`).
        reduction: One of the Keras reductions. Defaults to `"sum_over_batch_size"`.

    Returns:
        The reduced loss tensor.
    """
    reduction = standardize_reduction(reduction)
    if sample_weight is not None and not isinstance(sample_weight, (int, float)):
        sample_weight = as_tensor(sample_weight, device=values.device, dtype=values.dtype)
    if mask is not None:
        sample_weight = _apply_mask(sample_weight, mask, values.dtype, reduction)
    if sample_weight is not None:
        if isinstance(sample_weight, Tensor):
            values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        values = values * sample_weight
    return _reduce_values(values, sample_weight, reduction)


class Loss:
    """Base class of every loss: subclass it and implement `call`.

    `call(y_true, y_pred)` returns unreduced losses (usually one per sample);
    `__call__(y_true, y_pred, sample_weight=None)` converts the inputs, calls
    `call`, then weights and reduces the result with Keras 3's rules.

    Inputs may be torch tensors, NumPy arrays or numbers. y_pred is computed in
    `dtype` (by default its own precision, float32 for half precision or for
    non-tensors, as Keras computes losses in floatx); y_true is moved to
    y_pred's device and cast to the same dtype.

    Args:
        name: Name of the loss. Defaults to the snake_case class name.
        reduction: `"sum_over_batch_size"`, `"sum"`, `"mean"`,
            `"mean_with_sample_weight"`, `"none"` or `None`.
            Defaults to `"sum_over_batch_size"`.
        dtype: Dtype of the computation (torch dtype or name). Defaults to `None`.

    Example:
        >>> class CustomMSE(Loss):
        ...     def __init__(self, regularization_factor=0.1, name="custom_mse"):
        ...         super().__init__(name=name)
        ...         self.regularization_factor = regularization_factor
        ...     def call(self, y_true, y_pred):
        ...         mse = ((y_true - y_pred) ** 2).mean(dim=-1)
        ...         reg = ((0.5 - y_pred) ** 2).mean(dim=-1)
        ...         return mse + reg * self.regularization_factor
        >>> round(float(CustomMSE()(torch.ones(2, 1), torch.zeros(2, 1))), 4)
        1.025
    """

    # Class-index targets (sparse losses, CTC) stay integers instead of
    # being cast to y_pred's dtype.
    _integer_targets = False

    #: What `fit` checks of the targets before calling this loss:
    #: `targets.SAME_SHAPE` (nothing broadcast), a `targets.ClassIndices`
    #: (labels in range), or `None` (nothing; a user's loss decides).
    target_rule: Any = None

    def __init__(
        self,
        name: Optional[str] = None,
        reduction: Optional[str] = "sum_over_batch_size",
        dtype: Any = None,
    ):
        self.name = name or to_snake_case(type(self).__name__)
        self.reduction = standardize_reduction(reduction)
        self._dtype = standardize_dtype(dtype)

    @property
    def dtype(self) -> Optional[torch.dtype]:
        """The compute dtype, or `None` to follow y_pred's precision."""
        return self._dtype

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Tensor:
        """Returns the loss, weighted by `sample_weight` and reduced.

        Args:
            y_true: Targets, shaped as the loss expects.
            y_pred: Predictions.
            sample_weight: Optional Python number or array/tensor of weights,
                usually shaped `(batch_size,)`. Defaults to `None`.

        Returns:
            A differentiable tensor: 0-d, or unreduced for reduction `"none"`.
        """
        y_true, y_pred = self._convert_inputs(y_true, y_pred)
        values, mask = self._call_with_mask(y_true, y_pred)
        values = as_tensor(values, device=y_pred.device, dtype=y_pred.dtype)
        return reduce_weighted_values(values, sample_weight, mask, self.reduction)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        """Returns the unreduced losses. Subclasses implement this."""
        raise NotImplementedError(f"{type(self).__name__} must implement `call(y_true, y_pred)`.")

    def _call_with_mask(self, y_true: Tensor, y_pred: Tensor):
        """Returns `(losses, mask)`; losses that ignore entries override it."""
        return self.call(y_true, y_pred), None

    def _convert_inputs(self, y_true, y_pred):
        if isinstance(y_pred, Tensor):
            dtype = self._dtype or (
                y_pred.dtype if y_pred.dtype in _FULL_PRECISION else torch.float32
            )
            if y_pred.dtype != dtype:
                y_pred = y_pred.to(dtype)
        else:
            y_pred = as_tensor(y_pred, dtype=self._dtype or torch.float32)
        if self._integer_targets:
            y_true = as_tensor(y_true, device=y_pred.device, dtype=torch.long)
        else:
            y_true = as_tensor(y_true, device=y_pred.device, dtype=y_pred.dtype)
        return y_true, y_pred

    def to(self, device) -> "Loss":
        """Moves any state the loss holds to `device`; returns self."""
        return self

    def get_config(self) -> dict:
        """Returns the constructor arguments that rebuild this loss."""
        config = {"name": self.name, "reduction": self.reduction}
        if self._dtype is not None:
            config["dtype"] = str(self._dtype).replace("torch.", "")
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Loss":
        """Rebuilds a loss from `get_config()`'s output."""
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} reduction={self.reduction!r}>"


class LossFunctionWrapper(Loss):
    """Turns a function `fn(y_true, y_pred, **kwargs)` into a `Loss`.

    Before calling `fn`, y_true and y_pred are brought to the same rank with
    `squeeze_or_expand_to_same_rank`, so `(batch,)` targets meet `(batch, 1)`
    predictions; the result gets Keras's sample weighting and reduction.

    Args:
        fn: The loss function, returning unreduced losses.
        reduction: See `Loss`. Defaults to `"sum_over_batch_size"`.
        name: Defaults to `fn.__name__`.
        dtype: See `Loss`. Defaults to `None`.
        **kwargs: Extra keyword arguments passed to `fn` on every call.

    Example:
        >>> loss = LossFunctionWrapper(lambda t, p: (t - p).abs(), name="l1")
        >>> float(loss(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0])))
        2.0
    """

    def __init__(
        self,
        fn: Callable,
        reduction: Optional[str] = "sum_over_batch_size",
        name: Optional[str] = None,
        dtype: Any = None,
        **kwargs,
    ):
        if not callable(fn):
            raise TypeError(f"`fn` must be callable. Received: fn of type {type(fn).__name__}.")
        if name is None:
            name = getattr(fn, "__name__", None) or to_snake_case(type(fn).__name__)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self) -> dict:
        config = super().get_config()
        if type(self) is LossFunctionWrapper:
            # Built-in subclasses fix `fn` themselves; their kwargs are their
            # constructor arguments.
            config["fn"] = getattr(self.fn, "__name__", type(self.fn).__name__)
        config.update(self._fn_kwargs)
        return config

    def __repr__(self) -> str:
        name = getattr(self.fn, "__name__", self.fn)
        return f"<LossFunctionWrapper({name}, kwargs={self._fn_kwargs})>"


class TorchLoss(Loss):
    """Adapts a torch loss module (e.g. `nn.CrossEntropyLoss()`) to the Loss API.

    Keras losses take `(y_true, y_pred)`; torch loss modules take
    `(input, target)`. This adapter is the one place that swaps the order: it
    calls `module(y_pred, y_true)`. Without `sample_weight` the module's own
    reduction is returned unchanged. With one, a `reduction="none"` copy of
    the module gives per-element losses that are weighted and reduced as
    Keras's `"sum_over_batch_size"` does (divided by the element count, not by
    the weights or the non-ignored count, unlike torch's `"mean"`).

    Floating targets are cast to y_pred's dtype; integer targets (class
    indices) are left as they are.

    Args:
        module: A torch loss module.
        name: Defaults to the snake_case class name (`"cross_entropy_loss"`).

    Example:
        >>> loss = TorchLoss(torch.nn.MSELoss())
        >>> loss.name
        'mse_loss'
        >>> float(loss(torch.tensor([[1.0], [3.0]]), torch.zeros(2, 1), sample_weight=[1.0, 0.0]))
        0.5
    """

    def __init__(self, module: torch.nn.Module, name: Optional[str] = None):
        if not isinstance(module, torch.nn.Module):
            raise TypeError(
                "`module` must be a torch.nn.Module loss such as nn.CrossEntropyLoss()."
                f" Received: module of type {type(module).__name__}."
            )
        super().__init__(name=name or to_snake_case(type(module).__name__))
        self.module = module
        self._unreduced_module = None

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Tensor:
        if not isinstance(y_pred, Tensor):
            y_pred = as_tensor(y_pred, dtype=torch.float32)
        target_dtype = None
        if isinstance(y_true, Tensor):
            if y_true.is_floating_point() and y_pred.is_floating_point():
                target_dtype = y_pred.dtype
        elif np.asarray(y_true).dtype.kind == "f":
            target_dtype = y_pred.dtype
        y_true = as_tensor(y_true, device=y_pred.device, dtype=target_dtype)
        if sample_weight is None:
            output = self.module(y_pred, y_true)
            if output.dim() == 0:
                return output
            return reduce_weighted_values(output, None, None, "sum_over_batch_size")
        values = self._unreduced()(y_pred, y_true)
        return reduce_weighted_values(values, sample_weight, None, "sum_over_batch_size")

    @property
    def target_rule(self) -> Any:
        """Class indices along axis 1 for `nn.CrossEntropyLoss`/`nn.NLLLoss`.

        Their float targets are class probabilities, not indices. Other torch
        modules check their own targets.
        """
        if isinstance(self.module, (torch.nn.CrossEntropyLoss, torch.nn.NLLLoss)):
            return ClassIndices(1, self.module.ignore_index, floats_are_indices=False)
        return None

    def _unreduced(self) -> torch.nn.Module:
        """The module with `reduction="none"`, made once (it shares parameters)."""
        if getattr(self.module, "reduction", "none") == "none":
            return self.module
        if self._unreduced_module is None:
            self._unreduced_module = copy.copy(self.module)
            self._unreduced_module.reduction = "none"
        return self._unreduced_module

    def to(self, device) -> "TorchLoss":
        self.module.to(device)
        return self

    def get_config(self) -> dict:
        """Records the module's class and its simple constructor arguments.

        Tensor arguments (a class `weight`, `pos_weight`) are not recorded.
        """
        cls = type(self.module)
        arguments = {}
        for parameter in inspect.signature(cls.__init__).parameters:
            value = getattr(self.module, parameter, None)
            if isinstance(value, (bool, int, float, str)):
                arguments[parameter] = value
        return {
            "name": self.name,
            "module": f"{cls.__module__}.{cls.__qualname__}",
            "module_config": arguments,
        }

    @classmethod
    def from_config(cls, config: dict) -> "TorchLoss":
        """Rebuilds the adapter; only classes from `torch.nn` are rebuilt."""
        path = config["module"]
        module_name, _, class_name = path.rpartition(".")
        if not module_name.startswith("torch.nn"):
            raise ValueError(
                "`TorchLoss.from_config` rebuilds only torch.nn loss modules."
                f" Received: module={path!r}. Pass the module object to `losses.get` instead."
            )
        module_class = getattr(torch.nn, class_name, None)
        if module_class is None:
            raise ValueError(f"Unknown torch loss module {path!r} in the TorchLoss config.")
        return cls(module_class(**config.get("module_config", {})), name=config.get("name"))

    def __repr__(self) -> str:
        return f"<TorchLoss({type(self.module).__name__}) name={self.name!r}>"
