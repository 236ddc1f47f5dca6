import pytest
import torch
from torch import nn

from torchfit.utils.summary import print_summary, readable_memory_size, record_output_shapes

# Keras 3 prints this table for the same layers (Dense/BatchNormalization in
# place of Linear/BatchNorm1d) with `line_length=60`.
EXPECTED_MLP = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━┓
┃ Layer (type)             ┃ Output Shape      ┃   Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━┩
│ 0 (Linear)               │ (None, 64)        │    50,240 │
├──────────────────────────┼───────────────────┼───────────┤
│ 1 (ReLU)                 │ (None, 64)        │         0 │
├──────────────────────────┼───────────────────┼───────────┤
│ 2 (BatchNorm1d)          │ (None, 64)        │       256 │
├──────────────────────────┼───────────────────┼───────────┤
│ 3 (Linear)               │ (None, 10)        │       650 │
└──────────────────────────┴───────────────────┴───────────┘
 Total params: 51,146 (199.79 KB)
 Trainable params: 51,018 (199.29 KB)
 Non-trainable params: 128 (512.00 B)
"""


def _summary(model, **kwargs):
    texts = []
    print_summary(model, print_fn=texts.append, **kwargs)
    assert len(texts) == 1
    return texts[0]


def _mlp():
    return nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.BatchNorm1d(64), nn.Linear(64, 10))


def test_table_matches_keras_layout():
    net = _mlp()
    record_output_shapes(net)
    net(torch.zeros(3, 784))
    assert _summary(net, line_length=60) == EXPECTED_MLP


def test_shapes_are_unknown_before_a_forward_pass():
    text = _summary(_mlp(), line_length=60)
    assert "│ 0 (Linear)               │ ?                 │    50,240 │" in text


def test_mnist_mlp_totals():
    net = nn.Sequential(
        nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)
    )
    text = _summary(net, line_length=60)
    assert " Total params: 55,050 (215.04 KB)\n" in text
    assert " Non-trainable params: 0 (0.00 B)\n" in text


def test_default_width_follows_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    lines = _summary(_mlp()).splitlines()
    assert len(lines[1]) == 76
    monkeypatch.setenv("COLUMNS", "200")
    assert len(_summary(_mlp()).splitlines()[1]) == 88
    assert len(_summary(_mlp(), show_trainable=True).splitlines()[1]) == 100


def test_record_output_shapes_removes_its_hooks_after_one_pass():
    net = _mlp()
    record_output_shapes(net)
    net(torch.zeros(2, 784))
    assert net._layer_output_shapes == {
        "0": (None, 64),
        "1": (None, 64),
        "2": (None, 64),
        "3": (None, 10),
    }
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
    net.eval()(torch.zeros(1, 784))
    assert net._layer_output_shapes["3"] == (None, 10)


def test_record_output_shapes_keeps_recording_until_removed():
    net = nn.Sequential(nn.Linear(4, 3))
    with record_output_shapes(net, once=False):
        net(torch.zeros(2, 4))
        net(torch.zeros(5, 7, 4))
        assert net._layer_output_shapes["0"] == (None, 7, 3)
    assert not net[0]._forward_hooks


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.heads = nn.ModuleDict({"a": nn.Linear(8, 2), "b": nn.Linear(8, 1)})
        self.split = Split()

    def forward(self, x):
        h = self.body(x)
        return self.split(h), {name: head(h) for name, head in self.heads.items()}


class Split(nn.Module):
    def forward(self, x):
        return x[:, :3], x[:, 3:]


def test_structured_outputs_and_nested_rows():
    net = TwoHeads()
    record_output_shapes(net)
    net(torch.zeros(2, 4))
    text = _summary(net, line_length=80, expand_nested=True)
    assert "│ split (Split) " in text and "((None, 3), (None, 5))" in text
    assert "│ └ a (Linear) " in text and "│ (None, 2) " in text
    assert 'Model: "two_heads"' in text


def test_show_trainable_flags():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2), nn.Linear(2, 2))
    net[2].requires_grad_(False)
    net[3].bias.requires_grad_(False)
    rows = [
        line
        for line in _summary(net, line_length=80, show_trainable=True).splitlines()
        if line.startswith("│")
    ]
    flags = [row.rsplit("│", 2)[1].strip() for row in rows]
    assert flags == ["Y", "-", "N", "mixed"]


def test_frozen_parameters_are_non_trainable():
    net = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 1))
    net[0].requires_grad_(False)
    text = _summary(net, line_length=60)
    assert " Trainable params: 11 (44.00 B)\n" in text
    assert " Non-trainable params: 110 (440.00 B)\n" in text


def test_lazy_modules_are_unbuilt():
    text = _summary(nn.Sequential(nn.LazyLinear(3)), line_length=80)
    assert "0 (unbuilt)" in text and " Total params: 0 (0.00 B)" in text


def test_wrapper_module_attribute_is_summarized():
    class Wrapper(nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module
            self.name = "my_model"

        def forward(self, x):
            return self.module(x)

    model = Wrapper(nn.Sequential(nn.Linear(4, 2), nn.Tanh()))
    record_output_shapes(model)
    model(torch.zeros(3, 4))
    text = _summary(model, line_length=60)
    assert text.startswith('Model: "my_model"\n')
    assert "│ 0 (Linear) " in text and "│ (None, 2) " in text and "1 (Tanh)" in text


class _StandInOptimizer:
    """Has the `state` of a torch optimizer; building a real one costs seconds of imports."""

    def __init__(self):
        self.state = {}


def test_optimizer_params_line():
    class WithOptimizer(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(4, 3)
            self.optimizer = _StandInOptimizer()

    model = WithOptimizer()
    assert "Optimizer params" not in _summary(model, line_length=60)
    # What torch's Adam keeps per parameter after its first step.
    for param in model.parameters():
        model.optimizer.state[param] = {
            "step": torch.tensor(1.0),
            "exp_avg": torch.zeros_like(param),
            "exp_avg_sq": torch.zeros_like(param),
        }
    text = _summary(model, line_length=60)
    assert " Optimizer params: 32 (128.00 B)\n" in text
    assert " Total params: 47 (188.00 B)\n" in text


def test_layer_range_selects_rows():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2), nn.ReLU())
    text = _summary(net, line_length=60, layer_range=["1", "2"])
    assert "1 (ReLU)" in text and "2 (Linear)" in text
    assert "0 (Linear)" not in text and "3 (ReLU)" not in text


@pytest.mark.parametrize(
    "layer_range, match", [(["0"], "two"), (["0", 1], "strings"), (["x", "0"], "matches no")]
)
def test_layer_range_errors(layer_range, match):
    with pytest.raises(ValueError, match=match):
        _summary(nn.Sequential(nn.Linear(2, 2)), layer_range=layer_range)


def test_too_narrow_raises():
    with pytest.raises(ValueError, match="line_length"):
        _summary(_mlp(), line_length=8)


def test_positions_relative_and_absolute_agree():
    assert _summary(_mlp(), line_length=60, positions=[0.5, 0.8, 1.0]) == _summary(
        _mlp(), line_length=60, positions=[30, 48, 60]
    )
    with pytest.raises(ValueError, match="positions"):
        _summary(_mlp(), positions=[0.5, 1.0])


def test_long_names_wrap_and_truncate():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.a_really_long_layer_name_that_exceeds_the_width = nn.Linear(2, 2)

    lines = _summary(Block(), line_length=45).splitlines()
    # The header wraps too, bottom-aligned as in Keras.
    assert lines[2:4] == [
        "┃                   ┃              ┃  Param ┃",
        "┃ Layer (type)      ┃ Output Shape ┃      # ┃",
    ]
    assert lines[5] == "│ a_really_long_la… │ ?            │      6 │"
    assert lines[6] == "│ (Linear)          │              │        │"


def test_prints_plain_text_to_stdout(capsys):
    print_summary(_mlp(), line_length=60)
    out = capsys.readouterr().out
    assert out.startswith('Model: "sequential"\n') and "\033[" not in out


@pytest.mark.parametrize(
    "num_bytes, text",
    [
        (0, "0.00 B"),
        (512, "512.00 B"),
        (1024, "1.00 KB"),
        (203560, "198.79 KB"),
        (3 * 1024**3, "3.00 GB"),
    ],
)
def test_readable_memory_size(num_bytes, text):
    assert readable_memory_size(num_bytes) == text
