"""A local HTTP server on 127.0.0.1 for fetch tests: fixed routes, per-path hit counters."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    """What the server answers on one path.

    Attributes:
        body: the response body.
        status: the HTTP status; `fail_first` answers get `fail_status` first.
        delay_s: sleep before answering (to trigger client timeouts).
        fail_first: how many requests get `fail_status` before the real answer.
        length: the Content-Length to send (None: the body's length; -1: none, close to end).
        trickle_s: sleep between 1-byte writes of the body.
    """

    body: bytes = b""
    status: int = 200
    delay_s: float = 0.0
    fail_first: int = 0
    fail_status: int = 503
    length: int | None = None
    trickle_s: float = 0.0
    content_type: str = "application/octet-stream"


@dataclass
class Server:
    url: str
    routes: dict[str, Route]
    hits: Counter = field(default_factory=Counter)


@contextmanager
def serve(routes: dict[str, Route]) -> Iterator[Server]:
    """Serve `routes` on an ephemeral port until the block ends; unknown paths get 404."""
    hits: Counter = Counter()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            with lock:
                hits[self.path] += 1
                n = hits[self.path]
            route = routes.get(self.path)
            if route is None:
                self.send_error(404, "Not Found")
                return
            if route.delay_s:
                time.sleep(route.delay_s)
            if n <= route.fail_first:
                self.send_error(route.fail_status)
                return
            if route.status != 200:
                self.send_error(route.status)
                return
            self.send_response(200)
            self.send_header("Content-Type", route.content_type)
            if route.length != -1:
                self.send_header("Content-Length", str(len(route.body) if route.length is None else route.length))
            self.end_headers()
            try:
                if route.trickle_s:
                    for i in range(len(route.body)):
                        self.wfile.write(route.body[i : i + 1])
                        self.wfile.flush()
                        time.sleep(route.trickle_s)
                else:
                    self.wfile.write(route.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout or size cap): expected in these tests

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(url=f"http://127.0.0.1:{httpd.server_address[1]}", routes=routes, hits=hits)
    finally:
        httpd.shutdown()
        httpd.server_close()
