"""Small datasets returned as Keras-style `(x_train, y_train), (x_test, y_test)` arrays.

`digits` ships inside the package and needs no network; `mnist` is downloaded
once into the Keras cache (`~/.keras/datasets`) and shared with Keras.
"""

from torchfit.datasets import digits, mnist

__all__ = ["digits", "mnist"]
