"""Downloads a file once and caches it, the way `keras.utils.get_file` does.

Owns the cache location (`$KERAS_HOME`, else `~/.keras`, else `/tmp/.keras`),
downloading through a temporary file that is renamed into place, hash checks,
and safe extraction of tar and zip archives. What the file contains belongs to
the caller (e.g. `torchfit.datasets.mnist`).
"""

import difflib
import hashlib
import os
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile

from torchfit.utils.file_utils import atomic_write
from torchfit.utils.progbar import Progbar, print_msg

HASH_ALGORITHMS = ("auto", "sha256", "md5")
ARCHIVE_FORMATS = ("tar", "zip")
_CHUNK_SIZE = 65536


def keras_home() -> str:
    """Returns the cache root: `$KERAS_HOME` if set, else `~/.keras`.

    Like Keras, falls back to `/tmp/.keras` when the home directory cannot be
    written. Read at call time, so setting `KERAS_HOME` later takes effect.
    """
    if "KERAS_HOME" in os.environ:
        return os.environ["KERAS_HOME"]
    home = os.path.expanduser("~")
    if not os.access(home, os.W_OK):
        home = _temp_root()
    return os.path.join(home, ".keras")


def _temp_root() -> str:
    return "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()


def _writable_dir(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)


def _check_choice(argument: str, value, choices) -> None:
    if value in choices:
        return
    close = difflib.get_close_matches(str(value), choices, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"Unknown `{argument}`: {value!r}. Expected one of {', '.join(map(repr, choices))}.{hint}"
    )


def _resolve_hasher(algorithm: str, file_hash: str | None = None):
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "auto" and file_hash is not None and len(file_hash) == 64:
        return hashlib.sha256()
    # A 32-character hash under "auto" is taken to be md5, as in Keras.
    return hashlib.md5()


def hash_file(fpath, algorithm: str = "sha256", chunk_size: int = _CHUNK_SIZE) -> str:
    """Computes the sha256 (or md5) hex digest of a file.

    Args:
        fpath: Path to the file.
        algorithm: `"sha256"`, `"md5"`, or `"auto"` (sha256). Defaults to
            `"sha256"`.
        chunk_size: Bytes read at a time. Defaults to 65536.

    Returns:
        The hex digest as a string.
    """
    _check_choice("algorithm", algorithm, HASH_ALGORITHMS)
    hasher = _resolve_hasher(algorithm, None if algorithm == "md5" else "0" * 64)
    with open(fpath, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def validate_file(fpath, file_hash: str, algorithm: str = "auto") -> bool:
    """Returns whether the file's sha256 or md5 digest equals `file_hash`.

    With `algorithm="auto"`, a 64-character hash is read as sha256 and any
    other as md5.
    """
    _check_choice("hash_algorithm", algorithm, HASH_ALGORITHMS)
    hasher = _resolve_hasher(algorithm, file_hash)
    with open(fpath, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK_SIZE), b""):
            hasher.update(chunk)
    return hasher.hexdigest() == str(file_hash).lower()


