"""Traces one forward pass of a module into a graph for `plot_model` to draw.

Owns what the picture is made of: the example inputs (given to
`plot_model`, as samples or shapes, or those of the model's first call), the
trace (with `torch.fx`; a module fx cannot trace, e.g. one with Python
control flow on tensor values, is recorded while it runs once for real, by
forward hooks and a `TorchFunctionMode`), and the resulting `Graph` of named
inputs, modules, operations and outputs with the shape and dtype of each
node's tensors. Tracing leaves the module as it was: training flags and
collected losses are restored. Drawing the graph belongs to `plot_model.py`.
"""

import functools
import inspect
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
import torch.fx
from torch import nn
from torch.overrides import TorchFunctionMode

from torchfit.utils.uncompiled import uncompiled

__all__ = ["Graph", "GraphNode", "trace"]

# Shapes given with a `None` batch dimension are traced with this batch size.
_SHAPE_BATCH_SIZE = 2
# Operations that only unpack or inspect a value: drawn as a direct edge.
_PASS_THROUGH = {"getitem", "getattr", "size", "dim", "contiguous", "__get__"}
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


@dataclass
class GraphNode:
    """One box of the picture: an input, a module, a tensor operation or an output."""

    key: str  # unique DOT id
    name: str  # what the picture shows
    kind: str  # "input", "module", "op" or "output"
    module: Optional[nn.Module] = None
    sources: list = field(default_factory=list)  # keys of the nodes feeding this one
    metas: list = field(default_factory=list)  # (shape, dtype) of each output tensor
    cluster: tuple = ()  # ((module name, class name), ...) of enclosing submodules


class Graph:
    """The traced dataflow: nodes in the order they ran, each naming its sources.

    Attributes:
        nodes: `key -> GraphNode`, inputs first and outputs last.
        batch_size: Size of the traced batch (the first input's first
            dimension), shown as `None` in shapes; `None` when unknown.
    """

    def __init__(self):
        self.nodes: dict = {}
        self.batch_size: Optional[int] = None

    def add(self, name: str, kind: str, sources: list, value: Any, **extra) -> str:
        """Adds a node for `value` (tensors, possibly nested) and returns its unique key.

        A repeated name gets a `_1`, `_2`, ... suffix in its key; a module
        called again also shows the suffix, so each call is its own box.
        """
        key, count = name, 0
        while key in self.nodes:
            count += 1
            key = f"{name}_{count}"
        display = name if kind != "module" or count == 0 else key
        unique_sources = list(dict.fromkeys(sources))
        self.nodes[key] = GraphNode(
            key, display, kind, sources=unique_sources, metas=_metas(value), **extra
        )
        return key


