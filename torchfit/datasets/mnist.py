"""MNIST handwritten digits, downloaded once and cached like `keras.datasets.mnist`.

Owns where the file comes from and how its arrays are read. Downloading,
caching and hash checks belong to `torchfit.utils.data_utils.get_file`, so the
file is shared with Keras: both use `~/.keras/datasets/mnist.npz` (or
`$KERAS_HOME/datasets/mnist.npz`).

MNIST is by Yann LeCun and Corinna Cortes, derived from NIST data, and made
available under CC BY-SA 3.0. The file is the `.npz` copy that Keras hosts.
"""

import numpy as np

from torchfit.utils.data_utils import get_file

# Module-level so tests (and mirrors) can point them elsewhere.
ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
FILE_HASH = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


def load_data(path: str = "mnist.npz"):
    """Loads the MNIST dataset, downloading it on first use.

    There are 60,000 training and 10,000 test images of 28x28 grayscale
    digits. The download (11 MB) is checked against its sha256 hash.

    Args:
        path: File name to cache the dataset under, inside
            `~/.keras/datasets` (or `$KERAS_HOME/datasets`). Defaults to
            `"mnist.npz"`.

    Returns:
        Tuple of NumPy arrays: `(x_train, y_train), (x_test, y_test)`.
        `x_train` is `uint8` of shape `(60000, 28, 28)` with pixel values in
        0..255, `y_train` is `uint8` of shape `(60000,)` with labels in 0..9;
        `x_test` and `y_test` hold the 10,000 test samples likewise.

    Raises:
        ValueError: If the downloaded file's hash is wrong.
        OSError: If the file cannot be downloaded.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = torchfit.datasets.mnist.load_data()
    x_train = x_train.reshape(60000, 784).astype("float32") / 255
    ```
    """
    local_path = get_file(fname=path, origin=ORIGIN, file_hash=FILE_HASH)
    with np.load(local_path, allow_pickle=False) as f:
        x_train, y_train = f["x_train"], f["y_train"]
        x_test, y_test = f["x_test"], f["y_test"]
    return (x_train, y_train), (x_test, y_test)
