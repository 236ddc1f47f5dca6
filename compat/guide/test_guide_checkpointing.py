"""The Keras guide's "Checkpointing models" section, as torchfit twins.

Source: the "Training & evaluation with the built-in methods" guide. The
guide's MNIST MLP becomes the same MLP on the bundled 8x8 digits (no
download); `keras.` becomes `torchfit.`; the code is otherwise as written.
"""

import os

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit import keras_compat_placeholder as _  # noqa: F401  (replaced below)
