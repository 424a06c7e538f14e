"""Model files checked against their manifest's sha256 once, not hashed again on every load.

Hashing ViT-B-32 CLIP and MiniLM (670 MB) took ~0.4 s of every cold start. A check is therefore
recorded in a stamp keyed by each file's size, mtime, ctime and inode, written beside the manifest
(`.verified.json`) or, where the model folder is read-only, under the user cache
(`$MMSEARCH_CACHE/verified/`, default `~/.cache/mmsearch/verified/`). A later check hashes only
the files whose stat differs from the stamp's: an edit in place moves mtime and ctime (ctime even
when the mtime is set back), a replaced or copied file gets another inode.

The stamp guards against accidents (a truncated copy, a file edited or swapped after export), as
the hash itself does; whoever can rewrite the model files can rewrite the stamp too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path

from mmsearch.errors import ModelIntegrityError
from mmsearch.files import sha256_file, user_cache_dir, write_json_atomic

log = logging.getLogger(__name__)

STAMP_FILE = ".verified.json"
STAMP_FORMAT = 1

# File times come from a coarse clock (up to a kernel tick, 10 ms, behind) and some filesystems
# round them further (FAT 2 s, ext3 1 s, exFAT 10 ms): a file rewritten within that grain of its
# check keeps the recorded mtime. So, as git does with its "racily clean" entries, a file is
# recorded only once its mtime is older than the grain, taken as 2 s when the mtime looks rounded.
FINE_GRAIN_NS = 50_000_000
COARSE_GRAIN_NS = 2_000_000_000

Entry = dict[str, int | str]


def verify_files(folder: Path, expected: Mapping[str, str]) -> None:
    """Check that each file of `folder` has its expected sha256, hashing only files changed since their last check.

    Args:
        folder: the model folder.
        expected: file names (relative to `folder`) mapped to their sha256.

    Raises:
        ModelIntegrityError: a file is missing, or its sha256 differs (it was changed after export).
    """
    folder = Path(folder)
    started = time.time_ns()
    stamps = [_read(path) for path in _stamp_paths(folder)]
    checked: dict[str, Entry] = {}
    for name, sha256 in expected.items():
        path = folder / name
        before = _entry(path, sha256)
        if any(stamp.get(name) == before for stamp in stamps):
            continue
        actual = sha256_file(path)
        if actual != sha256:
            raise ModelIntegrityError(
                f"model file {str(path)!r} has sha256 {actual[:16]}..., the manifest says "
                f"{sha256[:16]}...: the file was changed after export; re-export the model"
            )
        # Recorded only if the file held still while it was hashed, and is old enough to be safe.
        if _entry(path, sha256) == before and _settled(int(before["mtime_ns"]), started):
            checked[name] = before
    if checked:
        _record(folder, checked)


def record_verified(folder: Path, expected: Mapping[str, str]) -> None:
    """Record files whose sha256 the caller has just computed (the exporter), so the first load skips them.

    Always writes the stamp, so that every exported folder holds one.
    """
    folder = Path(folder)
    now = time.time_ns()
    entries = {name: _entry(folder / name, sha256) for name, sha256 in expected.items()}
    _record(folder, {name: e for name, e in entries.items() if _settled(int(e["mtime_ns"]), now)})


def _entry(path: Path, sha256: str) -> Entry:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelIntegrityError(f"model file {str(path)!r} is missing") from None
    if not path.is_file():
        raise ModelIntegrityError(f"model file {str(path)!r} is missing (not a regular file)")
    return {
        "sha256": sha256,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "inode": st.st_ino,
    }


def _settled(mtime_ns: int, now_ns: int) -> bool:
    grain = COARSE_GRAIN_NS if mtime_ns % 10_000_000 == 0 else FINE_GRAIN_NS
    return mtime_ns < now_ns - grain


def _stamp_paths(folder: Path) -> tuple[Path, Path]:
    """Beside the manifest, then the user cache's stamp for this folder (for read-only folders)."""
    key = hashlib.sha256(str(folder.resolve()).encode("utf-8")).hexdigest()[:32]
    return folder / STAMP_FILE, user_cache_dir() / "verified" / f"{key}.json"


def _read(path: Path) -> dict[str, Entry]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != STAMP_FORMAT or not isinstance(data.get("files"), dict):
        return {}
    return data["files"]


def _record(folder: Path, entries: Mapping[str, Entry]) -> None:
    beside, cached = _stamp_paths(folder)
    for path in (beside, cached):
        data: dict[str, object] = {"format": STAMP_FORMAT, "files": {**_read(path), **entries}}
        if path == cached:
            data["folder"] = str(folder.resolve())
        try:
            if path == cached:
                path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, data)
            if path == beside:
                path.chmod(0o644)  # written private; readable like the model files it vouches for
            return
        except OSError as e:  # a read-only model folder (then the cache), or no writable cache at all
            log.debug("cannot write the verification stamp %s: %s", path, e)
    log.info("verified %s but could not record it: its files will be hashed again on the next load", folder)
