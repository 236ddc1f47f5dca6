"""The `Metric` base class: named, stateful, device-resident accumulators.

Owns how a metric keeps its state (plain torch tensors created with
`add_variable`, refilled in place by `reset_state`, moved by `to`), how its
inputs become tensors on its device, and its config round trip. What a metric
accumulates belongs to the subclasses; how the training loop drives metrics
belongs to `compiled.py`; reducing states across processes reads the
aggregation recorded here.

A metric is a plain Python object, not an `nn.Module`: it has no parameters,
takes no part in `state_dict`, and never builds an autograd graph (every input
is detached on the way in).
"""

import re
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

import numpy as np
import torch

__all__ = ["Metric", "as_tensor", "standardize_dtype", "to_snake_case"]

DTypeLike = Union[None, str, torch.dtype, np.dtype]
Initializer = Union[str, float, int, torch.Tensor, np.ndarray, Callable[..., Any]]

_AGGREGATIONS = ("sum", "mean", "only_first_replica", "none")


def to_snake_case(name: str) -> str:
    """Returns Keras's snake_case spelling of a class name.

    Example:
    >>> to_snake_case("SparseCategoricalAccuracy")
    'sparse_categorical_accuracy'
    >>> to_snake_case("IoU")
    'io_u'
    """
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def standardize_dtype(dtype: DTypeLike, argument: str = "dtype") -> torch.dtype:
    """Turns `None`, a dtype name, a NumPy dtype or a torch dtype into a torch dtype.

    Args:
        dtype: What the user passed. `None` means `torch.float32`, Keras's floatx.
        argument: Name of the argument, for the error message.

    Returns:
        A `torch.dtype`.

    Raises:
        TypeError: If `dtype` names no torch dtype.
    """
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    name = getattr(dtype, "name", dtype)
    if isinstance(dtype, type) and issubclass(dtype, np.generic):
        name = np.dtype(dtype).name
    resolved = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(resolved, torch.dtype):
        raise TypeError(
            f"`{argument}` must be a dtype such as 'float32' or torch.float32."
            f" Received: {argument}={dtype!r} of type {type(dtype).__name__}."
        )
    return resolved


