"""`torchfit.models`: the Model class and whole-model loading."""

from torchfit.models.model import Model
from torchfit.models.serialization import load_model

__all__ = ["Model", "load_model"]