def get_file(
    fname=None,
    origin=None,
    untar=False,
    md5_hash=None,
    file_hash=None,
    cache_subdir="datasets",
    hash_algorithm="auto",
    extract=False,
    archive_format="auto",
    cache_dir=None,
    force_download=False,
) -> str:
    """Downloads a file from a URL unless it is already in the cache.

    The file lands in `cache_dir/cache_subdir/fname`, by default
    `~/.keras/datasets/fname`. It is written to a temporary file first and
    renamed into place, so an interrupted download never leaves a partial
    file under the final name. When `file_hash` is given, a cached file with
    the wrong hash is downloaded again, and a fresh download with the wrong
    hash is deleted before the error is raised. `file://` URLs work too.

    Args:
        fname: Local file name. If `None`, the last component of `origin`'s
            path is used. Must not contain a directory; use `cache_dir`.
        origin: URL of the file.
        untar: Deprecated, use `extract=True`. Whether the file is a tar
            archive to extract.
        md5_hash: Deprecated, use `file_hash`. md5 hash of the file.
        file_hash: Expected sha256 or md5 hex digest of the file.
        cache_subdir: Subdirectory of the cache root to save into; an
            absolute path is used as is. Defaults to `"datasets"`.
        hash_algorithm: `"md5"`, `"sha256"` or `"auto"` (chosen from the
            hash's length). Defaults to `"auto"`.
        extract: Whether to extract the file as an archive. Defaults to
            `False`.
        archive_format: `"auto"` (tar then zip), `"tar"`, `"zip"`, a list of
            these, or `None`. Defaults to `"auto"`.
        cache_dir: Cache root. Defaults to `$KERAS_HOME` if set, else
            `~/.keras`; if it is not writable, `/tmp/.keras` is used.
        force_download: Whether to download even when a cached copy exists.
            Defaults to `False`.

    Returns:
        Path to the downloaded file, or to the extraction directory when
        extracting.

    Raises:
        ValueError: If `origin` is missing, `fname` contains a directory, an
            option is unknown, or the downloaded file's hash does not match.
        OSError: If the download fails.

    Example:

    >>> import pathlib, tempfile
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (tmp / "hello.txt").write_text("hi")
    >>> origin = (tmp / "hello.txt").as_uri()
    >>> path = get_file(origin=origin, cache_dir=str(tmp / "cache"))  # doctest: +ELLIPSIS
    Downloading data from file://...
    >>> open(path).read()
    'hi'
    """
    if origin is None:
        raise ValueError(
            "`origin` is required: pass the URL of the file to download. Received: origin=None."
        )
    if md5_hash is not None and file_hash is None:
        file_hash = md5_hash
        hash_algorithm = "md5"
    _check_choice("hash_algorithm", hash_algorithm, HASH_ALGORITHMS)
    datadir = _cache_dir(cache_dir, cache_subdir)
    fname_given = bool(fname)
    fname = _file_name(fname, origin)

    if extract or untar:
        download_target, extraction_dir = _archive_paths(datadir, fname, fname_given)
    else:
        download_target, extraction_dir = os.path.join(datadir, fname), None

    if force_download or not os.path.exists(download_target):
        _download(origin, download_target)
        _check_download(download_target, file_hash, hash_algorithm)
    elif file_hash is not None and not validate_file(download_target, file_hash, hash_algorithm):
        print_msg(
            "A local file was found, but it seems to be incomplete or outdated"
            f" because the {hash_algorithm} file hash does not match the original"
            f" value of {file_hash} so we will re-download the data."
        )
        _download(origin, download_target)
        _check_download(download_target, file_hash, hash_algorithm)

    if extraction_dir is None:
        return download_target
    if untar:
        archive_format = "tar"
    if not extract_archive(download_target, extraction_dir, archive_format):
        warnings.warn(f"Could not extract archive {download_target}.", stacklevel=2)
    return extraction_dir


def _cache_dir(cache_dir, cache_subdir) -> str:
    base = os.path.expanduser(os.fspath(cache_dir)) if cache_dir is not None else keras_home()
    if not _writable_dir(base):
        base = os.path.join(_temp_root(), ".keras")
    datadir = os.path.join(base, os.fspath(cache_subdir))
    os.makedirs(datadir, exist_ok=True)
    return datadir


def _origin_name(origin: str) -> str:
    return os.path.basename(urllib.parse.urlsplit(origin).path)


def _file_name(fname, origin: str) -> str:
    if fname is None or os.fspath(fname) == "":
        name = _origin_name(origin)
        if not name:
            raise ValueError(
                "Cannot take a file name from `origin`: its path has no last"
                f" component. Received: origin={origin!r}. Pass `fname`."
            )
        return name
    name = os.fspath(fname)
    if os.sep in name or (os.altsep and os.altsep in name):
        raise ValueError(
            "`fname` must be a bare file name; to choose the directory, pass"
            f" `cache_dir` (and `cache_subdir`). Received: fname={name!r}."
        )
    return name


