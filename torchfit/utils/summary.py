"""Prints a Keras-style summary table for any `torch.nn.Module`.

Owns the table (layer rows, output shapes, parameter counts and sizes) and
`record_output_shapes`, the forward hooks that learn each layer's output
shape from one real forward pass. When to record (the first batch) belongs to
`Model`; this module only reads `model._layer_output_shapes`.

The layout follows Keras 3's plain-text summary: the same box-drawing table,
column positions and width arithmetic, and the same "Total params: 50,890
(198.79 KB)" footer. A torch module's "layers" are its direct children,
listed under their attribute names (`0`, `1`, ... for `nn.Sequential`).
"Non-trainable params" counts frozen parameters plus persistent floating-point
buffers (BatchNorm's running mean and variance), the torch counterpart of
Keras's non-trainable weights; integer counters such as
`num_batches_tracked` are left out.
"""

import os
import re
import shutil
import sys
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from torchfit.utils.uncompiled import uncompiled

_DEFAULT_POSITIONS = (0.45, 0.80, 1.0)
_DEFAULT_LINE_LENGTH = 88
_TRAINABLE_EXTRA_WIDTH = 12
_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


class _HookHandles:
    """Removes a group of hooks at once; also usable as a context manager."""

    def __init__(self, handles):
        self._handles = list(handles)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.remove()


def _summary_root(model: nn.Module) -> nn.Module:
    """The module whose children are the rows: the wrapped `model.module` if there is one,
    seen through a `torch.compile` wrapper (its layers, not one `OptimizedModule` row)."""
    inner = getattr(model, "module", None)
    return uncompiled(inner if isinstance(inner, nn.Module) else model)


def _first_batch_size(args, kwargs):
    for value in list(args) + list(kwargs.values()):
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return value.shape[0]
        if isinstance(value, (list, tuple, dict)):
            inner = value.values() if isinstance(value, dict) else value
            found = _first_batch_size(tuple(inner), {})
            if found is not None:
                return found
    return None


class _Shape(tuple):
    """One tensor's shape, told apart from a tuple of several outputs."""


def _shape_structure(output, batch_size):
    """Output shapes with the batch axis as `None`, nested like the output."""
    if isinstance(output, torch.Tensor):
        shape = tuple(output.shape)
        if shape and batch_size is not None and shape[0] == batch_size:
            shape = (None,) + shape[1:]
        return _Shape(shape)
    if isinstance(output, dict):
        return {key: _shape_structure(value, batch_size) for key, value in output.items()}
    if isinstance(output, (list, tuple)):
        shapes = [_shape_structure(value, batch_size) for value in output]
        return shapes if isinstance(output, list) else tuple(shapes)
    return None


def record_output_shapes(model: nn.Module, once: bool = True) -> _HookHandles:
    """Registers forward hooks that fill `model._layer_output_shapes`.

    The dict maps each submodule's dotted name (relative to the module whose
    children the summary lists) to its output shape, with the batch axis shown
    as `None` like Keras. Call the model (not `.forward`) so the hooks run.

    Args:
        model: The module, or a wrapper whose `module` attribute is the module.
        once: Whether the hooks remove themselves after one complete forward
            pass of the module. Defaults to `True`.

    Returns:
        A handle whose `remove()` removes every hook; it is also a context
        manager.

    Example:

    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    >>> _ = record_output_shapes(net)
    >>> _ = net(torch.zeros(2, 4))
    >>> net._layer_output_shapes
    {'0': (None, 3), '1': (None, 3)}
    """
    root = _summary_root(model)
    shapes = {}
    model._layer_output_shapes = shapes
    state = {"batch_size": None}

    def before_root(module, args, kwargs):
        state["batch_size"] = _first_batch_size(args, kwargs)

    def after_child(name):
        def hook(module, args, output):
            shape = _shape_structure(output, state["batch_size"])
            if shape is not None:
                shapes[name] = shape

        return hook

    handles = [root.register_forward_pre_hook(before_root, with_kwargs=True)]
    for name, module in root.named_modules():
        if module is not root:
            handles.append(module.register_forward_hook(after_child(name)))
    group = _HookHandles(handles)
    if once:
        done = root.register_forward_hook(lambda module, args, output: group.remove())
        group._handles.append(done)
    return group


