"""File primitives several packages share: content hashes, crash-safe writes, the user cache folder."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from mmsearch.errors import ConfigError


@contextlib.contextmanager
def writing(path: str | Path, what: str) -> Iterator[Path]:
    """Write `path` inside the block; an OSError (no such folder, no permission, a file in the way) becomes one line.

    Raises:
        ConfigError: `path` cannot be written; the message names it and what it was for.
    """
    try:
        yield Path(path)
    except OSError as e:
        raise ConfigError(f"cannot write the {what} {str(path)!r}: {e.strerror or e}") from e


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write a file so that readers, and a crash at any moment, see the old file or the new one.

    `write` gets a binary file beside the target; it is fsynced, renamed over `path`, and the
    folder is fsynced so the rename itself survives a power loss.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """`write_atomic` of `data` as indented, key-sorted UTF-8 JSON."""
    text = json.dumps(data, indent=2, sort_keys=True).encode("utf-8")
    write_atomic(path, lambda f: f.write(text))


def user_cache_dir() -> Path:
    """`$MMSEARCH_CACHE`, else `$XDG_CACHE_HOME/mmsearch`, else `~/.cache/mmsearch` (not created)."""
    if os.environ.get("MMSEARCH_CACHE"):
        return Path(os.environ["MMSEARCH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "mmsearch"


__all__ = ["sha256_file", "user_cache_dir", "write_atomic", "write_json_atomic"]
