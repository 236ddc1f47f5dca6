"""Exports a model's forward pass for inference: a `torch.export` program, or ONNX.

Owns `model.export`: the formats, by Keras 3's names (`"torch"`: an
`ExportedProgram` written with `torch.export.save`, read back by
`torch.export.load` with torch alone; `"onnx"`: an ONNX file for ONNX Runtime and
other runtimes), the sample inputs they are traced with (the model's first call,
or `input_signature`), the batch dimension left dynamic, and writing the file
atomically. The trace itself belongs to torch (`torch.export`, `torch.onnx`).
"""

import inspect
import os
from collections.abc import Mapping
from typing import Any, Optional

import torch

from torchfit.data.data_adapter_utils import structure_to_device
from torchfit.tree import flatten, map_structure
from torchfit.utils.file_utils import atomic_write
from torchfit.utils.modes import run_in_mode

__all__ = ["FORMATS", "export_model"]

#: The formats `model.export` writes, by Keras 3's names.
FORMATS = ("torch", "onnx")
_KERAS_ONLY = {
    "tf_saved_model": "a TensorFlow SavedModel needs a TensorFlow or JAX model",
    "openvino": "torchfit does not write OpenVINO files (convert the ONNX file)",
    "litert": "torchfit does not write LiteRT files",
}


def export_model(
    model,
    filepath,
    format: str = "torch",
    verbose: Optional[bool] = None,
    input_signature: Any = None,
    **kwargs,
) -> str:
    """Exports `model`'s forward pass (in eval mode) for inference (`model.export`).

    `format="torch"` writes a `torch.export` `ExportedProgram` (`torch.export.save`):
    `torch.export.load(path).module()(x)` runs it with torch alone. `format="onnx"`
    writes an ONNX file (needs the `onnx` and `onnxscript` packages) that ONNX
    Runtime runs. Both keep the batch dimension dynamic; every other dimension is
    fixed by the sample inputs.

    Args:
        model: A `torchfit.Model`.
        filepath: Where to write, used exactly as given (Keras's `.pt2` for
            `"torch"` is a convention, not a requirement).
        format: `"torch"` or `"onnx"`. Defaults to `"torch"` (Keras's default,
            `"tf_saved_model"`, is TensorFlow's).
        verbose: Print a line once written. Defaults to `None` (yes, as in Keras).
        input_signature: Sample inputs, as `predict` takes `x` (an array, a list or a
            dict of arrays); only their shapes beyond the batch and dtypes matter.
            Defaults to `None`: the inputs of the model's first call.
        **kwargs: For `"torch"`, arguments of `torch.export.export` (`strict`,
            `dynamic_shapes`, ...); for `"onnx"`, `opset_version` and arguments of
            `torch.onnx.export` (`dynamic_shapes`, `optimize`, ...).

    Returns:
        `filepath`.

    Raises:
        ValueError: For an unknown format, or a model never called and no
            `input_signature`.
        ImportError: For `"onnx"` without the `onnx`/`onnxscript` packages.
        RuntimeError: When torch cannot trace the forward pass (the cause attached).
    """
    filepath = os.fspath(filepath)
    _check_format(format)
    module = model.forward_module
    args, call_kwargs = _sample_inputs(model, input_signature)
    export_kwargs = dict(kwargs)
    export_kwargs.setdefault("dynamic_shapes", _batch_dynamic_shapes(module, args, call_kwargs))
    with run_in_mode(model, False):
        if format == "torch":
            _export_program(module, args, call_kwargs, filepath, export_kwargs)
        else:
            _export_onnx(model, module, args, call_kwargs, filepath, export_kwargs)
    if verbose is None or verbose:
        kind = "PyTorch ExportedProgram" if format == "torch" else "ONNX model"
        print(f"Saved {kind} at '{filepath}'.")
    return filepath


def _check_format(format: Any) -> None:
    if format in FORMATS:
        return
    why = _KERAS_ONLY.get(format)
    reason = f" ({why})" if why else ""
    raise ValueError(
        f"Unrecognized format={format!r}{reason}. Supported formats are: 'torch' (a"
        " torch.export program, read back with torch.export.load) and 'onnx'."
    )


def _sample_inputs(model, input_signature: Any) -> tuple[tuple, dict]:
    """`(args, kwargs)` as `forward` receives them, cut (or repeated) to 2 samples:
    torch fixes a dimension of size 1 to a constant, so the batch must not be 1."""
    if input_signature is None:
        if model.example_inputs is None:
            raise ValueError(
                "The model has never been called, so the shapes of its inputs are unknown."
                " Call it once (fit, predict or `model(x)`), or pass `input_signature=`:"
                " sample inputs, as `predict` takes `x`."
            )
        args, kwargs = model.example_inputs
    else:
        x = structure_to_device(input_signature, model.device)
        args, kwargs = model.route_inputs((_weights_dtype(model, x),), {})
    if "training" in kwargs:
        kwargs = {**kwargs, "training": False}
    batch = _batch_size((args, kwargs))
    return map_structure(lambda leaf: _two_samples(leaf, batch), (tuple(args), dict(kwargs)))