def trace(model: nn.Module, inputs: Any, *, expand_nested: bool) -> Graph:
    """Traces one forward pass of `model` in eval mode, without gradients.

    Args:
        model: A `torchfit.Model` (its wrapped module is traced) or any
            `nn.Module`.
        inputs: Sample inputs or their shapes, as `plot_model` takes them;
            `None` uses the inputs of the model's first call.
        expand_nested: Trace into custom submodules instead of keeping each
            as one node.

    Returns:
        The `Graph`, with operations that reach no module or output dropped.

    Raises:
        TypeError: If `model` is not an `nn.Module`.
        ValueError: If there are no inputs to trace with, or a shape has
            `None` past the batch dimension.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(
            "`model` must be a torchfit.Model or a torch.nn.Module."
            f" Received: model of type {type(model).__name__}."
        )
    target = _target_module(model)
    output_names = getattr(model, "output_names", None)
    args, kwargs = _example_inputs(model, target, inputs)
    saved = _save_state(target)
    try:
        with torch.no_grad():
            try:
                graph = _trace_fx(target, args, kwargs, output_names, expand_nested)
            except Exception:  # noqa: BLE001 - fx cannot trace e.g. control flow on values
                graph = _trace_by_running(target, args, kwargs, output_names, expand_nested)
    finally:
        _restore_state(saved)
    _prune_dead_ends(graph)
    leaves = _tensors((args, kwargs))
    graph.batch_size = int(leaves[0].shape[0]) if leaves and leaves[0].dim() else None
    return graph


def _prune_dead_ends(graph: Graph) -> None:
    """Drops operations whose results reach no module or output (e.g. a test
    in a Python `if`), so the picture shows the dataflow only."""
    while True:
        used = {source for node in graph.nodes.values() for source in node.sources}
        dead = [key for key, node in graph.nodes.items() if node.kind == "op" and key not in used]
        if not dead:
            return
        for key in dead:
            del graph.nodes[key]


def _target_module(model: nn.Module) -> nn.Module:
    """The module whose forward runs: a torchfit.Model's `forward_module`, else the model,
    seen through a `torch.compile` wrapper (the graph of the module it compiled)."""
    target = getattr(model, "forward_module", None)
    return uncompiled(target if isinstance(target, nn.Module) else model)


def _example_inputs(model: nn.Module, target: nn.Module, inputs: Any) -> tuple:
    if inputs is None:
        example = getattr(model, "example_inputs", None)
        if example is None:
            raise ValueError(
                "plot_model traces one forward pass, and the model has not been called"
                " yet. Pass `inputs=`: sample inputs (arrays or tensors, as a list or"
                " dict for several inputs) or their shapes, e.g. inputs=(None, 784);"
                " or call the model once (fit/predict) first."
            )
        return example
    device = next(
        (t.device for t in (*target.parameters(), *target.buffers())), torch.device("cpu")
    )
    x = _materialize(inputs, device)
    if isinstance(x, list) and len(x) == 1:
        x = x[0]
    route = getattr(model, "route_inputs", None)
    if route is not None:
        return route((x,), {})
    if isinstance(x, Mapping):
        return (), dict(x)
    if isinstance(x, (list, tuple)):
        return tuple(x), {}
    return (x,), {}


def _is_shape(value: Any) -> bool:
    return (
        isinstance(value, (tuple, torch.Size))
        and len(value) > 0
        and all(
            dim is None or (isinstance(dim, int) and not isinstance(dim, bool)) for dim in value
        )
    )


def _materialize(value: Any, device: torch.device) -> Any:
    """Sample inputs as tensors on `device`; shapes become random float32 tensors."""
    if _is_shape(value):
        dims = list(value)
        if any(dim is None for dim in dims[1:]):
            raise ValueError(
                "In `inputs` shapes, only the batch (first) dimension may be None."
                f" Received: shape {tuple(value)}. Give the other sizes, or pass a sample array."
            )
        dims[0] = _SHAPE_BATCH_SIZE if dims[0] is None else dims[0]
        return torch.rand(dims, device=device)
    if isinstance(value, Mapping):
        return {key: _materialize(item, device) for key, item in value.items()}
    if isinstance(value, list):
        return [_materialize(item, device) for item in value]
    if isinstance(value, torch.Tensor):
        return value.to(device)
    tensor = torch.as_tensor(np.asarray(value))
    if tensor.dtype == torch.float64:
        tensor = tensor.float()
    return tensor.to(device)


def _save_state(module: nn.Module) -> list:
    """Training flags and collected losses, restored after tracing: plotting changes nothing."""
    saved = []
    for sub in module.modules():
        saved.append(
            (
                sub,
                sub.training,
                dict(
                    (name, list(getattr(sub, name)))
                    for name in ("_own_losses", "_forward_losses")
                    if isinstance(getattr(sub, name, None), list)
                ),
            )
        )
    module.eval()
    return saved


def _restore_state(saved: list) -> None:
    for sub, training, lists in saved:
        sub.training = training
        for name, value in lists.items():
            setattr(sub, name, value)


def _tensors(value: Any) -> list:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, Mapping):
        return [t for item in value.values() for t in _tensors(item)]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors(item)]
    return []


def _metas(value: Any) -> list:
    return [(tuple(t.shape), t.dtype) for t in _tensors(value)]


def _is_leaf(module: nn.Module, expand_nested: bool) -> bool:
    """Whether a submodule is drawn as one box: torch's own modules always,
    custom ones unless `expand_nested`; containers never."""
    if isinstance(module, _CONTAINERS):
        return False
    if type(module).__module__.startswith("torch."):
        return True
    return not expand_nested


def _op_name(target: Any) -> str:
    name = target if isinstance(target, str) else getattr(target, "__name__", type(target).__name__)
    return name.strip("_") if name.startswith("__") and name != "__get__" else name


def _output_entries(structure: Any, output_names: Optional[list]) -> list:
    """`(name, value)` per output, named as `compile` names them."""
    if isinstance(structure, Mapping):
        return list(structure.items())
    if isinstance(structure, (list, tuple)) and len(structure) != 1:
        names = (
            output_names
            if output_names and len(output_names) == len(structure)
            else [f"output_{index + 1}" for index in range(len(structure))]
        )
        return list(zip(names, structure))
    item = structure[0] if isinstance(structure, (list, tuple)) else structure
    return [(output_names[0] if output_names else "output", item)]


def _parameter_values(target: nn.Module, args: tuple, kwargs: dict) -> tuple:
    """`(given, defaults)`: forward's parameters given by the inputs, and the
    defaults of the others (fixed as constants while tracing)."""
    parameters = list(inspect.signature(target.forward).parameters.values())
    kinds = inspect.Parameter
    if any(p.kind in (kinds.VAR_POSITIONAL, kinds.VAR_KEYWORD) for p in parameters):
        raise TypeError("torch.fx needs named forward parameters")
    given = dict(zip([p.name for p in parameters], args))
    given.update(kwargs)
    defaults = {
        p.name: p.default for p in parameters if p.name not in given and p.default is not p.empty
    }
    return parameters, given, defaults


class _Tracer(torch.fx.Tracer):
    def __init__(self, expand_nested: bool):
        super().__init__()
        self.expand_nested = expand_nested

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return _is_leaf(module, self.expand_nested)


class _ValueRecorder(torch.fx.Interpreter):
    """Runs the traced graph once, keeping every node's value (for shapes)."""

    def __init__(self, module):
        super().__init__(module)
        self.values: dict = {}

    def run_node(self, node):
        value = super().run_node(node)
        self.values[node] = value
        return value


