"""A real `mmsearch serve` process on 127.0.0.1: it starts, answers over HTTP, and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from mmsearch.storage import open_store
from tests.service_support import READ_KEY, WRITE_KEY, bearer, free_port, wait_until_ready, workspace

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_clip_dir, minilm_dir):
    return workspace(tmp_path_factory, tiny_clip_dir, minilm_dir, "service-server")


def test_serve_answers_over_http_and_stops_cleanly(ws):
    port = free_port()
    env = {
        **os.environ,
        "MMSEARCH_API_KEYS": f"read:{READ_KEY},write:{WRITE_KEY}",
        "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
    }
    command = [sys.executable, "-c", "from mmsearch.cli import main; main()", "serve", "-c", "mmsearch.toml"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--image-root", "."],
        cwd=ws,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, alive=lambda: process.poll() is None)
        response = httpx.post(f"{url}/search", json={"text": "a red ball", "limit": 3}, headers=bearer(READ_KEY))
        assert response.status_code == 200, response.text
        assert len(response.json()["results"]) == 3
        assert httpx.post(f"{url}/search", json={"text": "ball"}).status_code == 401
        photo = httpx.get(f"{url}/images/sku-001", headers=bearer(READ_KEY))
        assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
        assert "<title>mmsearch</title>" in httpx.get(f"{url}/").text
        assert 'route="/search",status="200"' in httpx.get(f"{url}/metrics", headers=bearer(READ_KEY)).text
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "collection 'products' (edge backend, 40 items)" in output and "2 read" not in output
    assert "1 read key, 1 write key" in output and READ_KEY not in output and WRITE_KEY not in output
    with open_store({"path": ws / "data", "collection": "products"}) as store:  # the lock was released
        assert store.count() == 40


def test_a_worker_opens_its_service_from_the_settings_in_the_environment(ws, monkeypatch):
    from fastapi.testclient import TestClient

    from mmsearch.errors import ConfigError
    from mmsearch.service.app import app_from_env
    from mmsearch.service.defaults import SETTINGS_ENV
    from mmsearch.service.settings import ServiceSettings

    monkeypatch.delenv(SETTINGS_ENV, raising=False)
    with pytest.raises(ConfigError, match=SETTINGS_ENV):
        app_from_env()
    settings = ServiceSettings(config=ws / "mmsearch.toml", image_root=ws)
    monkeypatch.setenv(SETTINGS_ENV, settings.model_dump_json())
    monkeypatch.setenv("MMSEARCH_API_KEYS", f"read:{READ_KEY}")
    with TestClient(app_from_env()) as client:  # the lifespan opens the service, and closes it
        response = client.post("/search", json={"text": "mug", "limit": 2}, headers=bearer(READ_KEY))
        assert response.status_code == 200 and len(response.json()["results"]) == 2
        assert client.post("/search", json={"text": "mug"}).status_code == 401
    with open_store({"path": ws / "data", "collection": "products"}) as store:
        assert store.count() == 40


@pytest.fixture(scope="module")
def qdrant_url():
    from tests.storage_support import qdrant_server_url

    yield from qdrant_server_url()


@pytest.mark.docker
def test_several_workers_serve_a_qdrant_server(ws, qdrant_url, tmp_path, tiny_clip_dir, minilm_dir):
    from mmsearch.indexing.index import Index
    from tests.service_support import CONFIG

    config = tmp_path / "server.toml"
    text = CONFIG.format(clip=tiny_clip_dir, minilm=minilm_dir)
    config.write_text(text.replace('backend = "edge"\npath = "data"', f'backend = "server"\nurl = "{qdrant_url}"'))
    with Index.open(config) as index:
        assert index.sync(ws / "catalog.jsonl").indexed == 40
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])}
    env.pop("MMSEARCH_API_KEYS", None)
    command = [sys.executable, "-c", "from mmsearch.cli import main; main()", "serve", "-c", str(config)]
    process = subprocess.Popen([*command, "--port", str(port), "--workers", "2"], cwd=ws, env=env, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, alive=lambda: process.poll() is None)
        with httpx.Client() as client:
            for _ in range(8):
                response = client.post(f"{url}/search", json={"text": "a red ball", "limit": 3})
                assert response.status_code == 200 and len(response.json()["results"]) == 3
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    assert process.returncode == 0
