"""The scale benchmark builds the default schema, resumes an interrupted build, and its figures hang together."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mmsearch.bench.scale import Catalogue, ScaleBenchConfig, format_result, run, store_settings
from mmsearch.cli import cli
from mmsearch.storage import open_store

pytest.importorskip("qdrant_edge", reason="qdrant-edge-py is not installed: pip install qdrant-edge-py==0.9.0")


class _StopError(Exception):
    pass


def test_an_interrupted_build_resumes_and_the_figures_hang_together(tmp_path) -> None:
    cfg = ScaleBenchConfig(items=1_500, batch=500, queries=6, cache=tmp_path)

    def stop_after_first_batch(line: str) -> None:
        if line.startswith("upserted 500 "):
            raise _StopError

    with pytest.raises(_StopError):
        run(cfg, log=stop_after_first_batch)
    with open_store(store_settings(cfg)) as store:
        assert store.count() == 500
    lines: list[str] = []
    figures = run(cfg, log=lines.append)
    assert figures.resumed and figures.items == 1_500
    assert not any(line.startswith("upserted 500 ") for line in lines)  # batch 0 is not written again
    with open_store(store_settings(cfg)) as store:
        assert store.count() == 1_500
        item = store.retrieve(["item7"], with_vectors=True)[0]
        assert {"clip.text", "minilm.text"} <= item.vectors.keys()
    assert 0 < figures.multi_items < 1_500 * 0.2
    assert 0.0 <= figures.recall_at_10 <= 1.0
    assert list(figures.ef_sweep) == ["10", "16", "32", "64"]
    assert all(0.0 <= r <= 1.0 and ms > 0 for r, ms in figures.ef_sweep.values())
    assert figures.hybrid_signals == ["clip.image", "clip.text", "minilm.text", "cf"]
    assert figures.knn_p95_ms >= figures.knn_p50_ms > 0 and figures.hybrid_p50_ms > 0
    assert figures.build_peak_rss >= figures.build_peak_anon > 0
    assert {"clip.image", "clip.image.multi", "cf"} <= figures.disk_vector_bytes.keys()
    assert figures.disk_bytes > sum(figures.disk_vector_bytes.values())
    table = format_result(figures, cfg)
    assert "recall@10" in table and "1,500" in table
    # A third run reuses the built store.
    again: list[str] = []
    run(cfg, log=again.append)
    assert not any("upserted" in line or "optimize" in line for line in again)


def test_catalogue_batches_are_a_function_of_the_seed_and_the_batch_number(tmp_path) -> None:
    cfg = ScaleBenchConfig(items=2_000, batch=500, cache=tmp_path)
    a, b = Catalogue(cfg).batch(2), Catalogue(cfg).batch(2)
    assert [i.id for i in a] == [f"item{k}" for k in range(1_000, 1_500)]
    assert all((x.vectors.keys() == y.vectors.keys()) for x, y in zip(a, b, strict=True))
    assert all(
        float(abs(x.vectors["clip.text"] - y.vectors["clip.text"]).max()) == 0 for x, y in zip(a, b, strict=True)
    )
    other = Catalogue(cfg.model_copy(update={"seed": 1})).batch(2)
    assert [i.id for i in other] == [i.id for i in a]
    assert any(
        float(abs(x.vectors["clip.text"] - y.vectors["clip.text"]).max()) > 0 for x, y in zip(a, other, strict=True)
    )


def test_cli_prints_json(tmp_path) -> None:
    args = ["bench", "scale", "--items", "1000", "--batch", "500", "--queries", "3", "--cache", str(tmp_path), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["items"] == 1000 and figures["hybrid_ratio"] == pytest.approx(
        figures["hybrid_p50_ms"] / figures["knn_p50_ms"]
    )