def _is_shape(structure) -> bool:
    return isinstance(structure, _Shape) or (
        type(structure) is tuple and all(d is None or isinstance(d, int) for d in structure)
    )


def _format_shape_structure(structure) -> str:
    if structure is None:
        return "?"
    if _is_shape(structure):
        # Keras's spelling: a 1-d shape prints as "(None)", without the comma.
        return "(" + ", ".join(str(d) for d in structure) + ")"
    leaves = _flatten_shapes(structure)
    if len(leaves) == 1:
        return _format_shape_structure(leaves[0])
    if isinstance(structure, dict):
        items = (f"{key}: {_format_shape_structure(value)}" for key, value in structure.items())
        return "{" + ", ".join(items) + "}"
    inner = ", ".join(_format_shape_structure(value) for value in structure)
    return f"[{inner}]" if isinstance(structure, list) else f"({inner})"


def _flatten_shapes(structure) -> list:
    if structure is None:
        return []
    if _is_shape(structure):
        return [structure]
    values = structure.values() if isinstance(structure, dict) else structure
    return [leaf for value in values for leaf in _flatten_shapes(value)]


def _weights(module: nn.Module):
    """Unique trainable and non-trainable weights of `module` and its descendants."""
    trainable, frozen, lazy = {}, {}, False
    for param in module.parameters():
        if is_lazy(param):
            lazy = True
        elif param.requires_grad:
            trainable[id(param)] = param
        else:
            frozen[id(param)] = param
    for sub in module.modules():
        for name, buffer in sub._buffers.items():
            if (
                buffer is not None
                and name not in sub._non_persistent_buffers_set
                and (buffer.is_floating_point() or buffer.is_complex())
                and not is_lazy(buffer)
            ):
                frozen[id(buffer)] = buffer
    return list(trainable.values()), list(frozen.values()), lazy


def _count(tensors) -> int:
    return sum(t.numel() for t in tensors)


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def readable_memory_size(num_bytes: float) -> str:
    """Formats a byte count as Keras does: `"198.79 KB"`, `"512.00 B"`."""
    for unit in _UNITS:
        if num_bytes / 1024 < 1:
            return f"{num_bytes:.2f} {unit}"
        num_bytes /= 1024
    return f"{num_bytes:.2f} {_UNITS[-1]}"


def _optimizer_state(model) -> list:
    """Tensors the optimizer keeps (torch's `optimizer.state`), empty before its first step."""
    state = getattr(getattr(model, "optimizer", None), "state", None)
    if not isinstance(state, Mapping):
        return []
    tensors = {}
    for param_state in state.values():
        if not isinstance(param_state, Mapping):
            continue
        for value in param_state.values():
            if isinstance(value, torch.Tensor):
                tensors[id(value)] = value
    return list(tensors.values())


def _column_widths(positions, line_length: int) -> list:
    """Content widths of the columns, reproducing Keras's table arithmetic.

    Keras gives each column `position * line_length` characters, adds one
    space of padding on each side, then shaves the overflow (padding plus
    borders) off the columns evenly so the table is `line_length` wide.
    """
    widths, current = [], 0
    for position in positions:
        width = int(position * line_length) - current
        if width < 4:
            raise ValueError(
                "Insufficient console width to print summary: a column would be"
                f" {width} characters wide. Received: line_length={line_length},"
                f" positions={list(positions)}. Pass a larger `line_length`."
            )
        widths.append(width)
        current += width
    cells = [w + 2 for w in widths]
    excess = sum(cells) - (line_length - len(cells) - 1)
    # Spread the cut like rich's ratio_reduce: round() each share of what remains.
    remaining_columns = len(cells)
    for i, cell in enumerate(cells):
        if excess <= 0:
            break
        cut = min(cell, round(excess / remaining_columns))
        cells[i] = cell - cut
        excess -= cut
        remaining_columns -= 1
    return [max(c - 2, 1) for c in cells]


def _relative_positions(positions, line_length: int, show_trainable: bool) -> list:
    """Column right edges as fractions of the line, with Keras's "Trainable" squeeze."""
    if positions is None:
        positions = list(_DEFAULT_POSITIONS)
    else:
        positions = list(positions)
        if len(positions) != len(_DEFAULT_POSITIONS):
            raise ValueError(
                f"`positions` needs {len(_DEFAULT_POSITIONS)} entries, one per column"
                f" (the Trainable column is added for you). Received: {len(positions)} entries."
            )
        if positions[-1] > 1:  # Absolute character positions, as tf.keras accepted.
            positions = [p / line_length for p in positions]
    if show_trainable:
        positions = [p * 0.90 for p in positions] + [1.0]
    return positions


