"""Writes files so that a crash never leaves a torn one.

Owns `atomic_write` (the temporary file, fsync and rename) and the checks
that a path given for a folder or a file can be one (`check_folder`,
`check_file`), run before training so a bad path fails before any step.
What goes into the file (weights, CSV rows, configs) belongs to the caller.
"""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Optional, Union

__all__ = ["atomic_write", "check_file", "check_folder"]

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


def _blocking_file(path: str) -> Optional[str]:
    """The file standing where `path` or a folder above it would be, if any."""
    current = os.path.abspath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent
    return None if os.path.isdir(current) else current


def check_folder(argument: str, path: PathLike) -> None:
    """Raises a `ValueError` naming `argument` unless `path` can be a folder.

    The folder need not exist yet (it is created when first written), but
    neither it nor a folder above it may be an existing file.

    Args:
        argument: The argument's name for the message, e.g. `"log_dir"`.
        path: The folder path given by the user.

    Raises:
        ValueError: If `path`, or a folder above it, is a file.

    Example:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> check_folder("log_dir", os.path.join(folder, "new", "logs"))
    >>> open(os.path.join(folder, "notes"), "w").close()
    >>> check_folder("log_dir", os.path.join(folder, "notes"))
    Traceback (most recent call last):
    ...
    ValueError: `log_dir` must be a folder, but ... is a file. Pass a folder path (it is ...
    """
    path = os.fspath(path)
    blocking = _blocking_file(path)
    if blocking is None:
        return
    if blocking == os.path.abspath(path):
        raise ValueError(
            f"`{argument}` must be a folder, but {path!r} is a file."
            " Pass a folder path (it is created if missing)."
        )
    raise ValueError(
        f"`{argument}` {path!r} cannot be a folder: {blocking!r} above it is a file."
        " Pass a folder path (it is created if missing)."
    )


def check_file(argument: str, path: PathLike) -> None:
    """Raises a `ValueError` naming `argument` unless `path` can be a file.

    Args:
        argument: The argument's name for the message, e.g. `"filename"`.
        path: The file path given by the user.

    Raises:
        ValueError: If `path` is a folder, or a folder above it is a file.

    Example:
    >>> import tempfile
    >>> check_file("filename", tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    ValueError: `filename` must be a file path, but ... is a folder.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"`{argument}` must be a file path, but {path!r} is a folder.")
    folder = os.path.dirname(path)
    blocking = _blocking_file(folder) if folder else None
    if blocking is not None:
        raise ValueError(
            f"`{argument}` {path!r} cannot be written: {blocking!r} above it is a file,"
            " not a folder."
        )