def _fx_cluster(node) -> tuple:
    stack = node.meta.get("nn_module_stack") or {}
    cluster = []
    for entry in stack.values():
        path, cls = entry if isinstance(entry, tuple) else (str(entry), type(None))
        if node.op == "call_module" and path == node.target:
            continue
        cluster.append(
            (path, cls.__name__ if isinstance(cls, type) else str(cls).rsplit(".", 1)[-1])
        )
    return tuple(cluster)


def _trace_fx(target, args, kwargs, output_names, expand_nested) -> Graph:
    parameters, given, defaults = _parameter_values(target, args, kwargs)
    tracer = _Tracer(expand_nested)
    fx_graph = tracer.trace(target, concrete_args=defaults or None)
    recorder = _ValueRecorder(torch.fx.GraphModule(tracer.root, fx_graph))
    placeholders = [node for node in fx_graph.nodes if node.op == "placeholder"]
    values = [
        given[p.name] if p.name in given else defaults[p.name]
        for p in parameters[: len(placeholders)]
    ]
    recorder.run(*values)
    graph = Graph()
    keys: dict = {}  # fx node -> graph keys it stands for (a pass-through stands for its sources)
    for parameter, node in zip(parameters, placeholders):
        if parameter.name in given:
            keys[node] = [graph.add(parameter.name, "input", [], recorder.values[node])]
    for node in fx_graph.nodes:
        if node.op in ("placeholder", "get_attr"):
            continue
        sources = [key for source in node.all_input_nodes for key in keys.get(source, [])]
        if node.op == "output":
            _add_outputs(
                graph,
                node.args[0],
                output_names,
                lambda item: [key for source in _fx_nodes(item) for key in keys.get(source, [])],
                _fx_value(recorder, node.args[0]),
            )
            continue
        if not sources:
            continue  # constants, and checks on the defaults fixed above
        if node.op == "call_module":
            keys[node] = [
                graph.add(
                    node.target,
                    "module",
                    sources,
                    recorder.values[node],
                    module=tracer.root.get_submodule(node.target),
                    cluster=_fx_cluster(node),
                )
            ]
        elif _op_name(node.target) in _PASS_THROUGH or node.target is operator.getitem:
            keys[node] = sources
        else:
            keys[node] = [
                graph.add(
                    node.name, "op", sources, recorder.values[node], cluster=_fx_cluster(node)
                )
            ]
    return graph


