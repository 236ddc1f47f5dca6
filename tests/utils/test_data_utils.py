import hashlib
import io
import os
import tarfile
import zipfile

import pytest

from torchfit.utils import data_utils
from torchfit.utils.data_utils import get_file, hash_file, validate_file


def _serve(tmp_path, name="payload.bin", content=b"torchfit payload"):
    server = tmp_path / "server"
    server.mkdir(exist_ok=True)
    path = server / name
    path.write_bytes(content)
    return path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_downloads_file_uri_into_cache_dir(tmp_path):
    source = _serve(tmp_path)
    path = get_file(origin=source.as_uri(), cache_dir=tmp_path / "cache")
    assert path == os.path.join(tmp_path / "cache", "datasets", "payload.bin")
    assert open(path, "rb").read() == b"torchfit payload"


def test_fname_and_absolute_cache_subdir(tmp_path):
    source = _serve(tmp_path)
    target_dir = tmp_path / "elsewhere"
    path = get_file(
        "renamed.bin", source.as_uri(), cache_subdir=str(target_dir), cache_dir=tmp_path / "c"
    )
    assert path == os.path.join(target_dir, "renamed.bin")
    assert os.path.isfile(path)


def test_keras_home_env_is_the_default_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    source = _serve(tmp_path)
    path = get_file(origin=source.as_uri(), cache_subdir="models")
    assert path == os.path.join(tmp_path / "kh", "models", "payload.bin")


def test_keras_home_without_env_is_home_dot_keras(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data_utils.keras_home() == os.path.join(str(tmp_path), ".keras")


def test_unwritable_cache_dir_falls_back_to_tmp_keras(tmp_path, monkeypatch):
    blocked = str(tmp_path / "blocked")
    monkeypatch.setattr(data_utils, "_writable_dir", lambda path: path != blocked)
    monkeypatch.setattr(data_utils, "_temp_root", lambda: str(tmp_path / "tmp"))
    path = get_file(origin=_serve(tmp_path).as_uri(), cache_dir=blocked)
    assert path == os.path.join(tmp_path / "tmp", ".keras", "datasets", "payload.bin")


def test_cached_file_is_reused_until_forced(tmp_path):
    source = _serve(tmp_path, content=b"v1")
    path = get_file(origin=source.as_uri(), cache_dir=tmp_path / "c")
    source.write_bytes(b"v2")
    assert open(get_file(origin=source.as_uri(), cache_dir=tmp_path / "c"), "rb").read() == b"v1"
    get_file(origin=source.as_uri(), cache_dir=tmp_path / "c", force_download=True)
    assert open(path, "rb").read() == b"v2"


def test_stale_cached_file_is_downloaded_again(tmp_path, capsys):
    source = _serve(tmp_path, content=b"good")
    cache = tmp_path / "c" / "datasets"
    cache.mkdir(parents=True)
    (cache / "payload.bin").write_bytes(b"truncated")
    path = get_file(origin=source.as_uri(), cache_dir=tmp_path / "c", file_hash=_sha256(b"good"))
    assert open(path, "rb").read() == b"good"
    assert "re-download" in capsys.readouterr().out


def test_md5_hash_is_accepted(tmp_path):
    source = _serve(tmp_path, content=b"abc")
    md5 = hashlib.md5(b"abc").hexdigest()
    assert os.path.isfile(get_file(origin=source.as_uri(), cache_dir=tmp_path / "c", md5_hash=md5))
    assert os.path.isfile(
        get_file(
            "b.bin", source.as_uri(), cache_dir=tmp_path / "c", file_hash=md5, hash_algorithm="md5"
        )
    )


def test_hash_mismatch_raises_and_removes_the_file(tmp_path):
    source = _serve(tmp_path)
    with pytest.raises(ValueError, match="hash"):
        get_file(origin=source.as_uri(), cache_dir=tmp_path / "c", file_hash="0" * 64)
    assert os.listdir(tmp_path / "c" / "datasets") == []


def test_failed_download_leaves_nothing_behind(tmp_path):
    missing = (tmp_path / "nowhere.bin").as_uri()
    with pytest.raises(OSError, match="URL fetch failure"):
        get_file(origin=missing, cache_dir=tmp_path / "c")
    assert os.listdir(tmp_path / "c" / "datasets") == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"origin": None}, "origin"),
        ({"fname": os.path.join("sub", "x.bin"), "origin": "file:///x.bin"}, "fname"),
        ({"origin": "file:///dir/"}, "fname"),
        ({"origin": "file:///x.bin", "hash_algorithm": "sha265"}, "sha256"),
    ],
)
def test_argument_errors(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_file(cache_dir=tmp_path / "c", **kwargs)


def _make_tar(path, members):
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_extract_tar_with_fname(tmp_path):
    source = tmp_path / "server.tar.gz"
    _make_tar(source, {"data/a.txt": b"A"})
    out = get_file("data.tar.gz", source.as_uri(), cache_dir=tmp_path / "c", extract=True)
    assert out == os.path.join(tmp_path / "c", "datasets", "data_extracted")
    assert open(os.path.join(out, "data", "a.txt"), "rb").read() == b"A"
    assert os.path.isfile(os.path.join(tmp_path / "c", "datasets", "data.tar.gz"))


def test_extract_zip_without_fname(tmp_path):
    source = tmp_path / "bundle.zip"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("b.txt", "B")
    out = get_file(origin=source.as_uri(), cache_dir=tmp_path / "c", extract=True)
    assert out == os.path.join(tmp_path / "c", "datasets", "bundle.zip")
    assert open(os.path.join(out, "b.txt")).read() == "B"
    assert os.path.isfile(os.path.join(tmp_path / "c", "datasets", "bundle.zip_archive"))


def test_untar_skips_members_escaping_the_target(tmp_path):
    source = tmp_path / "evil.tar.gz"
    _make_tar(source, {"ok.txt": b"ok", "../escaped.txt": b"bad"})
    with pytest.warns(UserWarning, match="outside"):
        out = get_file("evil", source.as_uri(), cache_dir=tmp_path / "c", untar=True)
    assert os.path.isfile(os.path.join(out, "ok.txt"))
    assert not os.path.exists(os.path.join(tmp_path / "c", "datasets", "escaped.txt"))


def test_not_an_archive_warns(tmp_path):
    source = _serve(tmp_path)
    with pytest.warns(UserWarning, match="Could not extract"):
        get_file(origin=source.as_uri(), cache_dir=tmp_path / "c", extract=True)


def test_hash_helpers(tmp_path):
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hash_file(path) == sha
    assert hash_file(path, algorithm="md5") == "900150983cd24fb0d6963f7d28e17f72"
    assert validate_file(path, sha)
    assert validate_file(path, "900150983cd24fb0d6963f7d28e17f72")
    assert not validate_file(path, "1" * 64)
