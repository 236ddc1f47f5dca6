"""Label and array helpers: `to_categorical` (one-hot) and `normalize` (unit norm).

Both accept NumPy arrays or torch tensors and return the same kind they were
given, so they serve preprocessing with NumPy as well as tensors already on a
device. They are for data preparation, not for the training step: checking the
label range costs one device sync on a tensor.
"""

import math

import numpy as np
import torch

# Matches Keras's `backend.epsilon()`: the smallest norm `normalize` divides by
# for tensors.
_EPSILON = 1e-7


def _check_num_classes(num_classes) -> None:
    if num_classes is None:
        return
    is_int = isinstance(num_classes, (int, np.integer)) and not isinstance(num_classes, bool)
    if not is_int or num_classes < 1:
        raise ValueError(
            "`num_classes` must be a positive int or None."
            f" Received: num_classes={num_classes!r} of type {type(num_classes).__name__}."
        )


def _check_label_range(low: int, high: int, num_classes) -> None:
    if low < 0:
        raise ValueError(
            "`x` must hold class indices >= 0 for `to_categorical`."
            f" Received: a smallest value of {low}."
        )
    if num_classes is not None and high >= num_classes:
        raise ValueError(
            f"`x` holds the class index {high}, but `num_classes={num_classes}`"
            f" allows only 0..{num_classes - 1}. Raise `num_classes` or pass None"
            " to infer it."
        )


def _squeeze_last(shape: tuple) -> tuple:
    # A column of labels, shape (..., 1), is one label per row, as in Keras.
    if len(shape) > 1 and shape[-1] == 1:
        return shape[:-1]
    return shape


def to_categorical(x, num_classes=None):
    """Converts a vector of class indices to a one-hot matrix.

    A trailing axis of size 1 is dropped first, so labels of shape `(N,)` and
    `(N, 1)` both give `(N, num_classes)`. Float labels are truncated to ints.

    Args:
        x: Class indices from 0 to `num_classes - 1`: a NumPy array, a list,
            or a torch tensor.
        num_classes: Total number of classes. If `None`, it is
            `max(x) + 1`. Defaults to `None`.

    Returns:
        A `float32` one-hot array with the class axis last: a torch tensor on
        `x`'s device if `x` is a tensor, else a NumPy array.

    Raises:
        ValueError: If `x` holds a negative index or one `>= num_classes`, or
            `num_classes` is not a positive int.

    Example:

    >>> to_categorical([0, 2, 1], num_classes=3)
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]], dtype=float32)
    >>> to_categorical(torch.tensor([[1], [0]])).shape
    torch.Size([2, 2])
    """
    _check_num_classes(num_classes)
    if isinstance(x, torch.Tensor):
        return _to_categorical_tensor(x, num_classes)
    labels = np.asarray(x).astype(np.int64)
    out_shape = _squeeze_last(labels.shape)
    labels = labels.reshape(-1)
    if labels.size == 0 and num_classes is None:
        raise ValueError("`x` is empty, so `num_classes` cannot be inferred. Pass `num_classes`.")
    if labels.size:
        _check_label_range(int(labels.min()), int(labels.max()), num_classes)
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    categorical = np.zeros((labels.size, int(num_classes)), dtype=np.float32)
    categorical[np.arange(labels.size), labels] = 1.0
    return categorical.reshape(out_shape + (int(num_classes),))


def _to_categorical_tensor(x: torch.Tensor, num_classes):
    labels = x.reshape(_squeeze_last(tuple(x.shape))).long()
    if labels.numel() == 0 and num_classes is None:
        raise ValueError("`x` is empty, so `num_classes` cannot be inferred. Pass `num_classes`.")
    if labels.numel():
        # One sync for both bounds: an out-of-range index would otherwise be a
        # cryptic RuntimeError on CPU and a device-side assert on CUDA.
        low, high = (int(v) for v in torch.stack(torch.aminmax(labels)).cpu())
        _check_label_range(low, high, num_classes)
        if num_classes is None:
            num_classes = high + 1
    return torch.nn.functional.one_hot(labels, int(num_classes)).to(torch.float32)


def _check_order(order) -> None:
    is_int = isinstance(order, (int, np.integer)) and not isinstance(order, bool)
    is_inf = isinstance(order, float) and math.isinf(order) and order > 0
    if not ((is_int and order >= 1) or is_inf):
        raise ValueError(
            "`order` must be an int >= 1 (or `math.inf`)."
            f" Received: order={order!r} of type {type(order).__name__}."
        )


def normalize(x, axis=-1, order=2):
    """Scales `x` to unit norm along `axis`.

    Slices whose norm is zero are returned unchanged (all zeros). NumPy input
    gives a NumPy array of the input's float type (float64 for ints); tensor
    input gives a tensor, where, as in Keras, norms below `1e-7` are treated as
    `1e-7`.

    Args:
        x: A NumPy array, list, or torch tensor.
        axis: Axis along which to normalize. Defaults to `-1`.
        order: Norm order, e.g. `2` for L2 or `1` for L1; an int >= 1 or
            `math.inf`. Defaults to `2`.

    Returns:
        A normalized copy of `x`, of the same kind as `x`.

    Raises:
        ValueError: If `order` is not an int >= 1 or `math.inf`, or `axis` is
            out of range.

    Example:

    >>> normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[0.6, 0.8],
           [0. , 0. ]])
    >>> normalize(torch.tensor([1.0, 3.0]), order=1)
    tensor([0.2500, 0.7500])
    """
    _check_order(order)
    is_tensor = isinstance(x, torch.Tensor)
    values = x if is_tensor else np.asarray(x)
    if values.ndim == 0:
        values = values.reshape(1)
    if not -values.ndim <= axis < values.ndim:
        raise ValueError(
            f"`axis` must be in [-{values.ndim}, {values.ndim}) for `x` of shape"
            f" {tuple(values.shape)}. Received: axis={axis}."
        )
    if is_tensor:
        if not values.is_floating_point():
            values = values.to(torch.get_default_dtype())
        return torch.nn.functional.normalize(values, p=float(order), dim=axis, eps=_EPSILON)
    norm = np.linalg.norm(values, ord=order, axis=axis, keepdims=True)
    norm = np.where(norm == 0, 1, norm)
    return values / norm
