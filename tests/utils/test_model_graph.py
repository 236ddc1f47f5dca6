"""Tests for torchfit.utils._model_graph: tracing a forward pass into a graph."""

import pytest
import torch
from torch import nn

from torchfit.utils import _model_graph


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(torch.relu(self.dense(x)) + x)


class ControlFlow(Residual):
    def forward(self, x):
        h = self.dense(x)
        if h.sum() > -1e9:  # torch.fx cannot trace this
            h = torch.relu(h)
        return self.head(h)


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
        self.inner = Residual()

    def forward(self, x):
        return self.inner(self.block(x))


def _edges(graph):
    return {(source, key) for key, node in graph.nodes.items() for source in node.sources}


def test_trace_records_kinds_sources_shapes_and_batch_size():
    graph = _model_graph.trace(Residual(), (None, 4), expand_nested=False)
    kinds = {key: node.kind for key, node in graph.nodes.items()}
    assert kinds == {
        "x": "input",
        "dense": "module",
        "relu": "op",
        "add": "op",
        "head": "module",
        "output": "output",
    }
    assert _edges(graph) == {
        ("x", "dense"),
        ("dense", "relu"),
        ("relu", "add"),
        ("x", "add"),
        ("add", "head"),
        ("head", "output"),
    }
    assert graph.nodes["head"].metas == [((2, 2), torch.float32)]
    assert graph.batch_size == 2  # a `None` batch dimension is traced with 2 samples


def test_recording_a_real_forward_gives_the_graph_fx_gives():
    module, x = Residual().eval(), torch.ones(3, 4)
    with torch.no_grad():
        by_fx = _model_graph._trace_fx(module, (x,), {}, None, False)
        by_running = _model_graph._trace_by_running(module, (x,), {}, None, False)
    assert [(n.kind, n.metas) for n in by_fx.nodes.values()] == [
        (n.kind, n.metas) for n in by_running.nodes.values()
    ]
    assert len(_edges(by_fx)) == len(_edges(by_running)) == 6


def test_control_flow_is_recorded_and_its_test_pruned():
    graph = _model_graph.trace(ControlFlow(), torch.ones(5, 4), expand_nested=False)
    assert _edges(graph) == {
        ("x", "dense"),
        ("dense", "relu"),
        ("relu", "head"),
        ("head", "output"),
    }
    assert graph.batch_size == 5


def test_expand_nested_keeps_the_enclosing_submodules():
    collapsed = _model_graph.trace(Outer(), (None, 4), expand_nested=False)
    assert [n.name for n in collapsed.nodes.values() if n.kind == "module"] == [
        "block.0",
        "block.1",
        "inner",
    ]
    expanded = _model_graph.trace(Outer(), (None, 4), expand_nested=True)
    clusters = {n.name: n.cluster for n in expanded.nodes.values() if n.kind != "input"}
    assert clusters["inner.dense"] == (("inner", "Residual"),)
    assert clusters["block.0"] == (("block", "Sequential"),)
    assert clusters["output"] == ()


def test_repeated_names_get_unique_keys_and_module_calls_show_them():
    graph = _model_graph.Graph()
    first = graph.add("dense", "module", [], torch.ones(1))
    second = graph.add("dense", "module", [first, first], torch.ones(1))
    op = graph.add("add", "op", [], torch.ones(1))
    again = graph.add("add", "op", [], (torch.ones(2), {"b": torch.ones(3, dtype=torch.int64)}))
    assert (first, second, op, again) == ("dense", "dense_1", "add", "add_1")
    assert graph.nodes["dense_1"].name == "dense_1" and graph.nodes["add_1"].name == "add"
    assert graph.nodes["dense_1"].sources == ["dense"]
    assert graph.nodes["add_1"].metas == [((2,), torch.float32), ((3,), torch.int64)]


def test_errors_name_the_argument():
    with pytest.raises(TypeError, match="`model` must be"):
        _model_graph.trace("not a module", (None, 4), expand_nested=False)
    with pytest.raises(ValueError, match="Pass `inputs=`"):
        _model_graph.trace(Residual(), None, expand_nested=False)
    with pytest.raises(ValueError, match="only the batch"):
        _model_graph.trace(Residual(), (None, None), expand_nested=False)
