"""Reaching the store from a worker: retries with backoff, one client per process for a server, the
folder lock waited for on a single-writer store.

A Qdrant server takes many writers: each worker process opens one client and keeps it for every
task it runs. Qdrant Edge (and qdrant-client's local mode with a `path`) is single-writer: the
process that has the folder open holds its lock, so a worker opens it for one write task, waiting
for the lock if another task still has it, and closes it at the end of the task.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from mmsearch.errors import BackendError, StoreLockedError
from mmsearch.storage import Store, StoreSettings, open_store

log = logging.getLogger(__name__)
T = TypeVar("T")
_CLIENTS: dict[str, Store] = {}
_CLIENTS_LOCK = threading.Lock()


class WriteSettings(BaseModel):
    """How workers write.

    Attributes:
        batch_size: items per upsert call.
        retries: further attempts after a store call fails with a `BackendError` (a server down,
            a timeout, a 5xx), with exponential backoff; then the rows are reported `failed`.
        backoff_s: the first wait, doubled after each attempt up to `max_backoff_s`.
        max_backoff_s: the longest wait between two attempts.
        lock_timeout_s: how long a writer waits for a single-writer store's folder lock.
        rows_per_write: Ray: rows handed to each write task. None: 4096 for a single-writer store
            (each task opens and closes the folder, about half a second), Ray's choice for a server.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(256, ge=1, le=65_536)
    retries: int = Field(5, ge=0, le=100)
    backoff_s: float = Field(0.5, ge=0)
    max_backoff_s: float = Field(30.0, ge=0)
    lock_timeout_s: float = Field(600.0, ge=0)
    rows_per_write: int | None = Field(None, ge=1)


def single_writer(settings: StoreSettings) -> bool:
    """True for stores one process writes at a time (an Edge folder, a local-mode path)."""
    return settings.backend != "server"


def retrying(call: Callable[[], T], settings: WriteSettings, what: str) -> T:
    """`call()`, tried again after a `BackendError` up to `settings.retries` times with backoff.

    Raises:
        BackendError: the last attempt's error, saying how many attempts were made.
    """
    wait = settings.backoff_s
    for attempt in range(settings.retries + 1):
        try:
            return call()
        except BackendError as e:
            if attempt == settings.retries:
                raise BackendError(f"{what} failed {attempt + 1} time(s); the last error: {e}") from e
            log.warning("%s failed (%s); attempt %d of %d in %.1f s", what, e, attempt + 2, settings.retries + 1, wait)
            time.sleep(wait)
            wait = min(settings.max_backoff_s, max(wait * 2, 0.05))
    raise AssertionError("unreachable")  # the loop returns or raises


def shared_store(settings: StoreSettings, write: WriteSettings) -> Store:
    """This process's client for a server collection, opened on first use and kept for later tasks."""
    key = settings.model_dump_json()
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = retrying(lambda: open_store(settings), write, f"opening {settings.url}")
        return _CLIENTS[key]


def _wait_for_folder(settings: StoreSettings, write: WriteSettings) -> Store:
    deadline = time.monotonic() + write.lock_timeout_s
    wait = 0.05
    while True:
        try:
            return open_store(settings)
        except StoreLockedError as e:
            if time.monotonic() >= deadline:
                raise StoreLockedError(f"{e} (waited {write.lock_timeout_s:g} s for it)") from e
            time.sleep(wait)
            wait = min(1.0, wait * 2)


@contextlib.contextmanager
def store_for_writing(settings: StoreSettings, write: WriteSettings) -> Iterator[Store]:
    """The store one write task writes through: a shared client, or the folder held for the task.

    Raises:
        StoreLockedError: a single-writer folder stayed locked for `lock_timeout_s`.
        BackendError: the server could not be reached after the retries.
    """
    if not single_writer(settings):
        yield shared_store(settings, write)
        return
    store = _wait_for_folder(settings, write)
    try:
        yield store
    finally:
        store.close()