def _weights_dtype(model, x: Any) -> Any:
    """Float inputs in the dtype of the weights (a float64 model takes float64)."""
    parameter = next(model.weights_module.parameters(), None)
    if parameter is None or not parameter.is_floating_point():
        return x

    def cast(leaf):
        if isinstance(leaf, torch.Tensor) and leaf.is_floating_point():
            return leaf.to(parameter.dtype)
        return leaf

    return map_structure(cast, x)


def _batch_size(structure: Any) -> Optional[int]:
    for leaf in flatten(structure):
        if isinstance(leaf, torch.Tensor) and leaf.dim():
            return leaf.shape[0]
    return None


def _two_samples(leaf: Any, batch: Optional[int]) -> Any:
    if not _has_batch(leaf, batch):
        return leaf
    leaf = leaf.detach()
    return leaf[:2] if batch >= 2 else torch.cat([leaf, leaf])


def _has_batch(leaf: Any, batch: Optional[int]) -> bool:
    return isinstance(leaf, torch.Tensor) and leaf.dim() > 0 and leaf.shape[0] == batch


def _batch_dynamic_shapes(module, args: tuple, kwargs: dict) -> dict:
    """`dynamic_shapes` for `torch.export`: dimension 0 of every input that has the
    batch is one dynamic `batch` dimension; everything else is static."""
    batch = torch.export.Dim("batch", min=1)
    size = _batch_size((args, kwargs))

    def spec(leaf):
        return {0: batch} if _has_batch(leaf, size) else None

    signature = inspect.signature(module.forward)
    bound = signature.bind(*args, **kwargs)
    return {name: map_structure(spec, value) for name, value in bound.arguments.items()}


def _traced(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - any tracing failure, explained once
        raise RuntimeError(
            f"torch could not trace the model's forward pass ({type(err).__name__}: {err})."
            " Common causes: Python control flow that depends on tensor values, a"
            " dimension fixed in the code (e.g. `x.view(32, -1)`: use -1 or x.shape[0]),"
            " or an unsupported operation. Pass `dynamic_shapes=` or `strict=` through"
            " `export(...)` to adjust the trace."
        ) from err


def _export_program(module, args: tuple, kwargs: dict, filepath: str, options: dict) -> None:
    program = _traced(torch.export.export, module, args, kwargs=kwargs, **options)
    with atomic_write(filepath) as file:
        torch.export.save(program, file)


def _export_onnx(model, module, args, kwargs, filepath: str, options: dict) -> None:
    try:
        import onnxscript  # noqa: F401 - torch.onnx's exporter needs it
    except ImportError as err:
        raise ImportError(
            "format='onnx' needs the `onnx` and `onnxscript` packages:"
            " `pip install onnx onnxscript` (and `onnxruntime` to run the file)."
        ) from err
    with torch.no_grad():
        outputs = module(*args, **kwargs)
    program = _traced(
        torch.onnx.export,
        module,
        args,
        None,
        kwargs=kwargs,
        input_names=_input_names(module, args, kwargs),
        output_names=_output_names(outputs, model.output_names),
        dynamo=True,
        verbose=False,
        **options,
    )
    with atomic_write(filepath) as file:
        file.write(program.model_proto.SerializeToString())


def _flat_names(name: str, value: Any) -> list:
    if isinstance(value, Mapping):
        return [n for key, item in value.items() for n in _flat_names(f"{name}_{key}", item)]
    if isinstance(value, (list, tuple)):
        return [n for i, item in enumerate(value) for n in _flat_names(f"{name}_{i}", item)]
    return [name] if isinstance(value, torch.Tensor) else []


def _input_names(module, args: tuple, kwargs: dict) -> list:
    """The ONNX input names: `forward`'s parameter names (`x`, `img_input`, ...)."""
    bound = inspect.signature(module.forward).bind(*args, **kwargs)
    return [n for name, value in bound.arguments.items() for n in _flat_names(name, value)]


def _output_names(outputs: Any, output_names: Optional[list]) -> list:
    """The ONNX output names: the model's output names (`output_1`, ... by default)."""
    if isinstance(outputs, Mapping):
        return [n for key, item in outputs.items() for n in _flat_names(str(key), item)]
    if isinstance(outputs, (list, tuple)):
        names = output_names or [f"output_{i + 1}" for i in range(len(outputs))]
        return [n for name, item in zip(names, outputs) for n in _flat_names(name, item)]
    return ["output"]
