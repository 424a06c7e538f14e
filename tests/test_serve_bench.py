"""The serving benchmark runs end to end on a small store with the tiny models: a real server, no errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from mmsearch.bench.query import QueryBenchConfig
from mmsearch.bench.serve import KINDS, ServeBenchConfig, format_result, run
from mmsearch.cli import cli
from mmsearch.storage import open_store


def test_serve_bench_small(tiny_clip_dir, minilm_dir, tmp_path):
    query = QueryBenchConfig(
        items=300, candidates=20, users=20, cache=tmp_path, clip_model=tiny_clip_dir, text_model=minilm_dir, threads=1
    )
    result = run(ServeBenchConfig(query=query, requests=3, warmup=1, clients=(1, 3), upserts=12, rounds=2))
    assert {(r.mode, r.kind, r.clients) for r in result.rows} == {
        (mode, kind, clients) for mode in ("in-process", "http") for kind in KINDS for clients in (1, 3)
    }
    for r in result.rows:
        assert r.requests == 6 and r.errors == 0, r  # 3 per round, pooled
        assert 0 < r.p50_ms <= r.p95_ms <= r.p99_ms and r.rps > 0
    w = result.writes
    assert (w.upserted, w.indexed, w.write_errors, w.lost, w.found, w.removed) == (12, 12, 0, 0, 12, 12)
    assert w.after == w.before + 12 and w.searches > 0 and w.search_errors == 0
    table = format_result(result)
    assert "in-process req/s" in table and "lost 0" in table and table.count(" | ") >= 12
    assert result.build_s is not None and result.server_start_s > 0
    assert list(result.machine["load_avg_1m"]) == ["in-process 1", "HTTP 1", "in-process 2", "HTTP 2", "end"]
    folder = next((tmp_path / "stores").glob("bench-*/"))
    with open_store({"path": tmp_path / "stores", "collection": folder.name}) as store:
        assert store.count() == w.before  # the upserted items were deleted again


def test_cli_prints_the_figures_as_json(tiny_clip_dir, minilm_dir, tmp_path):
    args = ["--items", "150", "--requests", "2", "--warmup", "0", "--clients", "2", "--upserts", "0", "--users", "10"]
    models = ["--clip-model", str(tiny_clip_dir), "--text-model", str(minilm_dir), "--cache", str(tmp_path)]
    result = CliRunner().invoke(cli, ["bench", "serve", *args, *models, "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert len(figures["rows"]) == 6 and figures["writes"] is None and figures["config"]["clients"] == [2]
    assert all(r["errors"] == 0 for r in figures["rows"]) and "ready on http://127.0.0.1:" in result.stderr
