"""Writes files so that a crash never leaves a torn one.

Owns `atomic_write`: the temporary file, fsync and rename. What goes into
the file (weights, CSV rows, configs) belongs to the caller.
"""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Union

__all__ = ["atomic_write"]

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb") -> Iterator[IO]:
    """Opens a temporary file that replaces `path` only if the block succeeds.

    The temporary file lives in the same folder as `path` (so the final
    `os.replace` is a rename on one file system, atomic on POSIX and
    Windows), is flushed and fsynced before the rename, and is deleted if
    the block raises, leaving any previous `path` untouched.

    Args:
        path: Destination file. Its folder must exist.
        mode: `open` mode for writing: `"wb"` or `"w"` (text, UTF-8).
            Defaults to `"wb"`.

    Yields:
        The open temporary file.

    Raises:
        ValueError: If `mode` is not a write mode.

    Example:
    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> with atomic_write(target, "w") as f:
    ...     _ = f.write("hello")
    >>> open(target).read()
    'hello'
    """
    if mode not in ("w", "wb", "wt"):
        raise ValueError(
            "`mode` must be a write mode that truncates: 'wb', 'w' or 'wt'."
            f" Received: mode={mode!r}."
        )
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, temp_path = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder
    )
    encoding = None if "b" in mode else "utf-8"
    try:
        with os.fdopen(fd, mode, encoding=encoding) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        # mkstemp creates the file 0600; give it the permissions a plain
        # open() would have, so a checkpoint is as readable as before.
        _apply_default_permissions(temp_path)
        os.replace(temp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp_path)
        raise
    _fsync_folder(folder)


def _apply_default_permissions(path: str) -> None:
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~umask)


def _fsync_folder(folder: str) -> None:
    # Makes the rename itself durable; not possible (nor needed) on Windows.
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
