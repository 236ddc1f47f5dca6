"""Tests for torchfit.utils.plot_model: tracing, DOT text, rendering, errors."""

import os
import shutil

import numpy as np
import pytest
import torch
from guide_support import ImageAndTimeseries  # the guide's two-input, two-output model
from torch import nn

import torchfit
from torchfit.utils import model_to_dot, plot_model

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz `dot` is not installed"
)


class ControlFlow(nn.Module):
    """torch.fx cannot trace a Python `if` on a tensor's value."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(4, 4)
        self.second = nn.Linear(4, 2)

    def forward(self, x):
        h = self.first(x)
        if h.sum() > -1e9:
            h = torch.relu(h)
        return self.second(h)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(4, 4)

    def forward(self, x):
        return torch.tanh(self.inner(x))


class Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Linear(4, 1)

    def forward(self, x):
        return self.head(self.block(x))


GUIDE_SHAPES = {"img_input": (None, 32, 32, 3), "ts_input": (None, 20, 10)}


def guide_model():
    return torchfit.Model(
        ImageAndTimeseries(), output_names=["score_output", "class_output"], device="cpu"
    )


def test_dot_names_inputs_modules_ops_and_outputs():
    source = model_to_dot(guide_model(), inputs=GUIDE_SHAPES)
    for text in (
        "img_input (Input)",
        "ts_input (Input)",
        "conv2d (Conv2d)",
        "conv1d (Conv1d)",
        "score_output (Linear)",
        "score_output (Output)",
        "class_output (Output)",
        "cat",
    ):
        assert text in source
    assert '"cat" -> "score_output"' in source
    assert '"img_input" -> "permute"' in source
    assert "shape:" not in source


def test_show_shapes_uses_none_for_the_batch_and_show_dtype():
    source = model_to_dot(guide_model(), show_shapes=True, show_dtype=True, inputs=GUIDE_SHAPES)
    assert "shape: (None, 32, 32, 3)" in source
    assert "output shape: (None, 3, 30, 30)" in source
    assert "shape: (None, 5)" in source
    assert "dtype: float32" in source


def test_sample_arrays_list_inputs_and_show_layer_names_false():
    model = guide_model()
    inputs = [np.random.rand(4, 32, 32, 3), np.random.rand(4, 20, 10)]
    source = model_to_dot(model, show_shapes=True, show_layer_names=False, inputs=inputs)
    assert "(None, 20, 10)" in source
    assert "score_output (Linear)" not in source and "Linear" in source


def test_uses_the_inputs_of_the_first_call():
    model = torchfit.Model(nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)), device="cpu")
    with pytest.raises(ValueError, match="inputs="):
        model_to_dot(model)
    model.predict(np.ones((6, 3), "float32"), verbose=0)
    source = model_to_dot(model, show_shapes=True)
    assert "0 (Linear)" in source and "2 (Linear)" in source and "(None, 5)" in source


def test_dict_outputs_are_named_by_their_keys():
    class DictOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(2, 2)

        def forward(self, x):
            y = self.dense(x)
            return {"mean": y, "spread": y.exp()}

    source = model_to_dot(DictOut(), inputs=(None, 2))
    assert "mean (Output)" in source and "spread (Output)" in source


def test_unnamed_tuple_outputs_are_output_1_and_output_2():
    source = model_to_dot(ImageAndTimeseries(), inputs=GUIDE_SHAPES)
    assert "output_1 (Output)" in source and "output_2 (Output)" in source


def test_control_flow_falls_back_to_recording_a_real_forward():
    source = model_to_dot(ControlFlow(), show_shapes=True, inputs=(None, 4))
    assert "first (Linear)" in source and "second (Linear)" in source and "relu" in source
    assert '"first" -> "relu"' in source and '"relu" -> "second"' in source
    assert "gt" not in source  # the `if` test leads nowhere: not drawn


def test_expand_nested_draws_a_cluster_instead_of_one_box():
    collapsed = model_to_dot(Nested(), inputs=(None, 4))
    assert "block (Block)" in collapsed and "block.inner" not in collapsed
    expanded = model_to_dot(Nested(), expand_nested=True, inputs=(None, 4))
    assert "block.inner (Linear)" in expanded and "tanh" in expanded
    assert 'subgraph "cluster_block"' in expanded


def test_tracing_changes_no_state():
    class Penalized(torchfit.Layer):
        def forward(self, x):
            self.add_loss(x.abs().sum())
            return x

    net = nn.Sequential(nn.Linear(2, 2), Penalized(), nn.Dropout(0.5))
    net.train()
    net(torch.ones(1, 2))
    before = [float(loss.detach()) for loss in net[1].losses]
    model_to_dot(net, expand_nested=True, inputs=(None, 2))
    assert all(module.training for module in net.modules())
    assert [float(loss.detach()) for loss in net[1].losses] == before


def test_show_trainable_and_activations():
    class WithActivation(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.TransformerEncoderLayer(4, 1, dim_feedforward=8, batch_first=True)
            self.frozen = nn.Linear(4, 1)
            self.frozen.requires_grad_(False)

        def forward(self, x):
            return self.frozen(self.layer(x))

    source = model_to_dot(
        WithActivation(), show_trainable=True, show_layer_activations=True, inputs=(None, 3, 4)
    )
    assert "trainable: no" in source and "trainable: yes" in source
    assert "activation: relu" in source


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="rankdir"):
        model_to_dot(nn.Linear(2, 2), rankdir="UP", inputs=(None, 2))
    with pytest.raises(ValueError, match="only the batch"):
        model_to_dot(nn.Linear(2, 2), inputs=(None, None))
    with pytest.raises(ValueError, match="to_file"):
        plot_model(nn.Linear(2, 2), str(tmp_path / "model.bmpx"), inputs=(None, 2))
    with pytest.raises(TypeError, match="model"):
        model_to_dot("not a model", inputs=(None, 2))


def test_dot_file_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    path = tmp_path / "model.dot"
    assert (
        plot_model(guide_model(), str(path), show_shapes=True, rankdir="LR", inputs=GUIDE_SHAPES)
        is None
    )
    text = path.read_text()
    assert text.startswith("digraph") and "rankdir=LR" in text
    assert "img_input" in text and "ts_input" in text and "score_output (Output)" in text


def test_missing_graphviz_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ImportError, match="apt-get install graphviz"):
        plot_model(guide_model(), str(tmp_path / "model.png"), inputs=GUIDE_SHAPES)


@needs_dot
def test_png_of_the_guide_model(tmp_path):
    path = tmp_path / "multi_input_and_output_model.png"
    plot_model(guide_model(), str(path), show_shapes=True, inputs=GUIDE_SHAPES)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


@needs_dot
@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_svg_and_pdf_by_suffix(tmp_path, suffix, magic):
    path = tmp_path / f"model{suffix}"
    plot_model(guide_model(), str(path), inputs=GUIDE_SHAPES)
    data = path.read_bytes()
    assert data.startswith(magic)
    if suffix == ".svg":
        text = data.decode()
        for name in ("img_input", "ts_input", "score_output (Output)", "class_output (Output)"):
            assert name in text


@needs_dot
def test_no_suffix_writes_png(tmp_path):
    path = tmp_path / "model"
    plot_model(nn.Sequential(nn.Linear(2, 2)), str(path), inputs=(None, 2))
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert not os.path.exists(str(path) + ".png")
