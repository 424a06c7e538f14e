"""Store settings, filters, lazy imports and missing dependencies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from mmsearch.errors import ConfigError, DependencyError, InvalidFilterError
from mmsearch.storage import Filter, HasItemId, Match, MatchAny, Range, StoreSettings, load_settings, where
from mmsearch.storage.settings import DEFAULT_PATH


def test_defaults_are_an_embedded_edge_store() -> None:
    s = load_settings()
    assert s.backend == "edge" and s.data_path == DEFAULT_PATH == Path("mmsearch-data")
    assert s.hnsw.m == 16 and s.quantization == "none" and s.index_multivectors is False
    assert load_settings({"backend": "memory"}).data_path is None


def test_overrides_and_round_trip_keep_the_api_key() -> None:
    s = load_settings({"backend": "server", "url": "http://q:6333", "api_key": "s3cr3t"}, shard_number=3)
    assert s.shard_number == 3 and s.api_key.get_secret_value() == "s3cr3t"
    assert load_settings(s, replication_factor=2).api_key.get_secret_value() == "s3cr3t"
    assert "s3cr3t" not in repr(s)


@pytest.mark.parametrize(
    "fields,needle",
    [
        ({"backend": "edge", "colour": 1}, "colour"),
        ({"backend": "cloud"}, "cloud"),
        ({"backend": "server"}, "needs a url"),
        ({"backend": "server", "url": "http://x", "path": "p"}, "not a path"),
        ({"backend": "edge", "url": "http://x"}, "url only apply"),
        ({"backend": "memory", "shard_number": 2}, "shard_number only apply"),
        ({"collection": "a/b"}, "'a/b'"),
        ({"quantization": "pq"}, "pq"),
        ({"hnsw": {"m": 2}}, "m"),
        ({"hnsw": {"ef_search": 3}}, "ef_search"),
        ({"payload_indexes": {"color": "string"}}, "string"),
    ],
)
def test_bad_settings_name_the_bad_value(fields: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(fields)
    assert needle in str(e.value)


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        StoreSettings().backend = "memory"  # type: ignore[misc]


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda: Match("color", float("inf")), "inf"),  # floats match exactly, but only finite ones
        (lambda: Match("color", [1.5]), "is a list"),
        (lambda: MatchAny("color", (True, 1)), "mix types"),
        (lambda: Match("", "x"), "''"),
        (lambda: MatchAny("color", ()), "non-empty"),
        (lambda: MatchAny("color", "red"), "'red'"),
        (lambda: MatchAny("color", ("red", 1)), "mix types"),
        (lambda: Range("price"), "no bounds"),
        (lambda: Range("price", gt=float("nan")), "nan"),
        (lambda: Range("price", lt="3"), "'3'"),
        (lambda: HasItemId("sku-1"), "'sku-1'"),
        (lambda: Filter(), "empty filter"),
        (lambda: Filter(must=("color",)), "'color'"),
    ],
)
def test_bad_filters(make, needle: str) -> None:
    with pytest.raises(InvalidFilterError) as e:
        make()
    assert needle in str(e.value)


def test_filter_shorthands() -> None:
    assert where(color="red", n=2) == Filter(must=(Match("color", "red"), Match("n", 2)))
    f = Filter(must=Match("a", 1))  # a single condition is accepted as a one-tuple
    assert f.must == (Match("a", 1),)


def test_importing_storage_loads_no_engine() -> None:
    code = textwrap.dedent("""
        import sys
        import mmsearch.storage
        print(",".join(m for m in ("qdrant_client", "qdrant_edge") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    "backend,module,needle",
    [
        ("edge", "qdrant_edge", "pip install qdrant-edge-py"),
        ("memory", "qdrant_client", "pip install 'qdrant-client"),
    ],
)
def test_missing_engine_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, backend: str, module: str, needle: str
) -> None:
    from mmsearch.storage import open_store

    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(DependencyError, match=needle):
        open_store(
            {"backend": backend, "path": tmp_path / "s"} if backend == "edge" else {"backend": backend}, encoders=[]
        )


def test_docker_files_pin_one_qdrant_image() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    from tests.storage_support import QDRANT_IMAGE

    docker = Path(__file__).resolve().parents[1] / "docker"
    single = yaml.safe_load((docker / "docker-compose.yml").read_text())
    cluster = yaml.safe_load((docker / "docker-compose.cluster.yml").read_text())
    assert single["services"]["qdrant"]["image"] == QDRANT_IMAGE
    nodes = {k: v for k, v in cluster["services"].items() if k.startswith("qdrant-node-")}
    assert len(nodes) == 3 and {v["image"] for v in nodes.values()} == {QDRANT_IMAGE}
    assert all(v["environment"]["QDRANT__CLUSTER__ENABLED"] == "true" for v in nodes.values())
    # The images install the project, so the Edge pin is pyproject's one copy.
    project = tomllib.loads((docker.parent / "pyproject.toml").read_text())["project"]
    assert "qdrant-edge-py==0.9.0" in project["dependencies"]
    for name in ("Dockerfile.cpu", "Dockerfile.cuda"):
        text = (docker / name).read_text()
        assert 'pip install ".[' in text and ":latest" not in text and "qdrant-edge-py" not in text
    assert "onnxruntime-gpu" not in (docker / "Dockerfile.cpu").read_text()
    assert '".[gpu,serve]"' in (docker / "Dockerfile.cuda").read_text()
