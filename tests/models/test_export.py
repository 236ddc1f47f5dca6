"""`model.export`: a `torch.export` program torch loads alone, and an ONNX file
ONNX Runtime runs, both giving `predict`'s outputs, for any batch size.

The models are the guide's MLP and its image + time-series model (two inputs,
two outputs); a BatchNorm + Dropout model checks that the export is in eval mode.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from guide_support import ImageAndTimeseries, get_uncompiled_model
from torch import nn

import torchfit

# Runs an exported program with torch alone: torchfit must not even be importable.
_RUN_PROGRAM = """
import json, sys
sys.modules["torchfit"] = None
import numpy as np, torch
program = torch.export.load(sys.argv[1])
inputs = [torch.from_numpy(np.load(path)) for path in json.loads(sys.argv[2])]
outputs = program.module()(*inputs)
outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
for index, output in enumerate(outputs):
    np.save(f"{sys.argv[3]}_{index}.npy", output.detach().numpy())
"""


def _mlp():
    torch.manual_seed(0)
    model = get_uncompiled_model(input_dim=16)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.fit(rng.random((64, 16), "float32"), rng.integers(0, 10, 64), verbose=0)
    return model, [rng.random((5, 16), "float32")]


def _multi_io():
    torch.manual_seed(0)
    model = torchfit.Model(
        ImageAndTimeseries(), output_names=["score_output", "class_output"], device="cpu"
    )
    model.compile(optimizer="rmsprop", loss=["mse", "categorical_crossentropy"])
    rng = np.random.default_rng(0)
    img, ts = rng.random((32, 32, 32, 3), "float32"), rng.random((32, 20, 10), "float32")
    model.fit(
        [img, ts], [rng.random((32, 1), "float32"), rng.random((32, 5), "float32")], verbose=0
    )
    return model, [rng.random((3, 32, 32, 3), "float32"), rng.random((3, 20, 10), "float32")]


def _batchnorm():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2))
    model = torchfit.Model(net, device="cpu")
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    model.fit(rng.normal(3, 2, (64, 6)).astype("float32"), np.zeros((64, 2), "float32"), verbose=0)
    return model, [rng.normal(3, 2, (7, 6)).astype("float32")]


MODELS = {"mlp": _mlp, "multi_io": _multi_io, "batchnorm": _batchnorm}


def _predicted(model, inputs):
    outputs = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
    return outputs if isinstance(outputs, list) else [outputs]


def _run_program_without_torchfit(path, inputs, tmp_path):
    paths = []
    for index, value in enumerate(inputs):
        paths.append(str(tmp_path / f"input_{index}.npy"))
        np.save(paths[-1], value)
    prefix = str(tmp_path / "output")
    subprocess.run(
        [sys.executable, "-c", _RUN_PROGRAM, str(path), json.dumps(paths), prefix],
        check=True,
        cwd=tmp_path,
    )
    outputs, index = [], 0
    while (tmp_path / f"output_{index}.npy").exists():
        outputs.append(np.load(tmp_path / f"output_{index}.npy"))
        index += 1
    return outputs


@pytest.mark.parametrize("name", list(MODELS))
def test_the_torch_program_runs_with_torch_alone_and_matches_predict(name, tmp_path):
    model, inputs = MODELS[name]()
    model.train()  # export must trace in eval mode all the same, and put train mode back
    path = model.export(tmp_path / "model.pt2", verbose=False)  # format="torch", the default
    assert path == str(tmp_path / "model.pt2")
    outputs = _run_program_without_torchfit(path, inputs, tmp_path)
    expected = _predicted(model, inputs)
    assert len(outputs) == len(expected)
    for output, value in zip(outputs, expected):
        np.testing.assert_allclose(output, value, rtol=1e-5, atol=1e-5)
    assert model.module.training  # the mode export found is put back


@pytest.mark.parametrize("name", ["mlp", "multi_io"])
def test_the_onnx_file_runs_in_onnxruntime_and_matches_predict(name, tmp_path):
    pytest.importorskip("onnxscript")
    onnxruntime = pytest.importorskip("onnxruntime")
    model, inputs = MODELS[name]()
    model.export(tmp_path / "model.onnx", format="onnx", verbose=False)
    session = onnxruntime.InferenceSession(
        str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    names = [i.name for i in session.get_inputs()]
    expected_names = {"mlp": ["input"], "multi_io": ["img_input", "ts_input"]}[name]
    assert names == expected_names and session.get_inputs()[0].shape[0] == "batch"
    if name == "multi_io":
        assert [o.name for o in session.get_outputs()] == ["score_output", "class_output"]
    for batch in (1, len(inputs[0])):  # the batch dimension is dynamic
        feed = {n: value[:batch] for n, value in zip(names, inputs)}
        outputs = session.run(None, feed)
        expected = _predicted(model, [value[:batch] for value in inputs])
        for output, value in zip(outputs, expected):
            np.testing.assert_allclose(output, value, rtol=1e-5, atol=1e-5)


def test_an_uncalled_model_needs_an_input_signature(tmp_path):
    torch.manual_seed(0)
    model = torchfit.Model(nn.Linear(3, 2), device="cpu")
    with pytest.raises(ValueError, match="never been called.*input_signature="):
        model.export(tmp_path / "m.pt2")
    model.export(tmp_path / "m.pt2", input_signature=np.zeros((1, 3)), verbose=False)
    program = torch.export.load(str(tmp_path / "m.pt2"))
    x = torch.rand(4, 3)
    torch.testing.assert_close(program.module()(x), model(x, training=False))


def test_formats_are_keras_names_and_others_are_refused(tmp_path):
    model, _ = _mlp()
    with pytest.raises(ValueError, match="format='tf_saved_model'.*TensorFlow.*'torch'.*'onnx'"):
        model.export(tmp_path / "m", format="tf_saved_model")
    assert not (tmp_path / "m").exists()
