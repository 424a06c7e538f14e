"""Builders shared by the storage tests: hand-made encoder specs, a small catalogue, store openers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexers.protocol import EncoderSpec
from mmsearch.storage import Item, Store, open_store

FP_IMG = "a" * 64
FP_TXT = "b" * 64
FP_BERT = "c" * 64
CLIP_IMAGE = EncoderSpec("clip", "clip", "image", 8, "cosine", FP_IMG)
CLIP_TEXT = EncoderSpec("clip", "clip", "text", 8, "cosine", FP_TXT)
MINILM = EncoderSpec("minilm", "bert", "text", 6, "cosine", FP_BERT)
ENCODERS = [CLIP_IMAGE, CLIP_TEXT]
CF_DIM = 4
COLORS = ("red", "green", "blue")
QDRANT_IMAGE = "qdrant/qdrant:v1.20.0"  # the same pin as docker/docker-compose*.yml


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def catalogue(n: int = 30, seed: int = 0) -> list[Item]:
    """Items `i0..i{n-1}`: 1-3 photos, one text, a cf vector, color/price/tags payload."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        items.append(
            Item(
                id=f"i{i}",
                vectors={
                    "clip.image": unit_rows(rng, 1 + i % 3, 8),
                    "clip.text": unit_rows(rng, 1, 8)[0],
                    "cf": rng.standard_normal(CF_DIM).astype(np.float32),
                },
                payload={"color": COLORS[i % 3], "price": float(i), "tags": [f"t{i % 2}", "all"], "rank": i},
            )
        )
    return items


def expected_pooled(rows: np.ndarray) -> np.ndarray:
    mean = np.asarray(rows, np.float64).reshape(-1, rows.shape[-1]).mean(axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


def maxsim(query: np.ndarray, doc: np.ndarray) -> float:
    """Sum over query rows of the best cosine against the document rows."""
    q = query / np.linalg.norm(query, axis=1, keepdims=True)
    d = doc / np.linalg.norm(doc, axis=1, keepdims=True)
    return float((q @ d.T).max(axis=1).sum())


def qdrant_server_url() -> Iterator[str]:
    """A Qdrant server from testcontainers, or a skip saying why there is none."""
    try:
        from testcontainers.qdrant import QdrantContainer
    except ImportError:
        pytest.skip("testcontainers[qdrant] is not installed: pip install 'testcontainers[qdrant]'")
    try:
        import docker

        docker.from_env().ping()
    except Exception as e:  # noqa: BLE001 - any failure to reach the engine means: no Docker here
        pytest.skip(f"no Docker engine answers ({type(e).__name__}: {e})")
    with QdrantContainer(QDRANT_IMAGE) as qdrant:
        yield f"http://{qdrant.get_container_host_ip()}:{qdrant.get_exposed_port(6333)}"


class Opener:
    """Opens stores of one backend kind in a test's folder (or server) and closes them at the end."""

    def __init__(self, kind: str, tmp_path: Path, server_url: str | None = None) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.server_url = server_url
        self.collection = f"t{uuid.uuid4().hex[:12]}"
        self.opened: list[Store] = []

    @property
    def reopenable(self) -> bool:
        return self.kind != "memory"

    def settings(self, **overrides: Any) -> dict[str, Any]:
        base: dict[str, Any] = {"collection": self.collection, "cf_dim": CF_DIM, "optimize_after": None}
        if self.kind == "edge":
            base.update(backend="edge", path=self.tmp_path / "edge")
        elif self.kind == "memory":
            base.update(backend="memory")
        elif self.kind == "memory-path":
            base.update(backend="memory", path=self.tmp_path / "local")
        elif self.kind == "server":
            base.update(backend="server", url=self.server_url)
        return {**base, **overrides}

    def __call__(self, encoders: list[EncoderSpec] | None = ENCODERS, **overrides: Any) -> Store:
        store = open_store(self.settings(**overrides), encoders=encoders)
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        for s in self.opened:
            s.close()


def make_opener_fixture(kinds: list[Any]) -> Callable[..., Iterator[Opener]]:
    """A parametrised fixture giving an `Opener` per backend kind."""

    @pytest.fixture(params=kinds)
    def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
        url = request.getfixturevalue("qdrant_url") if request.param == "server" else None
        op = Opener(request.param, tmp_path, url)
        yield op
        op.close_all()

    return opener
