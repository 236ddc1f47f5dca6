"""Fixtures shared by the saving and serialization tests."""

import pickle

import pytest
import torch


def _write_marker(path):
    with open(path, "w") as file:
        file.write("code ran")


class _CodeRunning:
    """Unpickling this would run `_write_marker`: loading must refuse it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (_write_marker, (self.marker,))


@pytest.fixture
def code_running_file(tmp_path):
    """Writes a file whose unpickling would create a marker file.

    Returns a function `write(wrap, writer, name)`: `wrap` builds the payload
    around the code-running object, `writer` is "torch" or "pickle"; it
    returns `(path, marker)`.
    """

    def write(wrap, writer, name="evil.pt"):
        marker, path = tmp_path / "marker", tmp_path / name
        payload = wrap(_CodeRunning(str(marker)))
        if writer == "torch":
            torch.save(payload, path)
        else:
            with open(path, "wb") as file:
                pickle.dump(payload, file, protocol=2)
        return path, marker

    return write
