"""API keys and scopes: who may read and write, what an anonymous client may see, keys never logged."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from mmsearch.cli import cli
from mmsearch.errors import ConfigError
from mmsearch.service import Service, ServiceSettings, create_app
from mmsearch.service.auth import required_scope
from mmsearch.service.keys import KeyRing, parse_key
from mmsearch.service.server import check_exposure
from mmsearch.service.settings import is_loopback
from tests.service_support import READ_KEY, WRITE_KEY, bearer, keyring, workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_clip_dir, minilm_dir):
    return workspace(tmp_path_factory, tiny_clip_dir, minilm_dir, "service-auth")


@pytest.fixture(scope="module")
def service(ws):
    with Service.open(ServiceSettings(config=ws / "mmsearch.toml", image_root=ws)) as svc:
        yield svc


@pytest.fixture(scope="module")
def client(service):
    with TestClient(create_app(service, keys=keyring())) as c:
        yield c


READS = [
    ("POST", "/search", {"json": {"text": "ball", "limit": 2}}),
    ("POST", "/recommend", {"json": {"user": "u1", "limit": 2}}),
    ("GET", "/items/sku-001", {}),
    ("GET", "/images/sku-001", {}),
    ("GET", "/signals", {}),
    ("GET", "/metrics", {}),
]
WRITES = [
    ("POST", "/items", {"json": {"items": [{"id": "auth-1", "title": "A key-protected lamp"}]}}),
    ("DELETE", "/items/auth-1", {}),
]
PUBLIC = ["/", "/static/app.js", "/static/style.css", "/healthz", "/readyz", "/openapi.json", "/docs"]


@pytest.mark.parametrize(
    ("method", "path", "kwargs"), READS + WRITES, ids=lambda v: str(v) if isinstance(v, str) else ""
)
def test_no_key_is_a_401_with_a_bearer_challenge(client, method, path, kwargs):
    response = client.request(method, path, **kwargs)
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert error["type"] == "Unauthorized" and "Authorization: Bearer" in error["message"]


def test_a_wrong_or_malformed_key_is_a_401(client):
    for headers in (
        bearer("read-key-0123456789abcdeX"),
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
    ):
        response = client.post("/search", json={"text": "ball"}, headers=headers)
        assert response.status_code == 401, headers
    wrong = client.post("/search", json={"text": "ball"}, headers=bearer("x" * 30))
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]


@pytest.mark.parametrize(("method", "path", "kwargs"), READS, ids=lambda v: str(v) if isinstance(v, str) else "")
def test_a_read_key_reads(client, method, path, kwargs):
    response = client.request(method, path, headers=bearer(READ_KEY), **kwargs)
    assert response.status_code == 200, response.text


def test_writes_need_a_write_key(client, service):
    before = service.index.store.count()
    for method, path, kwargs in WRITES:
        refused = client.request(method, path, headers=bearer(READ_KEY), **kwargs)
        assert refused.status_code == 403 and "write key" in refused.json()["error"]["message"]
    assert service.index.store.count() == before
    added = client.post("/items", headers=bearer(WRITE_KEY), **WRITES[0][2])
    assert added.status_code == 200 and added.json()["indexed"] == 1
    assert client.post("/search", json={"item": "auth-1"}, headers=bearer(WRITE_KEY)).status_code == 200  # write reads
    assert client.delete("/items/auth-1", headers=bearer(WRITE_KEY)).json()["deleted"] is True
    assert service.index.store.count() == before


@pytest.mark.parametrize("path", PUBLIC)
def test_the_page_health_and_docs_need_no_key(client, path):
    assert client.get(path).status_code == 200


def test_unknown_paths_need_a_key_too(client):
    assert client.get("/admin").status_code == 401
    assert client.get("/admin", headers=bearer(READ_KEY)).status_code == 404


def test_keys_are_never_logged_nor_exposed(client, caplog):
    caplog.set_level(logging.DEBUG)
    for key in (READ_KEY, WRITE_KEY, "wrong-key-0123456789abcdef"):
        client.post("/search", json={"text": "ball"}, headers=bearer(key))
        client.post("/items", json={"items": [{"id": "k", "title": "t"}]}, headers=bearer(key))
    client.delete("/items/k", headers=bearer(WRITE_KEY))
    metrics = client.get("/metrics", headers=bearer(READ_KEY)).text
    schema = client.get("/openapi.json").text
    for key in (READ_KEY, WRITE_KEY, "wrong-key-0123456789abcdef"):
        assert key not in caplog.text and key not in metrics and key not in schema


def test_required_scopes():
    assert required_scope("GET", "/") is None and required_scope("GET", "/static/x.css") is None
    assert required_scope("POST", "/items") == "write" and required_scope("DELETE", "/items/a/b") == "write"
    assert required_scope("GET", "/items/a") == "read" and required_scope("POST", "/search") == "read"
    assert required_scope("POST", "/itemsx") == "read" and required_scope("GET", "/metrics") == "read"


def test_keys_from_the_environment_and_a_file(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text(f"# the ops team\nwrite:{WRITE_KEY}   # rotated monthly\n\n", encoding="utf-8")
    ring = KeyRing.load({"MMSEARCH_API_KEYS": f" read:{READ_KEY},read:{'r' * 20}\n"}, path)
    assert [k.scope for k in ring.keys] == ["read", "read", "write"]
    assert ring.find(READ_KEY).scope == "read" and ring.find(WRITE_KEY).scope == "write"
    assert ring.find("r" * 19) is None and ring.find("") is None
    assert ring.describe() == "2 read keys, 1 write key" and KeyRing().describe() == "no API keys"
    assert not KeyRing.load({}).enabled


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ("admin:0123456789abcdefXYZ", "read:KEY or write:KEY"),
        ("0123456789abcdefXYZ", "read:KEY or write:KEY"),
        ("read:short-key", "9 characters; use at least 16"),
    ],
)
def test_a_malformed_key_is_refused_without_showing_it(entry, needle):
    with pytest.raises(ConfigError, match=needle) as info:
        KeyRing.load({"MMSEARCH_API_KEYS": entry})
    secret = entry.partition(":")[2] or entry
    assert secret not in str(info.value) and "MMSEARCH_API_KEYS entry 1" in str(info.value)


def test_an_unreadable_keys_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the API keys file"):
        KeyRing.load({}, tmp_path / "none.txt")


def test_every_key_is_compared_in_constant_time(monkeypatch):
    import mmsearch.service.keys as keys

    calls: list[int] = []
    real = keys.hmac.compare_digest
    monkeypatch.setattr(keys.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    ring = KeyRing(
        [parse_key(f"read:{READ_KEY}", "a"), parse_key(f"write:{WRITE_KEY}", "b"), parse_key("read:" + "z" * 16, "c")]
    )
    assert ring.find(READ_KEY).source == "a"  # the first key matches: the loop goes on anyway
    assert len(calls) == 3


def test_loopback_addresses():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.com", ""))


def test_a_public_address_without_keys_is_refused_unless_insecure(caplog):
    public = ServiceSettings(host="0.0.0.0")
    with pytest.raises(ConfigError, match="without API keys"):
        check_exposure(public, KeyRing())
    check_exposure(public, keyring())
    check_exposure(ServiceSettings(host="127.0.0.1"), KeyRing())
    check_exposure(ServiceSettings(host="0.0.0.0", insecure=True), KeyRing())
    assert "--insecure" in caplog.text


def test_serve_refuses_before_loading_anything(ws, monkeypatch):
    monkeypatch.delenv("MMSEARCH_API_KEYS", raising=False)
    config = str(ws / "mmsearch.toml")
    refused = CliRunner().invoke(cli, ["serve", "-c", config, "--host", "0.0.0.0", "--port", "1"])
    assert refused.exit_code == 1 and "error: refusing to serve on 0.0.0.0" in refused.output
    workers = CliRunner().invoke(cli, ["serve", "-c", config, "--workers", "2", "--port", "1"])
    assert workers.exit_code == 1 and "the edge backend is one process" in workers.output
    bad = CliRunner().invoke(cli, ["serve", "-c", config, "--max-batch", "0"])
    assert bad.exit_code == 1 and "max_batch" in bad.output and "greater than or equal to 1" in bad.output
    short = CliRunner().invoke(cli, ["serve", "-c", config], env={"MMSEARCH_API_KEYS": "read:abc"})
    assert short.exit_code == 1 and "use at least 16" in short.output and "read:abc" not in short.output


def test_a_missing_web_stack_says_which_pip_install_fixes_it(monkeypatch):
    import importlib.util

    from mmsearch.errors import DependencyError
    from mmsearch.service import require_web_stack

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "multipart" else real(name, *a))
    with pytest.raises(DependencyError, match=r"needs python-multipart: pip install 'mmsearch\[serve\]'"):
        require_web_stack()
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 1 and "pip install 'mmsearch[serve]'" in result.output
