"""The store benchmark runs end to end on a tiny catalogue and its figures hang together."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mmsearch.bench.store import StoreBenchConfig, format_result, run
from mmsearch.cli import cli

pytest.importorskip("qdrant_edge", reason="qdrant-edge-py is not installed: pip install qdrant-edge-py==0.9.0")


def test_tiny_benchmark_figures(tmp_path) -> None:
    lines: list[str] = []
    result = run(
        StoreBenchConfig(items=300, dim=16, queries=8, memory_queries=4, batch=100, path=tmp_path), log=lines.append
    )
    edge, memory = result.backends
    assert (edge.backend, edge.items, edge.multi_items) == ("edge", 300, 30)
    assert (memory.backend, memory.items, memory.knn_queries) == ("memory", 300, 4)
    assert edge.recall_at_10 == 1.0  # 300 points stay under the indexing threshold: exact either way
    assert result.top10_agreement == 1.0
    assert edge.upsert_items_per_s > 0 and edge.knn_p95_ms >= edge.knn_p50_ms > 0
    assert any("optimize" in line for line in lines)
    table = format_result(result)
    assert table.splitlines()[1].split()[:3] == ["edge", "300", "30"]
    assert edge.disk_vector_bytes is not None and memory.disk_bytes_per_item is None
    # No `cf` vector: nothing was fitted, and the store adds one with the first CF fit. No
    # `bench.text.multi`: every item has one text, which its pooled vector serves.
    assert set(edge.disk_vector_bytes) == {"bench.text", "bench.image", "bench.image.multi"}
    assert edge.disk_bytes_per_item is not None
    assert edge.disk_bytes_per_item * 300 > sum(edge.disk_vector_bytes.values()) > 0
    assert "bytes per item on disk" in table


def test_cli_prints_the_table(tmp_path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "store",
            "--items",
            "200",
            "--dim",
            "8",
            "--queries",
            "3",
            "--memory-items",
            "0",
            "--path",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    assert ["backend", "items"] in [r[:2] for r in rows]
    assert ["edge", "200", "20"] in [r[:3] for r in rows]
    assert not any(r and r[0] == "memory" for r in rows)


def test_cli_hnsw_options_reach_the_config(tmp_path) -> None:
    args = ["--items", "200", "--dim", "8", "--queries", "2", "--memory-items", "0", "--path", str(tmp_path)]
    result = CliRunner().invoke(cli, ["bench", "store", *args, "--hnsw-m", "8", "--ef", "20", "--json"])
    assert result.exit_code == 0, result.output
    assert {"m": 8, "ef": 20, "ef_construct": 100}.items() <= json.loads(result.stdout)["config"]["hnsw"].items()
