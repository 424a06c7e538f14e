"""Limits: body size (middleware), searches at once and their deadline (`QueryRunner`), per-request caps.

- `BodyLimit` reads a request body up to `max_body_bytes` before the app sees it and answers 413
  beyond (on the Content-Length header at once, else while reading), so no route ever holds more.
- `QueryRunner` runs searches in a pool of `concurrency` threads: onnxruntime and Qdrant Edge
  release the GIL, so they overlap. A search waits for a slot at most until its deadline
  (`timeout_s`, waiting included; 504 after it) and at most `queue` searches wait (503 beyond).
  A search past its deadline keeps its thread until it ends (Python cannot stop a thread), so
  the pool, not the number of clients, bounds the CPU work.
- Writes (`POST /items`, `DELETE /items/...`) run one at a time in a thread of their own and are
  never cut off midway: a timeout would leave the client not knowing what was written.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mmsearch.service.errors import ErrorBody, RequestError, error_response

T = TypeVar("T")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def too_large(limit: int) -> ErrorBody:
    return ErrorBody(
        status=413,
        type="PayloadTooLarge",
        message=f"the request body is over the limit of {limit:,} bytes (--max-body-bytes)",
    )


class BodyLimit:
    """ASGI middleware: bodies over `max_bytes` get 413 before the app reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await error_response(too_large(self.max_bytes))(scope, receive, send)
            return
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                await error_response(too_large(self.max_bytes))(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()  # what comes after the body: a disconnect
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class OverloadedError(RequestError):
    def __init__(self, running: int, waiting: int) -> None:
        super().__init__(
            503,
            f"the service is busy: {running} searches running and {waiting} waiting; retry shortly",
            type="Overloaded",
            headers={"Retry-After": "1"},
        )


class QueryTimeoutError(RequestError):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(
            504,
            f"the query took longer than the limit of {timeout_s:g} s (--timeout), waiting for a slot included",
            type="Timeout",
        )


class QueryRunner:
    """Runs blocking searches in a bounded thread pool, each within a deadline.

    Args:
        concurrency: threads running searches.
        queue: searches allowed to wait for a thread.
        timeout_s: the deadline of each search, from its submission.
    """

    def __init__(self, concurrency: int, queue: int, timeout_s: float) -> None:
        self.concurrency, self.queue, self.timeout_s = concurrency, queue, timeout_s
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="mmsearch-search")
        self._writes = ThreadPoolExecutor(1, thread_name_prefix="mmsearch-write")
        self._lock = threading.Lock()
        self._pending = 0

    @property
    def pending(self) -> int:
        """Searches submitted and not finished (running or waiting)."""
        return self._pending

    def _done(self, _: Future[Any]) -> None:
        with self._lock:
            self._pending -= 1

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in the pool, within the deadline.

        Raises:
            OverloadedError: every thread is busy and the queue is full.
            QueryTimeoutError: the deadline passed (a search still waiting for a thread is dropped).
        """
        with self._lock:
            if self._pending >= self.concurrency + self.queue:
                running = min(self._pending, self.concurrency)
                raise OverloadedError(running, self._pending - running)
            self._pending += 1
        future = self._pool.submit(fn, *args)
        future.add_done_callback(self._done)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except TimeoutError as e:
            future.cancel()  # succeeds only while it waits: a running search finishes in its thread
            raise QueryTimeoutError(self.timeout_s) from e

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in the single write thread: writes run one at a time, to the end."""
        return await asyncio.wrap_future(self._writes.submit(fn, *args))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._writes.shutdown(wait=True)


def check_at_most(value: int, limit: int, field: str, option: str) -> None:
    """422 naming `field` when `value` is over `limit` (a per-request cap set by `option`).

    Raises:
        RequestError: `value > limit`.
    """
    if value > limit:
        raise RequestError(
            422,
            f"{field} {value:,} is over the limit of {limit:,} ({option})",
            field=field,
            type="ValidationError",
        )


__all__ = ["BodyLimit", "OverloadedError", "QueryRunner", "QueryTimeoutError", "check_at_most", "too_large"]
