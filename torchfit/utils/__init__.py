"""`torchfit.utils`: Sequence/PyDataset, the progress bar, `set_trainable` and small helpers."""

from torchfit.utils.data_utils import get_file
from torchfit.utils.numerical_utils import normalize, to_categorical
from torchfit.utils.plot_model import model_to_dot, plot_model
from torchfit.utils.progbar import Progbar
from torchfit.utils.rng_utils import set_random_seed
from torchfit.utils.sequence import PyDataset, Sequence
from torchfit.utils.summary import print_summary
from torchfit.utils.trainable import set_trainable

__all__ = [
    "Progbar",
    "PyDataset",
    "Sequence",
    "get_file",
    "model_to_dot",
    "normalize",
    "plot_model",
    "print_summary",
    "set_random_seed",
    "set_trainable",
    "to_categorical",
]