def _wrap(text: str, width: int) -> list:
    """Greedy word wrap; a word longer than the cell is cut with an ellipsis."""
    lines, line = [], ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if len(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = word if len(word) <= width else word[: width - 1] + "…"
    lines.append(line)
    return lines


def _align(text: str, width: int, alignment: str) -> str:
    if alignment == "right":
        return text.rjust(width)
    if alignment == "center":
        left = (width - len(text)) // 2
        return " " * left + text + " " * (width - len(text) - left)
    return text.ljust(width)


def _render_row(cells, widths, alignments, bar: str, bottom: bool = False) -> list:
    wrapped = [_wrap(text, width) for text, width in zip(cells, widths)]
    height = max(len(lines) for lines in wrapped)
    if bottom:  # Header cells sit on the rule below them, as in Keras's table.
        wrapped = [[""] * (height - len(lines)) + lines for lines in wrapped]
    out = []
    for i in range(height):
        parts = [
            " " + _align(lines[i] if i < len(lines) else "", width, alignment) + " "
            for lines, width, alignment in zip(wrapped, widths, alignments)
        ]
        out.append(bar + bar.join(parts) + bar)
    return out


def _rule(widths, left: str, fill: str, middle: str, right: str) -> str:
    return left + middle.join(fill * (w + 2) for w in widths) + right


def _trainable_flag(module: nn.Module) -> str:
    params = [p for p in module.parameters() if not is_lazy(p)]
    _, frozen, _ = _weights(module)
    if not params and not frozen:
        return "-"
    if params and all(p.requires_grad for p in params):
        return "Y"
    if any(p.requires_grad for p in params):
        return "mixed"
    return "N"


def _layer_rows(root, shapes, expand_nested, show_trainable, layer_range):
    children = list(root.named_children())
    start, stop = _layer_index_range(children, layer_range)
    rows = []

    def add(name, module, level):
        trainable, frozen, lazy = _weights(module)
        count = f"{_count(trainable) + _count(frozen):,}" + (" (unbuilt)" if lazy else "")
        label = name.rsplit(".", 1)[-1]
        indent = "   " * level + "└ " if level else ""
        row = [
            f"{indent}{label} ({type(module).__name__})",
            _format_shape_structure(shapes.get(name)),
            count,
        ]
        if show_trainable:
            row.append(_trainable_flag(module))
        rows.append(row)
        if expand_nested:
            for child_name, child in module.named_children():
                add(f"{name}.{child_name}", child, level + 1)

    for name, module in children[start:stop]:
        add(name, module, 0)
    return rows


def _layer_index_range(children, layer_range):
    if layer_range is None:
        return 0, len(children)
    if not isinstance(layer_range, (list, tuple)) or len(layer_range) != 2:
        raise ValueError(
            "`layer_range` must be a list or tuple of two layer names (or regexes)."
            f" Received: {type(layer_range).__name__} {layer_range!r}."
        )
    if not all(isinstance(item, str) for item in layer_range):
        raise ValueError(f"`layer_range` must hold two strings. Received: {layer_range!r}.")
    names = [name for name, _ in children]
    lower = [i for i, name in enumerate(names) if re.match(layer_range[0], name)]
    upper = [i for i, name in enumerate(names) if re.match(layer_range[1], name)]
    if not lower or not upper:
        raise ValueError(
            f"`layer_range` {list(layer_range)} matches no layer name."
            f" The layers are named: {', '.join(names[:20])}."
        )
    if min(lower) > max(upper):
        return min(upper), max(lower) + 1
    return min(lower), max(upper) + 1


def _model_name(model, root) -> str:
    name = getattr(model, "name", None)
    if isinstance(name, str) and name:
        return name
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(root).__name__).lower()


