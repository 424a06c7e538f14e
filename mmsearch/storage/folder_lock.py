"""An exclusive, non-blocking lock on a folder, held by one open store at a time (POSIX `flock`).

The lock lives on a file inside the folder and belongs to the open file description, so a second
opener is refused whether it is another process or another store in this one, and the operating
system drops the lock when its holder dies: a killed writer never leaves a stale lock behind.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; Qdrant Edge's own WAL lock is then the only guard
    fcntl = None  # type: ignore[assignment]


class FolderLock:
    """One lock file; `acquire` takes it without waiting, `release` (or the holder's death) frees it.

    Args:
        path: the lock file (created on the first `acquire`; its folder must exist).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock; False when someone else holds it. Idempotent for the holder."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Free the lock (closing its file frees it); a no-op when not held."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