def _archive_paths(datadir: str, fname: str, fname_given: bool):
    """Where an archive is saved and where it is extracted, as Keras names them."""
    if fname_given and "." in fname:
        stem = fname[: fname.find(".")]
        return os.path.join(datadir, fname), os.path.join(datadir, f"{stem}_extracted")
    return os.path.join(datadir, f"{fname}_archive"), os.path.join(datadir, fname)


def _check_download(path: str, file_hash, hash_algorithm: str) -> None:
    if file_hash is None or validate_file(path, file_hash, hash_algorithm):
        return
    os.remove(path)
    raise ValueError(
        "Incomplete or corrupted file detected: its"
        f" {hash_algorithm} hash does not match the expected `file_hash`"
        f" {file_hash}. The file was deleted; try again, or check `origin`."
    )


def _download(origin: str, target: str) -> None:
    """Copies `origin` to `target`; an interrupted copy leaves no file behind."""
    print_msg(f"Downloading data from {origin}")
    try:
        with atomic_write(target, "wb") as out, urllib.request.urlopen(origin) as response:
            _copy_with_progress(response, out)
    except urllib.error.HTTPError as err:
        raise OSError(f"URL fetch failure on {origin}: {err.code} -- {err.msg}") from err
    except urllib.error.URLError as err:
        raise OSError(f"URL fetch failure on {origin}: {err.errno} -- {err.reason}") from err


def _copy_with_progress(response, out) -> None:
    length = response.headers.get("Content-Length") if response.headers else None
    total = int(length) if length and length.isdigit() else None
    progbar = _make_progbar(total) if total and total > _CHUNK_SIZE else None
    done = 0
    for chunk in iter(lambda: response.read(_CHUNK_SIZE), b""):
        out.write(chunk)
        done += len(chunk)
        if progbar is not None:
            progbar.update(min(done, total))


def _make_progbar(total: int):
    return Progbar(total)


def extract_archive(file_path, path=".", archive_format="auto") -> bool:
    """Extracts a tar or zip archive, skipping members that would land outside `path`.

    Args:
        file_path: Path to the archive.
        path: Directory to extract into. Defaults to `"."`.
        archive_format: `"auto"` (tar then zip), `"tar"`, `"zip"`, a list of
            these, or `None` (extract nothing). Defaults to `"auto"`.

    Returns:
        `True` if the file matched a format and was extracted, else `False`.
    """
    if archive_format is None:
        return False
    if archive_format == "auto":
        archive_format = list(ARCHIVE_FORMATS)
    if isinstance(archive_format, str):
        archive_format = [archive_format]
    for fmt in archive_format:
        _check_choice("archive_format", fmt, ARCHIVE_FORMATS + ("auto",))
    file_path, path = os.fspath(file_path), os.fspath(path)
    for fmt in archive_format:
        if fmt == "tar" and tarfile.is_tarfile(file_path):
            with tarfile.open(file_path) as archive:
                _extract_tar(archive, path)
            return True
        if fmt == "zip" and zipfile.is_zipfile(file_path):
            with zipfile.ZipFile(file_path) as archive:
                members = [m for m in archive.infolist() if _inside(path, m.filename)]
                archive.extractall(path, members=members)
            return True
    return False


def _inside(base: str, name: str) -> bool:
    base = os.path.realpath(base)
    target = os.path.realpath(os.path.join(base, name))
    if os.path.commonpath([base, target]) == base:
        return True
    warnings.warn(f"Skipping archive member outside the target directory: {name!r}.", stacklevel=3)
    return False


def _extract_tar(archive: tarfile.TarFile, path: str) -> None:
    members = []
    for member in archive.getmembers():
        if not _inside(path, member.name):
            continue
        if member.issym() or member.islnk():
            link_base = path if member.islnk() else os.path.join(path, os.path.dirname(member.name))
            if not _inside(path, os.path.relpath(os.path.join(link_base, member.linkname), path)):
                continue
        members.append(member)
    if hasattr(tarfile, "data_filter"):
        archive.extractall(path, members=members, filter="data")
    else:
        archive.extractall(path, members=members)
