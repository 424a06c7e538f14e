"""The Docker files run `mmsearch serve` with options, ports, paths and variables the code really has.

No Docker engine is needed: the compose file and the Dockerfiles are parsed, and their serve
commands are parsed by the real `mmsearch serve` command line.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from mmsearch.cli.serve_cmd import serve
from mmsearch.indexing.config import parse_config
from mmsearch.service import WEB_STACK
from mmsearch.service.auth import required_scope
from mmsearch.service.defaults import KEYS_ENV

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def parsed(args: list[str]) -> dict:
    """The options `mmsearch serve ARGS` would run with (a bad option or value raises)."""
    return dict(serve.make_context("serve", list(args)).params)


def dockerfile(name: str) -> dict[str, str]:
    text = (DOCKER / name).read_text(encoding="utf-8").replace("\\\n", " ")
    return {
        m.group(1): m.group(2).strip()
        for m in re.finditer(r"^(FROM|EXPOSE|HEALTHCHECK|ENTRYPOINT|CMD) (.*)$", text, re.M)
    }


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.cuda"])
def test_the_images_serve_on_their_exposed_port(name):
    f = dockerfile(name)
    assert json.loads(f["ENTRYPOINT"]) == ["mmsearch"]
    command = json.loads(f["CMD"])
    assert command[0] == "serve"
    options = parsed(command[1:])
    assert options["host"] == "0.0.0.0" and str(options["port"]) == f["EXPOSE"]
    assert options["config_path"] == "/config/mmsearch.toml"
    check = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", f["HEALTHCHECK"])
    assert check and check.group(1) == f["EXPOSE"] and required_scope("GET", check.group(2)) is None
    text = (DOCKER / name).read_text(encoding="utf-8")
    assert re.search(r'pip install "\.\[[^"]*\bserve\]"', text), "the image installs mmsearch[serve]"
    if name == "Dockerfile.cuda":
        assert options["device"] == "cuda"


def test_the_serve_extra_holds_the_web_stack_the_service_checks_for():
    extra = tomllib.loads((DOCKER.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    serve = {re.split(r"[<>=\[ ]", req, maxsplit=1)[0] for req in extra["optional-dependencies"]["serve"]}
    assert set(WEB_STACK.values()) <= serve


def test_the_compose_file_serves_the_qdrant_server_with_keys():
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text(encoding="utf-8"))
    qdrant, app = compose["services"]["qdrant"], compose["services"]["mmsearch"]
    command = app["command"]
    assert command[0] == "serve"
    options = parsed(command[1:])
    assert f"{options['port']}:{options['port']}" in app["ports"] and options["host"] == "0.0.0.0"
    assert options["workers"] > 1  # a Qdrant server takes several workers
    assert KEYS_ENV in app["environment"] and app["depends_on"]["qdrant"]["condition"] == "service_healthy"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in app["volumes"]}  # container path -> source
    config_source = mounts[options["config_path"]]
    config = parse_config(tomllib.loads((DOCKER / config_source).read_text(encoding="utf-8")), base_dir=DOCKER)
    assert config.store.backend == "server" and config.store.url == "http://qdrant:6333"
    assert "6333:6333" in qdrant["ports"]
    assert all(str(e.model).startswith("/models/") for e in config.encoders) and "/models" in mounts
    assert options["cf_path"].startswith("/data") and "/data" in mounts
    check = " ".join(app["healthcheck"]["test"])
    assert f"127.0.0.1:{options['port']}/readyz" in check
