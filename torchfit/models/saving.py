"""Writes and reads a model's weights as plain torch files.

Owns `save_weights`/`load_weights`: the wrapped module's own `state_dict`
(the compiled module's, for a `torch.compile`d one: names without `_orig_mod.`),
written atomically, read back with `weights_only=True` so that loading never
runs code. The file rules (atomic writes, safe reads, naming every mismatch)
belong to `utils/torch_files.py`; whole-model files (`save`/`load_model`) to
`serialization.py`.
"""

import os

from torchfit.utils.torch_files import cpu_tensors, load_state, read_torch_file, write_torch_file
from torchfit.utils.uncompiled import uncompiled_names

__all__ = ["load_weights", "save_weights"]


def save_weights(model, filepath, overwrite: bool = True, state_dict=None) -> None:
    """Saves the wrapped module's `state_dict` to `filepath` (any suffix).

    The file is written to a temporary file and renamed, so a crash never
    leaves a torn one; plain torch reads it with `torch.load`.

    Args:
        filepath: Where to write, used exactly as given.
        overwrite: Replace an existing file. Defaults to `True`.
        state_dict: The state to write, when the model's distribution gathered it
            (FSDP2 shards). Defaults to `None`: the module's own state_dict.
    """
    if state_dict is None:
        state_dict = model.weights_module.state_dict()
    write_torch_file(cpu_tensors(state_dict), filepath, overwrite)


def load_weights(model, filepath, skip_mismatch: bool = False) -> None:
    """Loads weights written by `save_weights` (or any plain `state_dict` file, one
    taken from a `torch.compile`d module too: its `_orig_mod.` prefixes are dropped).

    Args:
        filepath: The file to read.
        skip_mismatch: Skip weights whose name or shape differ instead of
            raising. Defaults to `False`.

    Raises:
        ValueError: For a corrupt file, a file of another model, or a file
            that would need to run code to load.
    """
    state = read_torch_file(filepath)
    if isinstance(state, dict) and state.get("format") == "torchfit.model":
        state = state["weights"]
    module = model.weights_module
    state = uncompiled_names(state, module)  # saved from a torch.compile'd module
    load_state(module, state, os.fspath(filepath), skip_mismatch=skip_mismatch)