def as_tensor(
    value: Any,
    dtype: Optional[torch.dtype] = None,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """Returns `value` as a tensor, as Keras's `convert_to_tensor` would.

    Tensors keep their autograd history (metric functions double as losses).
    NumPy arrays keep their dtype; Python numbers and lists of floats become
    float32, Keras's floatx.

    Args:
        value: A tensor, NumPy array, number or nested list.
        dtype: Cast to this dtype if given.
        device: Move to this device if given.
    """
    if not isinstance(value, torch.Tensor):
        array = np.asarray(value)
        if array.dtype == np.float64 and not isinstance(value, (np.ndarray, np.generic)):
            array = array.astype(np.float32)
        value = torch.as_tensor(array, device=device)
    elif device is not None and value.device != device:
        value = value.to(device)
    if dtype is not None and value.dtype != dtype:
        value = value.to(dtype)
    return value


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


class Metric:
    """Encapsulates a metric's state and the logic that updates it.

    Subclasses create their state in `__init__` with `add_variable`, then
    implement `update_state(...)` (accumulate, on the device, without host
    syncs) and `result()` (a 0-d tensor, or the tensor/dict Keras returns).

    Args:
        name: Name of the metric, used as its log key. Defaults to the snake_case
            of the class name.
        dtype: Dtype of the state and the result: a torch dtype or its name.
            Defaults to `torch.float32`.

    Example:
    >>> class Total(Metric):
    ...     def __init__(self, name="total", dtype=None):
    ...         super().__init__(name=name, dtype=dtype)
    ...         self.total = self.add_variable(shape=(), name="total")
    ...     def update_state(self, values):
    ...         self.total.add_(self._convert(values).sum())
    ...     def result(self):
    ...         return self.total.clone()
    >>> m = Total()
    >>> float(m([1.0, 2.0, 3.0]))
    6.0
    >>> m.reset_state()
    >>> float(m.result())
    0.0
    """

    def __init__(self, name: Optional[str] = None, dtype: DTypeLike = None):
        if name is not None and not isinstance(name, str):
            raise TypeError(
                f"`name` must be a string or None. Received: name of type {type(name).__name__}."
            )
        self.name = name or to_snake_case(type(self).__name__)
        self._dtype = standardize_dtype(dtype)
        self._direction: Optional[str] = None
        self._device = torch.device("cpu")
        # Until `to()` is called, the first tensor input on another device
        # moves the state there, so a metric used on CUDA outputs lives on CUDA.
        self._device_pinned = False
        self._variables: list[torch.Tensor] = []
        self._variable_names: list[Optional[str]] = []
        self._initializers: list[Initializer] = []
        self._aggregations: list[str] = []

    # ----------------------------------------------------------------- state
    @property
    def dtype(self) -> torch.dtype:
        """The torch dtype of the metric's state and result."""
        return self._dtype

    @property
    def device(self) -> torch.device:
        """The device that holds the metric's state."""
        return self._device

    @property
    def variables(self) -> list[torch.Tensor]:
        """State tensors of this metric, then those of metrics it holds."""
        variables = list(self._variables)
        for metric in self._sub_metrics():
            variables.extend(metric.variables)
        return variables

    @property
    def aggregations(self) -> list[str]:
        """How each of `variables` combines across processes ("sum", ...)."""
        aggregations = list(self._aggregations)
        for metric in self._sub_metrics():
            aggregations.extend(metric.aggregations)
        return aggregations

    def add_variable(
        self,
        shape: Sequence[int] = (),
        initializer: Initializer = "zeros",
        dtype: DTypeLike = None,
        aggregation: str = "sum",
        name: Optional[str] = None,
    ) -> torch.Tensor:
        """Creates a state tensor on the metric's device and records it.

        Args:
            shape: Shape of the tensor. Defaults to `()`.
            initializer: "zeros", "ones", a number, an array, or a callable
                `(shape, dtype) -> array`. `reset_state` refills with it.
                Defaults to "zeros".
            dtype: Dtype of the tensor. Defaults to the metric's dtype.
            aggregation: How the state combines across processes: "sum",
                "mean", "only_first_replica" or "none". Defaults to "sum".
            name: Name of the variable, for configs and debugging.

        Returns:
            The new tensor. Keep it as an attribute (`self.total = ...`).

        Raises:
            RuntimeError: If `Metric.__init__` was not called first.
            ValueError: If `aggregation` is unknown.
        """
        if not hasattr(self, "_variables"):
            raise RuntimeError(
                f"{type(self).__name__} forgot to call `super().__init__()` before `add_variable`."
            )
        if aggregation not in _AGGREGATIONS:
            raise ValueError(
                f"`aggregation` must be one of {_AGGREGATIONS}."
                f" Received: aggregation={aggregation!r}."
            )
        shape = tuple(int(d) for d in shape)
        dtype = standardize_dtype(dtype) if dtype is not None else self._dtype
        variable = torch.empty(shape, dtype=dtype, device=self._device)
        _fill(variable, initializer)
        self._variables.append(variable)
        self._variable_names.append(name)
        self._initializers.append(initializer)
        self._aggregations.append(aggregation)
        return variable

    def add_weight(
        self,
        shape: Sequence[int] = (),
        initializer: Initializer = "zeros",
        dtype: DTypeLike = None,
        aggregation: str = "sum",
        name: Optional[str] = None,
    ) -> torch.Tensor:
        """Alias of `add_variable`, as in Keras."""
        return self.add_variable(shape, initializer, dtype, aggregation, name)

    def reset_state(self) -> None:
        """Refills every state tensor with its initializer, in place."""
        for variable, initializer in zip(self._variables, self._initializers):
            _fill(variable, initializer)
        for metric in self._sub_metrics():
            metric.reset_state()

    def reset_states(self) -> None:
        """Alias of `reset_state` (Keras 2 spelling)."""
        self.reset_state()

    def to(self, device: Union[str, torch.device]) -> "Metric":
        """Moves the state to `device` and keeps it there.

        Attributes that refer to a state tensor are rebound to the moved one.

        Args:
            device: A torch device or its name ("cuda", "cpu", "mps").

        Returns:
            The metric itself.
        """
        device = torch.device(device)
        self._device_pinned = True
        self._move_to(device)
        for metric in self._sub_metrics():
            metric.to(device)
        return self

    def _move_to(self, device: torch.device) -> None:
        moved = {}
        for index, variable in enumerate(self._variables):
            new = variable.to(device)
            moved[id(variable)] = new
            self._variables[index] = new
        for key, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                if id(value) in moved:
                    vars(self)[key] = moved[id(value)]
                elif value.device != device:
                    vars(self)[key] = value.to(device)
            elif isinstance(value, (list, tuple)) and any(id(v) in moved for v in value):
                vars(self)[key] = type(value)(moved.get(id(v), v) for v in value)
        if self._variables:
            self._device = self._variables[0].device
        elif device.type == "cuda" and device.index is None:
            self._device = torch.device("cuda", torch.cuda.current_device())
        else:
            self._device = device

    def _sub_metrics(self) -> list["Metric"]:
        return [v for v in vars(self).values() if isinstance(v, Metric)]

    # ---------------------------------------------------------------- inputs
    def _convert(self, value: Any, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
        """Returns `value` as a detached tensor on the metric's device.

        Args:
            value: A tensor, NumPy array, number or nested list.
            dtype: Cast to this dtype if given; otherwise keep the input's.
        """
        if isinstance(value, torch.Tensor):
            if value.requires_grad:  # else already detached: a new alias costs ~0.7 us
                value = value.detach()
            if value.device != self._device:
                if not self._device_pinned:
                    self.to(value.device)
                else:
                    value = value.to(self._device)
        else:
            value = as_tensor(value, device=self._device)
        if dtype is not None and value.dtype != dtype:
            value = value.to(dtype)
        return value

    # ------------------------------------------------------------ interface
    def update_state(self, *args: Any, **kwargs: Any) -> None:
        """Accumulates statistics for the metric."""
        raise NotImplementedError(f"{type(self).__name__} must implement `update_state`.")

    def result(self) -> Any:
        """Returns the current value: a 0-d tensor, or a tensor/dict of them."""
        raise NotImplementedError(f"{type(self).__name__} must implement `result`.")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Updates the state with the arguments and returns `result()`."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments, JSON-serializable."""
        return {"name": self.name, "dtype": _dtype_name(self._dtype)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Metric":
        """Creates a metric from the dict `get_config` returned."""
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


def _fill(variable: torch.Tensor, initializer: Initializer) -> None:
    if isinstance(initializer, str):
        if initializer in ("zeros", "Zeros", "zero"):
            variable.zero_()
        elif initializer in ("ones", "Ones", "one"):
            variable.fill_(1)
        else:
            raise ValueError(
                "`initializer` must be 'zeros', 'ones', a number, an array or a"
                f" callable. Received: initializer={initializer!r}."
            )
    elif isinstance(initializer, (int, float)):
        variable.fill_(initializer)
    elif callable(initializer):
        value = initializer(tuple(variable.shape), variable.dtype)
        variable.copy_(torch.as_tensor(value))
    else:
        if not isinstance(initializer, torch.Tensor):
            initializer = torch.as_tensor(np.asarray(initializer))
        variable.copy_(initializer)
