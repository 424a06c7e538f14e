"""The query benchmark runs end to end on a small catalogue with the tiny test models."""

from __future__ import annotations

from mmsearch.bench.query import QueryBenchConfig, format_result, run


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
    assert text.signals == ["all-MiniLM-L6-v2.text", "clip-tiny.image", "clip-tiny.text", "cf"]
    assert image.signals == ["clip-tiny.image", "clip-tiny.text", "cf"]
    for r in result.rows:
        assert 0 < r.knn_p50_ms <= r.baseline_p50_ms * 1.5
        assert r.hybrid_p50_ms <= r.hybrid_p95_ms and r.candidates_p50 >= 20
        assert r.ratio > 0
    assert result.build_s is not None
    again = run(cfg)  # the store is reused from the cache
    assert again.build_s is None
    assert "ratio" in format_result(again) and "store reused" in format_result(again)
