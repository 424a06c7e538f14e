"""Fetch image bytes over http(s) with the standard library: a deadline, a size cap, retries.

Retries (with exponential backoff) cover what a second try can fix: timeouts, dropped or refused
connections, 5xx answers, 408 and 429. Other 4xx answers (404, 403...), a body over the size cap
and a URL that is not http(s) fail at once.
"""

from __future__ import annotations

import http.client
import random
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from mmsearch.errors import FetchError
from mmsearch.version import __version__

_CHUNK = 64 * 1024
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class FetchSettings(BaseModel):
    """How image URLs are fetched.

    Attributes:
        timeout_s: the deadline for one attempt: connecting, waiting for the answer and reading
            the whole body.
        max_bytes: refuse bodies larger than this (checked against Content-Length, then while reading).
        retries: extra attempts after a timeout, a connection error or a 408/425/429/5xx answer.
        backoff_s: the wait before the first retry; doubled for each next one (with up to 25% jitter).
        user_agent: the User-Agent header sent.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(10.0, gt=0, le=600)
    max_bytes: int = Field(20 * 1024 * 1024, ge=1)
    retries: int = Field(2, ge=0, le=10)
    backoff_s: float = Field(0.5, ge=0, le=60)
    user_agent: str = f"mmsearch/{__version__}"


def is_url(ref: str) -> bool:
    """True for http(s) URLs (the only remote references the indexer fetches)."""
    return ref[:8].lower().startswith(("http://", "https://"))


class _RetryableError(Exception):
    """An attempt failed in a way another attempt may fix; carries the reason."""


def fetch(
    url: str,
    settings: FetchSettings | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> bytes:
    """Download `url` and return its body.

    Args:
        url: an http:// or https:// URL.
        settings: timeout, size cap, retries and backoff; None for the defaults.
        sleep: the wait function between retries (tests pass a fake).

    Returns:
        The response body.

    Raises:
        FetchError: not an http(s) URL, a 4xx answer (no retry), a body over `max_bytes` (no retry),
            or the last attempt failed with a timeout, a connection error or a 5xx answer. `status`
            holds the HTTP status when there was one.
    """
    s = settings or FetchSettings()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise FetchError(f"cannot fetch {url!r}: only http:// and https:// URLs are supported", url=url)
    attempts = s.retries + 1
    last: _RetryableError | None = None
    for attempt in range(attempts):
        if attempt:
            delay = s.backoff_s * (2 ** (attempt - 1))
            sleep(delay * (1 + 0.25 * random.random()))
        try:
            return _attempt(url, s)
        except _RetryableError as e:
            last = e
    status = getattr(last, "status", None)
    tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
    raise FetchError(f"fetching {url!r} failed after {tries}: {last}", url=url, status=status)


def _attempt(url: str, s: FetchSettings) -> bytes:
    deadline = time.monotonic() + s.timeout_s
    request = urllib.request.Request(url, headers={"User-Agent": s.user_agent, "Accept": "image/*,*/*;q=0.8"})
    try:
        with urllib.request.urlopen(request, timeout=s.timeout_s) as response:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > s.max_bytes:
                raise FetchError(
                    f"{url!r} is {int(length):,} bytes (Content-Length), over the limit of {s.max_bytes:,}",
                    url=url,
                )
            return _read_capped(response, url, s.max_bytes, deadline, s.timeout_s)
    except FetchError:
        raise
    except urllib.error.HTTPError as e:
        e.close()
        if e.code in _RETRY_STATUS or e.code >= 500:
            err = _RetryableError(f"HTTP {e.code} {e.reason}")
            err.status = e.code  # type: ignore[attr-defined]
            raise err from e
        raise FetchError(f"fetching {url!r} failed: HTTP {e.code} {e.reason}", url=url, status=e.code) from e
    except urllib.error.URLError as e:
        # Connection refused or reset, DNS hiccups and connect timeouts all land here.
        raise _RetryableError(_describe(e.reason)) from e
    except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as e:
        raise _RetryableError(_describe(e)) from e


def _read_capped(
    response: http.client.HTTPResponse, url: str, max_bytes: int, deadline: float, timeout_s: float
) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        # urllib's timeout bounds each socket read; the deadline bounds the whole body, so a
        # server trickling one byte per second cannot hold a worker for ever.
        if time.monotonic() > deadline:
            raise _RetryableError(f"timed out after {timeout_s:g} s while reading the body")
        chunk = response.read1(_CHUNK)  # what has arrived (one recv), so the deadline is checked often
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raise FetchError(f"{url!r} sent more than the limit of {max_bytes:,} bytes", url=url)
        chunks.append(chunk)


def _describe(reason: object) -> str:
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"timed out ({reason})" if str(reason) else "timed out"
    return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)
