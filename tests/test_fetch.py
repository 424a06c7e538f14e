"""URL fetching against a local server: success, no retry on 4xx, retries on 5xx, timeouts, size cap."""

from __future__ import annotations

import time

import pytest
from http_support import Route, serve

from mmsearch.errors import FetchError, InputError
from mmsearch.fetch import FetchSettings, fetch, is_url

BODY = bytes(range(256)) * 40  # 10,240 bytes
FAST = FetchSettings(timeout_s=0.5, retries=2, backoff_s=0.0)


@pytest.fixture(scope="module")
def server():
    routes = {
        "/ok.bin": Route(body=BODY),
        "/gone": Route(status=404),
        "/forbidden": Route(status=403),
        "/flaky": Route(body=b"second time lucky", fail_first=1, fail_status=503),
        "/down": Route(status=500),
        "/slow": Route(body=b"late", delay_s=2.0),
        "/big": Route(body=BODY),
        "/big-no-length": Route(body=BODY, length=-1),
        "/trickle": Route(body=b"x" * 50, trickle_s=0.05),
    }
    with serve(routes) as srv:
        yield srv


def test_fetch_returns_the_body(server):
    assert fetch(server.url + "/ok.bin", FAST) == BODY
    assert server.hits["/ok.bin"] == 1


def test_404_fails_at_once_without_retrying(server):
    with pytest.raises(FetchError) as info:
        fetch(server.url + "/gone", FAST)
    assert info.value.status == 404 and "404" in str(info.value) and "/gone" in str(info.value)
    assert isinstance(info.value, InputError)
    assert server.hits["/gone"] == 1


def test_403_is_not_retried_either(server):
    with pytest.raises(FetchError) as info:
        fetch(server.url + "/forbidden", FAST)
    assert info.value.status == 403 and server.hits["/forbidden"] == 1


def test_5xx_is_retried_and_can_succeed(server):
    sleeps: list[float] = []
    settings = FetchSettings(timeout_s=1, retries=2, backoff_s=0.2)
    assert fetch(server.url + "/flaky", settings, sleep=sleeps.append) == b"second time lucky"
    assert server.hits["/flaky"] == 2
    assert len(sleeps) == 1 and 0.2 <= sleeps[0] <= 0.25  # backoff with at most 25% jitter


def test_persistent_5xx_gives_up_after_the_retries_with_backoff(server):
    sleeps: list[float] = []
    settings = FetchSettings(timeout_s=1, retries=3, backoff_s=0.1)
    with pytest.raises(FetchError) as info:
        fetch(server.url + "/down", settings, sleep=sleeps.append)
    assert info.value.status == 500 and "4 attempts" in str(info.value)
    assert server.hits["/down"] == 4
    for slept, base in zip(sleeps, [0.1, 0.2, 0.4], strict=True):  # doubling, plus under 25% jitter
        assert base <= slept <= base * 1.25


def test_slow_answer_times_out_and_is_retried(server):
    settings = FetchSettings(timeout_s=0.3, retries=1, backoff_s=0.0)
    start = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetch(server.url + "/slow", settings)
    elapsed = time.monotonic() - start
    assert "timed out" in str(info.value) and info.value.status is None
    assert server.hits["/slow"] == 2
    assert elapsed < 1.5  # two 0.3 s attempts, not the server's 2 s


def test_a_body_trickling_past_the_deadline_times_out(server):
    start = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        fetch(server.url + "/trickle", FetchSettings(timeout_s=0.5, retries=0))
    assert time.monotonic() - start < 1.2  # the deadline, not the 2.5 s the server takes to send it all


def test_content_length_over_the_cap_is_refused_without_retry(server):
    with pytest.raises(FetchError) as info:
        fetch(server.url + "/big", FetchSettings(max_bytes=1000, retries=3, backoff_s=0))
    assert "10,240 bytes" in str(info.value) and "1,000" in str(info.value)
    assert server.hits["/big"] == 1


def test_body_over_the_cap_without_content_length_is_refused(server):
    with pytest.raises(FetchError, match="more than the limit of 1,000 bytes"):
        fetch(server.url + "/big-no-length", FetchSettings(max_bytes=1000, retries=0))
    assert fetch(server.url + "/big-no-length", FetchSettings(max_bytes=len(BODY))) == BODY


@pytest.mark.parametrize("url", ["ftp://example.com/a.jpg", "file:///etc/passwd", "http://", "photo.jpg"])
def test_only_http_urls_are_fetched(url):
    with pytest.raises(FetchError, match="only http:// and https://") as info:
        fetch(url, FAST)
    assert info.value.url == url


def test_refused_connection_is_retried_then_reported():
    sleeps: list[float] = []
    with serve({}) as srv:
        url = srv.url + "/x"
    with pytest.raises(FetchError) as info:  # the server is gone: connection refused
        fetch(url, FetchSettings(timeout_s=0.5, retries=2, backoff_s=0.01), sleep=sleeps.append)
    assert "3 attempts" in str(info.value) and len(sleeps) == 2


def test_is_url():
    assert is_url("http://a/b.jpg") and is_url("HTTPS://a/b.jpg")
    assert not is_url("images/b.jpg") and not is_url("file:///b.jpg") and not is_url("ftp://a/b")
