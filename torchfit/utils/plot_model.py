"""Draws a model's dataflow with Graphviz: `plot_model` and `model_to_dot`.

Owns the public arguments, writing a traced graph in the DOT language (labels,
clusters for nested modules, edges) and rendering it with Graphviz's `dot`
program. Tracing the forward pass into that graph belongs to
`_model_graph.py`; what the model computes belongs to the model, and the
example inputs a model has seen are kept by `models/model.py`.
"""

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any, Optional

from torch import nn

from torchfit.utils._model_graph import Graph, GraphNode, trace

__all__ = ["model_to_dot", "plot_model"]

_RANKDIRS = ("TB", "LR", "BT", "RL")
_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg", "gif", "ps", "dot", "gv")
_INSTALL_HINT = (
    "plot_model needs Graphviz's `dot` program, which was not found on the PATH."
    " Install Graphviz (https://graphviz.org/download/): `apt-get install graphviz`"
    " on Debian/Ubuntu, `brew install graphviz` on macOS or `conda install graphviz`,"
    " then try again. Saving to a `.dot` file works without it."
)


@dataclass
class _Options:
    show_shapes: bool = False
    show_dtype: bool = False
    show_layer_names: bool = True
    rankdir: str = "TB"
    expand_nested: bool = False
    dpi: int = 200
    show_layer_activations: bool = False
    show_trainable: bool = False
    batch_size: Optional[int] = field(default=None)


def model_to_dot(
    model: nn.Module,
    show_shapes: bool = False,
    show_dtype: bool = False,
    show_layer_names: bool = True,
    rankdir: str = "TB",
    expand_nested: bool = False,
    dpi: int = 200,
    show_layer_activations: bool = False,
    show_trainable: bool = False,
    inputs: Any = None,
) -> str:
    """Returns the model's dataflow graph as DOT source text.

    Keras returns a `pydot.Dot`; torchfit returns the DOT text itself, which
    Graphviz (and `pydot.graph_from_dot_data`) read directly. The arguments
    are those of `plot_model`.

    Example:
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    >>> source = model_to_dot(net, inputs=(None, 4))
    >>> "0 (Linear)" in source and "output (Output)" in source
    True
    """
    if rankdir not in _RANKDIRS:
        raise ValueError(f"`rankdir` must be one of {_RANKDIRS}. Received: rankdir={rankdir!r}.")
    graph = trace(model, inputs, expand_nested=expand_nested)
    options = _Options(
        show_shapes,
        show_dtype,
        show_layer_names,
        rankdir,
        expand_nested,
        dpi,
        show_layer_activations,
        show_trainable,
        graph.batch_size,
    )
    return _dot_source(graph, options)


def plot_model(
    model: nn.Module,
    to_file: str = "model.png",
    show_shapes: bool = False,
    show_dtype: bool = False,
    show_layer_names: bool = True,
    rankdir: str = "TB",
    expand_nested: bool = False,
    dpi: int = 200,
    show_layer_activations: bool = False,
    show_trainable: bool = False,
    inputs: Any = None,
):
    """Draws the model's dataflow into an image file, like `keras.utils.plot_model`.

    One forward pass is traced (with `torch.fx`; a model `torch.fx` cannot
    trace, e.g. one with data-dependent control flow, is recorded while it
    runs once for real) and drawn: the named inputs (`forward`'s parameter
    names), every module (`name (Class)`), the tensor operations between
    them, and the outputs (by output name). Shapes are batch shapes: the
    batch dimension shows as `None`, as in Keras.

    Args:
        model: A `torchfit.Model` or any `nn.Module`.
        to_file: The file to write. Its suffix picks the format: `.png`,
            `.svg`, `.pdf` (also `.jpg`, `.gif`, `.ps`), or `.dot`/`.gv` for
            the DOT source (no Graphviz needed). No suffix means PNG.
            Defaults to `"model.png"`.
        show_shapes: Show each tensor's shape. Defaults to `False`.
        show_dtype: Show each tensor's dtype. Defaults to `False`.
        show_layer_names: Show module names, not only classes. Defaults to `True`.
        rankdir: Graphviz direction: `"TB"` (top to bottom) or `"LR"`, `"BT"`,
            `"RL"`. Defaults to `"TB"`.
        expand_nested: Draw the inside of custom submodules, each in a
            cluster, instead of one box per submodule. Defaults to `False`.
        dpi: Resolution of raster images. Defaults to 200.
        show_layer_activations: Show the `activation` of modules that have
            one. Defaults to `False`.
        show_trainable: Show whether each module's weights are trainable.
            Defaults to `False`.
        inputs: What to trace with: sample inputs as the model takes them
            (an array or tensor, a list, a dict), or their shapes (a tuple
            such as `(None, 32, 32, 3)`, a list of tuples, a dict of tuples;
            only the batch dimension may be `None`, and shapes make float32
            inputs). Defaults to the inputs of the model's first call.

    Returns:
        An `IPython.display.Image` of the file when IPython is installed and
        the format is an image, else `None`.

    Raises:
        ImportError: When Graphviz's `dot` program is not installed.
        ValueError: For a bad `rankdir`, an unknown file suffix, or no inputs
            to trace with.

    Example:
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "net.dot")
    >>> plot_model(net, path, show_shapes=True, inputs=(None, 4))
    >>> "(None, 8)" in open(path).read()
    True
    """
    extension = os.path.splitext(str(to_file))[1][1:].lower() or "png"
    if extension not in _FORMATS:
        raise ValueError(
            f"`to_file` must end in one of {['.' + name for name in _FORMATS]}."
            f" Received: to_file={str(to_file)!r}."
        )
    dot_program = None
    if extension not in ("dot", "gv"):
        dot_program = shutil.which("dot")
        if dot_program is None:
            raise ImportError(_INSTALL_HINT)
    source = model_to_dot(
        model,
        show_shapes=show_shapes,
        show_dtype=show_dtype,
        show_layer_names=show_layer_names,
        rankdir=rankdir,
        expand_nested=expand_nested,
        dpi=dpi,
        show_layer_activations=show_layer_activations,
        show_trainable=show_trainable,
        inputs=inputs,
    )
    if dot_program is None:
        with open(to_file, "w", encoding="utf-8") as handle:
            handle.write(source)
        return None
    _render(dot_program, source, extension, str(to_file), dpi)
    if extension in ("png", "jpg", "jpeg", "gif"):
        try:
            from IPython import display
        except ImportError:
            return None
        return display.Image(filename=to_file)
    return None


