"""Model files are hashed once, then only when their stat changes: edits are still caught."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from indexers import integrity, load_model
from indexers.integrity import STAMP_FILE, verify_files
from mmsearch.errors import ModelIntegrityError
from mmsearch.files import sha256_file
from tests.helpers import copy_model

CLIP_FILES = ["image.onnx", "text.onnx", "tokenizer.json"]


@pytest.fixture()
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files `indexers.integrity` hashes, in order."""
    names: list[str] = []
    real = integrity.sha256_file

    def spy(path: str | Path, *args: object, **kwargs: object) -> str:
        names.append(Path(path).name)
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(integrity, "sha256_file", spy)
    return names


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MMSEARCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def folder(tiny_clip_dir: Path, tmp_path: Path, cache: Path) -> Path:
    """A copy of the tiny CLIP: same mtimes, new inodes, so its copied stamp no longer vouches for it."""
    return copy_model(tiny_clip_dir, tmp_path / "m")


def _flip_last_byte(path: Path) -> None:
    """An edit in place: same size, same inode, a new mtime."""
    with open(path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)[0]
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last ^ 0xFF]))


def _append_a_byte(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(b"\0")


def _flip_and_set_the_mtime_back(path: Path) -> None:
    """As `touch -r` or an rsync of an older copy would leave it: only ctime tells."""
    before = path.stat()
    _flip_last_byte(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_mtime_ns, path.stat().st_size) == (before.st_mtime_ns, before.st_size)


def _replace_keeping_size_and_mtime(path: Path) -> None:
    """Another file renamed over it: only the inode (and ctime) tell."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    other = path.with_name("other")
    other.write_bytes(bytes(data))
    os.utime(other, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(other, path)


def test_the_export_records_its_hashes_so_the_first_load_hashes_nothing(
    tmp_path: Path, hashed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import TINY_CLIP_CFG

    from indexers.export import export_model

    # Files written within the filesystem's time grain of the export's end are left to the first
    # load (see test_a_file_younger_than_the_time_grain_is_not_recorded); here none are.
    monkeypatch.setattr(integrity, "FINE_GRAIN_NS", 0)
    monkeypatch.setattr(integrity, "COARSE_GRAIN_NS", 0)
    out = tmp_path / "clip"
    manifest = export_model("clip", out, architecture="tiny-test-clip", model_cfg=TINY_CLIP_CFG)
    stamp = json.loads((out / STAMP_FILE).read_text())
    assert {name: e["sha256"] for name, e in stamp["files"].items()} == manifest.files()
    assert (out / STAMP_FILE).stat().st_mode & 0o777 == 0o644  # readable by whoever reads the model
    load_model(out, device="cpu")
    assert hashed == []


def test_later_loads_skip_hashing_until_a_file_changes(folder: Path, hashed: list[str]) -> None:
    load_model(folder, device="cpu")
    assert sorted(hashed) == CLIP_FILES
    hashed.clear()
    load_model(folder, device="cpu")
    load_model(folder, device="cpu")
    assert hashed == []
    (folder / "tokenizer.json").touch()  # a new mtime, the same bytes: hashed again, still fine
    load_model(folder, device="cpu")
    assert hashed == ["tokenizer.json"]


@pytest.mark.parametrize(
    "edit", [_flip_last_byte, _append_a_byte, _flip_and_set_the_mtime_back, _replace_keeping_size_and_mtime]
)
def test_a_file_changed_after_a_verified_load_is_caught(folder: Path, edit: Callable[[Path], None]) -> None:
    load_model(folder, device="cpu")  # verified and recorded: the next load trusts the stamp...
    edit(folder / "text.onnx")
    with pytest.raises(ModelIntegrityError, match=r"text\.onnx.*changed after export"):
        load_model(folder, device="cpu")  # ...unless the file's stat moved


def test_verify_false_neither_hashes_nor_records(folder: Path, hashed: list[str]) -> None:
    (folder / STAMP_FILE).unlink()
    load_model(folder, device="cpu", verify=False)
    assert hashed == [] and not (folder / STAMP_FILE).exists()


def test_each_precision_verifies_the_graphs_it_loads(
    tiny_clip_int8_dir: Path, tmp_path: Path, cache: Path, hashed: list[str]
) -> None:
    folder = copy_model(tiny_clip_int8_dir, tmp_path / "m")
    load_model(folder, device="cpu", precision="fp32")
    assert sorted(hashed) == CLIP_FILES
    hashed.clear()
    load_model(folder, device="cpu")  # int8: the tokenizer is already vouched for
    assert sorted(hashed) == ["image.int8.onnx", "text.int8.onnx"]
    hashed.clear()
    load_model(folder, device="cpu", precision="fp32")
    load_model(folder, device="cpu", precision="int8")
    assert hashed == []


def test_a_read_only_folder_records_under_the_user_cache(
    folder: Path, cache: Path, hashed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = integrity.write_json_atomic
    stamp = (folder / STAMP_FILE).read_bytes()

    def read_only(path: Path, data: object) -> None:
        if Path(path).parent == folder:  # as a read-only mount refuses it (root ignores chmod)
            raise PermissionError(13, "Read-only file system", str(path))
        real(path, data)

    monkeypatch.setattr(integrity, "write_json_atomic", read_only)
    load_model(folder, device="cpu")
    assert sorted(hashed) == CLIP_FILES
    assert (folder / STAMP_FILE).read_bytes() == stamp
    (cached,) = (cache / "verified").iterdir()
    assert json.loads(cached.read_text())["folder"] == str(folder.resolve())
    hashed.clear()
    load_model(folder, device="cpu")
    assert hashed == []
    _flip_last_byte(folder / "text.onnx")
    with pytest.raises(ModelIntegrityError, match=r"text\.onnx.*changed after export"):
        load_model(folder, device="cpu")


def test_a_file_younger_than_the_time_grain_is_not_recorded(tmp_path: Path, cache: Path, hashed: list[str]) -> None:
    """An edit within the filesystem's timestamp grain of the check could keep the recorded mtime."""
    path = tmp_path / "graph.onnx"
    path.write_bytes(b"weights")
    expected = {"graph.onnx": sha256_file(path)}
    verify_files(tmp_path, expected)
    verify_files(tmp_path, expected)
    assert hashed == ["graph.onnx", "graph.onnx"]  # just written: checked each time, never recorded
    hashed.clear()
    old = path.stat().st_mtime_ns - 5_000_000_000
    os.utime(path, ns=(old, old))
    verify_files(tmp_path, expected)
    verify_files(tmp_path, expected)
    assert hashed == ["graph.onnx"]


def test_a_missing_file_is_named(folder: Path) -> None:
    load_model(folder, device="cpu")
    (folder / "image.onnx").unlink()
    with pytest.raises(ModelIntegrityError, match=r"image\.onnx' is missing"):
        load_model(folder, device="cpu")
