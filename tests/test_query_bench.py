"""The query benchmark runs end to end on a small catalogue with the tiny test models."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mmsearch.bench.query import QueryBenchConfig, format_result, run
from mmsearch.cli import cli
from mmsearch.errors import ConfigError


def test_query_bench_small(tiny_clip_dir, minilm_dir, tmp_path):
    cfg = QueryBenchConfig(
        items=300,
        queries=3,
        warmup=1,
        candidates=20,
        users=20,
        cache=tmp_path,
        clip_model=tiny_clip_dir,
        text_model=minilm_dir,
        threads=1,
    )
    result = run(cfg)
    assert [r.kind for r in result.rows] == ["text", "image"]
    text, image = result.rows
    assert text.signals == ["clip-tiny.image", "clip-tiny.text", "minilm.text", "cf"]
    assert image.signals == ["clip-tiny.image", "clip-tiny.text", "cf"]
    for r in result.rows:
        assert r.knn_p50_ms > 0 and r.baseline_p50_ms > 0  # figures, never timed against each other here
        assert r.hybrid_p50_ms <= r.hybrid_p95_ms and r.candidates_p50 >= 20
        assert r.ratio > 0
    assert result.build_s is not None
    again = run(cfg)  # the store is reused from the cache
    assert again.build_s is None
    assert "ratio" in format_result(again) and "store reused" in format_result(again)


def test_cli_prints_the_figures_as_json(tiny_clip_dir, minilm_dir, tmp_path):
    args = ["--items", "200", "--queries", "2", "--warmup", "0", "--candidates", "10", "--users", "10"]
    models = ["--clip-model", str(tiny_clip_dir), "--text-model", str(minilm_dir)]
    result = CliRunner().invoke(cli, ["bench", "query", *args, *models, "--cache", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert [r["kind"] for r in figures["rows"]] == ["text", "image"] and figures["config"]["items"] == 200
    assert all(r["ratio"] > 0 for r in figures["rows"])
    assert "store built in" in result.stderr and "ratio" in result.stderr  # progress and the table


def test_a_clip_model_without_both_towers_is_a_config_error(minilm_dir, tmp_path):
    cfg = QueryBenchConfig(items=100, cache=tmp_path, clip_model=minilm_dir, text_model=minilm_dir)
    with pytest.raises(ConfigError, match="needs an image and a text tower"):
        run(cfg)