def print_summary(
    model,
    line_length=None,
    positions=None,
    print_fn=None,
    expand_nested=False,
    show_trainable=False,
    layer_range=None,
):
    """Prints a summary table of a module's layers and parameter counts.

    Rows are the module's direct children (all descendants, indented, with
    `expand_nested`). Output shapes come from `model._layer_output_shapes`,
    filled by `record_output_shapes` during a forward pass; before one, they
    show as `?`.

    Args:
        model: An `nn.Module`, or a wrapper whose `module` attribute is one.
        line_length: Total width of the table. Defaults to 88 (100 with
            `show_trainable`), capped at the terminal width minus 4.
        positions: Right edges of the columns, as fractions of `line_length`
            (or absolute character positions when the last is above 1).
            Defaults to `[0.45, 0.80, 1.0]`.
        print_fn: Called once with the whole summary text. Defaults to writing
            to stdout.
        expand_nested: Whether to list nested submodules too. Defaults to
            `False`.
        show_trainable: Whether to add a "Trainable" column (`Y`, `N`, `mixed`,
            or `-` without weights). Defaults to `False`.
        layer_range: Two layer names or regexes; only the layers from the first
            match to the last match (inclusive) are listed. Defaults to `None`
            (all layers).

    Raises:
        ValueError: If `layer_range` is malformed or matches nothing, or the
            columns would be narrower than 4 characters.

    Example:

    >>> net = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    >>> print_summary(net, line_length=60, print_fn=lambda text: print(text.splitlines()[-3]))
     Total params: 50,890 (198.79 KB)
    """
    root = _summary_root(model)
    shapes = getattr(model, "_layer_output_shapes", None)
    if shapes is None:
        shapes = getattr(root, "_layer_output_shapes", None) or {}
    header = ["Layer (type)", "Output Shape", "Param #"]
    alignments = ["left", "left", "right"]
    default_length = _DEFAULT_LINE_LENGTH
    if show_trainable:
        header.append("Trainable")
        alignments.append("center")
        default_length += _TRAINABLE_EXTRA_WIDTH
    if line_length is None:
        line_length = min(default_length, shutil.get_terminal_size().columns - 4)
    positions = _relative_positions(positions, line_length, show_trainable)
    widths = _column_widths(positions, line_length)

    lines = [f'Model: "{_model_name(model, root)}"', _rule(widths, "┏", "━", "┳", "┓")]
    lines += _render_row(header, widths, alignments, "┃", bottom=True)
    lines.append(_rule(widths, "┡", "━", "╇", "┩"))
    rows = _layer_rows(root, shapes, expand_nested, show_trainable, layer_range)
    for i, row in enumerate(rows):
        if i:
            lines.append(_rule(widths, "├", "─", "┼", "┤"))
        lines += _render_row(row, widths, alignments, "│")
    lines.append(_rule(widths, "└", "─", "┴", "┘"))
    lines += _footer(model, root)
    text = "\n".join(lines) + "\n"
    if print_fn is not None:
        print_fn(text)
    else:
        sys.stdout.write(_emphasize(text) if _stdout_is_terminal() else text)
        sys.stdout.flush()


def _footer(model, root) -> list:
    trainable, frozen, _ = _weights(root)
    optimizer_state = _optimizer_state(model)
    total = trainable + frozen + optimizer_state
    lines = [
        f" Total params: {_count(total):,} ({readable_memory_size(_nbytes(total))})",
        f" Trainable params: {_count(trainable):,} ({readable_memory_size(_nbytes(trainable))})",
        f" Non-trainable params: {_count(frozen):,} ({readable_memory_size(_nbytes(frozen))})",
    ]
    if optimizer_state:
        lines.append(
            f" Optimizer params: {_count(optimizer_state):,}"
            f" ({readable_memory_size(_nbytes(optimizer_state))})"
        )
    return lines


def _stdout_is_terminal() -> bool:
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty()) and "NO_COLOR" not in os.environ


def _emphasize(text: str) -> str:
    """Bolds the title and footer labels, as Keras does on a terminal."""
    bold, reset = "\033[1m", "\033[0m"
    text = re.sub(r'^(Model: ".*")$', bold + r"\1" + reset, text, count=1, flags=re.M)
    labels = r"^( (?:Total|Trainable|Non-trainable|Optimizer) params: )"
    return re.sub(labels, bold + r"\1" + reset, text, flags=re.M)


__all__ = ["print_summary", "record_output_shapes", "readable_memory_size"]
