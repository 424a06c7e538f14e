"""A served workspace for the service tests: the example catalog indexed with the tiny models, CF fitted.

The first call builds a template (index + CF fit, a few seconds) once per test session; each
caller gets its own copy, so a module can hold its Edge store open (or hand it to a server
process) without locking out the others.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmsearch.service.keys import KeyRing, parse_key

EXAMPLES = Path(__file__).resolve().parents[1] / "mmsearch" / "examples"
READ_KEY = "read-key-0123456789abcdef"
WRITE_KEY = "write-key-0123456789abcdef"
USERS = 12
_TEMPLATE: dict[str, Path] = {}

CONFIG = """\
[store]
backend = "edge"
path = "data"
collection = "products"
payload_indexes = {{ category = "keyword", price = "float" }}

[[encoders]]
model = "{clip}"
text_fields = ["title"]

[[encoders]]
model = "{minilm}"
text_fields = ["title", "description"]
"""


def catalog_items() -> list[dict]:
    return [json.loads(line) for line in (EXAMPLES / "catalog.jsonl").read_text(encoding="utf-8").splitlines()]


def _interactions(folder: Path) -> Path:
    """Users u1..u12, each with 4 items of one category and one other: warm users for CF."""
    items = catalog_items()
    categories = sorted({i["category"] for i in items})
    rng = random.Random(0)
    rows = ["user,item,rating"]
    for u in range(1, USERS + 1):
        home = [i["id"] for i in items if i["category"] == categories[u % len(categories)]]
        other = [i["id"] for i in items if i["category"] != categories[u % len(categories)]]
        for item in rng.sample(home, min(4, len(home))) + rng.sample(other, 1):
            rows.append(f"u{u},{item},{rng.randint(1, 5)}")
    path = folder / "interactions.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _build(folder: Path, clip_dir: Path, minilm_dir: Path) -> None:
    from mmsearch.cf import cf_config
    from mmsearch.cf.collection import fit_collection_cf
    from mmsearch.cf.interactions import read_interactions
    from mmsearch.indexing.index import Index

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLES / "catalog.jsonl", folder)
    shutil.copytree(EXAMPLES / "images", folder / "images")
    shutil.copy(EXAMPLES / "images" / "ball-blue.jpg", folder / "photo.jpg")
    (folder / "mmsearch.toml").write_text(CONFIG.format(clip=clip_dir, minilm=minilm_dir), encoding="utf-8")
    with Index.open(folder / "mmsearch.toml") as index:
        summary = index.sync(folder / "catalog.jsonl")
        assert summary.ok, summary
        log, _ = read_interactions(_interactions(folder))
        fit_collection_cf(index.store, log, cf_config("als", factors=64, iterations=5, seed=0))


def workspace(tmp_path_factory: pytest.TempPathFactory, clip_dir: Path, minilm_dir: Path, name: str) -> Path:
    """A fresh copy of the served workspace: `mmsearch.toml`, `catalog.jsonl`, `images/`, `photo.jpg`, `data/`."""
    if "template" not in _TEMPLATE:
        template = tmp_path_factory.mktemp("served-template")
        _build(template / "ws", clip_dir, minilm_dir)
        _TEMPLATE["template"] = template / "ws"
    target = tmp_path_factory.mktemp(name) / "ws"
    shutil.copytree(_TEMPLATE["template"], target)
    return target


def keyring() -> KeyRing:
    return KeyRing([parse_key(f"read:{READ_KEY}", "test read"), parse_key(f"write:{WRITE_KEY}", "test write")])


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_ready(url: str, timeout_s: float = 90.0, alive: object = None) -> None:
    """Poll `url`/readyz until it answers 200; raise with the reason when it does not in time."""
    import httpx

    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        if callable(alive) and not alive():
            raise AssertionError(f"the server at {url} exited before it was ready")
        try:
            response = httpx.get(f"{url}/readyz", timeout=2)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.HTTPError as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"the server at {url} was not ready after {timeout_s:.0f} s: {last}")


@contextlib.contextmanager
def uvicorn_thread(app: object, port: int) -> Iterator[str]:
    """Serve `app` with a real uvicorn server on 127.0.0.1:`port` in a thread, for the block."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, 30, alive=thread.is_alive)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