def _render(dot_program: str, source: str, extension: str, to_file: str, dpi: int) -> None:
    output_format = "jpeg" if extension == "jpg" else extension
    command = [dot_program, f"-T{output_format}", f"-Gdpi={int(dpi)}", "-o", to_file]
    try:
        completed = subprocess.run(
            command, input=source.encode("utf-8"), capture_output=True, check=False, timeout=120
        )
    except OSError as err:
        raise OSError(
            f"Could not run Graphviz's `dot` ({dot_program}): {err}. {_INSTALL_HINT}"
        ) from err
    if completed.returncode != 0:
        message = completed.stderr.decode("utf-8", "replace").strip()
        raise OSError(f"Graphviz's `dot` failed to write {to_file!r}: {message}")


# ------------------------------------------------------------------ DOT text


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped + '"'


def _format_shape(shape: tuple, batch_size: Optional[int]) -> str:
    dims = [
        "None" if index == 0 and dim == batch_size else str(dim) for index, dim in enumerate(shape)
    ]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _format_metas(metas: list, batch_size: Optional[int], what: str) -> str:
    if what == "shape":
        parts = [_format_shape(meta[0], batch_size) for meta in metas]
    else:
        parts = [str(meta[1]).replace("torch.", "") for meta in metas]
    if not parts:
        return "?"
    return parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"


def _label(node: GraphNode, graph: Graph, options: _Options) -> str:
    if node.kind == "module":
        title = (
            f"{node.name} ({type(node.module).__name__})"
            if options.show_layer_names
            else type(node.module).__name__
        )
    elif node.kind == "input":
        title = f"{node.name} (Input)"
    elif node.kind == "output":
        title = f"{node.name} (Output)"
    else:
        title = node.name
    lines = [title]
    sources = [graph.nodes[name] for name in node.sources]
    in_metas = [meta for source in sources for meta in source.metas]
    for what, wanted in (("shape", options.show_shapes), ("dtype", options.show_dtype)):
        if not wanted:
            continue
        out_text = _format_metas(node.metas, options.batch_size, what)
        if node.kind in ("input", "output"):
            lines.append(f"{what}: {out_text}")
        else:
            lines.append(
                f"input {what}: {_format_metas(in_metas, options.batch_size, what)}"
                f"  output {what}: {out_text}"
            )
    if node.kind == "module":
        activation = getattr(node.module, "activation", None)
        if options.show_layer_activations and activation is not None:
            name = getattr(activation, "__name__", None) or type(activation).__name__
            lines.append(f"activation: {name}")
        if options.show_trainable:
            flags = [parameter.requires_grad for parameter in node.module.parameters()]
            if flags:
                state = "yes" if all(flags) else "no" if not any(flags) else "partly"
                lines.append(f"trainable: {state}")
    return "\n".join(lines)


def _dot_source(graph: Graph, options: _Options) -> str:
    lines = [
        "digraph model {",
        f"  graph [rankdir={options.rankdir}, dpi={int(options.dpi)}];",
        '  node [shape=box, style="rounded,filled", fillcolor=white, fontname="Helvetica"];',
        '  edge [fontname="Helvetica"];',
    ]
    clustered: dict = {}
    for node in graph.nodes.values():
        clustered.setdefault(node.cluster if options.expand_nested else (), []).append(node)
    _emit_cluster((), clustered, graph, options, lines, indent="  ")
    for node in graph.nodes.values():
        for source in node.sources:
            lines.append(f"  {_quote(source)} -> {_quote(node.key)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _emit_cluster(
    path: tuple, clustered: dict, graph: Graph, options: _Options, lines: list, indent: str
) -> None:
    for node in clustered.get(path, []):
        style = {
            "input": ", fillcolor=lightblue",
            "output": ", fillcolor=lightyellow",
            "op": ", shape=ellipse, fillcolor=whitesmoke",
        }.get(node.kind, "")
        lines.append(
            f"{indent}{_quote(node.key)} [label={_quote(_label(node, graph, options))}{style}];"
        )
    children = sorted(
        {
            key[: len(path) + 1]
            for key in clustered
            if len(key) > len(path) and key[: len(path)] == path
        }
    )
    for child in children:
        module_name, class_name = child[-1]
        lines.append(f"{indent}subgraph {_quote('cluster_' + module_name)} {{")
        lines.append(f"{indent}  label={_quote(f'{module_name} ({class_name})')}; style=dashed;")
        _emit_cluster(child, clustered, graph, options, lines, indent + "  ")
        lines.append(f"{indent}}}")