def _fx_nodes(item: Any) -> list:
    found: list = []
    torch.fx.node.map_arg(item, found.append)
    return found


def _fx_value(recorder: _ValueRecorder, structure: Any) -> Any:
    return torch.fx.node.map_arg(structure, lambda node: recorder.values.get(node))


def _add_outputs(graph: Graph, structure: Any, output_names, sources_of, values: Any) -> None:
    entries = _output_entries(structure, output_names)
    value_entries = _output_entries(values, output_names)
    for (name, item), (_, value) in zip(entries, value_entries):
        graph.add(name, "output", sources_of(item), value)


class _RunRecorder(TorchFunctionMode):
    """Records a real forward pass: leaf-module calls (by hooks) and the torch
    operations between them (by the function mode), linked by tensor identity."""

    def __init__(self, graph: Graph, expand_nested: bool):
        super().__init__()
        self.graph = graph
        self.expand_nested = expand_nested
        self.producers: dict = {}  # id(tensor) -> graph keys
        self.alive: list = []  # keeps recorded tensors alive, so their ids stay unique
        self.depth = 0  # > 0 inside a leaf module's forward
        self.clusters: list = []

    def bind(self, value: Any, keys: list) -> None:
        for tensor in _tensors(value):
            self.producers[id(tensor)] = keys
            self.alive.append(tensor)

    def sources(self, value: Any) -> list:
        return [key for tensor in _tensors(value) for key in self.producers.get(id(tensor), [])]

    def before(self, name, module, args, kwargs):
        if self.depth:
            self.depth += 1
        elif _is_leaf(module, self.expand_nested):
            self.depth = 1
        elif self.expand_nested:
            self.clusters.append((name, type(module).__name__))

    def after(self, name, module, args, kwargs, output):
        if self.depth > 1:
            self.depth -= 1
        elif self.depth == 1:
            self.depth = 0
            sources = self.sources((args, kwargs))
            key = self.graph.add(
                name, "module", sources, output, module=module, cluster=tuple(self.clusters)
            )
            self.bind(output, [key])
        elif self.expand_nested and self.clusters:
            self.clusters.pop()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if self.depth == 0:
            sources = self.sources((args, kwargs))
            if sources and _tensors(result):
                name = _op_name(func)
                if name in _PASS_THROUGH:
                    self.bind(result, sources)
                else:
                    self.bind(
                        result,
                        [self.graph.add(name, "op", sources, result, cluster=tuple(self.clusters))],
                    )
        return result


def _trace_by_running(target, args, kwargs, output_names, expand_nested) -> Graph:
    graph = Graph()
    recorder = _RunRecorder(graph, expand_nested)
    names = [p.name for p in inspect.signature(target.forward).parameters.values()]
    for index, value in enumerate(args):
        name = (
            names[index]
            if index < len(names) and not names[index].startswith("*")
            else f"input_{index + 1}"
        )
        recorder.bind(value, [graph.add(name, "input", [], value)])
    for name, value in kwargs.items():
        recorder.bind(value, [graph.add(name, "input", [], value)])
    handles = []
    for name, module in target.named_modules():
        if module is not target:
            handles.append(
                module.register_forward_pre_hook(
                    functools.partial(recorder.before, name), with_kwargs=True
                )
            )
            handles.append(
                module.register_forward_hook(
                    functools.partial(recorder.after, name), with_kwargs=True
                )
            )
    try:
        with recorder:
            # nn.Module.__call__, not torchfit.Model.__call__: no step bookkeeping.
            result = nn.Module.__call__(target, *args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    _add_outputs(graph, result, output_names, recorder.sources, result)
    return graph
