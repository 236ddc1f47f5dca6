"""`torchfit.models`: the Model class and whole-model loading."""

from torchfit.models.model import Model

__all__ = ["Model", "load_model"]


def load_model(filepath, module=None, compile=True, safe_mode=True):
    """Loads a model written by `model.save(filepath)`; see `serialization.load_model`."""
    from torchfit.models.serialization import load_model as _load_model

    return _load_model(filepath, module=module, compile=compile, safe_mode=safe_mode)
