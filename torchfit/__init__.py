"""torchfit: Keras's training API (compile, fit, evaluate, predict, callbacks,
stateful metrics) for any `torch.nn.Module`, with Keras's names, defaults and
numbers.
"""

from torchfit import callbacks, datasets, losses, metrics, mixed_precision, optimizers, utils
from torchfit.layers import Layer, add_loss, add_metric
from torchfit.models import Model, load_model

__version__ = "0.1.0"

__all__ = [
    "Layer",
    "Model",
    "add_loss",
    "add_metric",
    "callbacks",
    "datasets",
    "load_model",
    "losses",
    "metrics",
    "mixed_precision",
    "optimizers",
    "utils",
]
