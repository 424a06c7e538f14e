"""The index benchmark runs end to end on a few photos with the tiny CLIP, from Python and the CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mmsearch.bench.index import IndexBenchConfig, format_result, run
from mmsearch.cli import cli
from mmsearch.indexing.config import IndexSettings

pytest.importorskip("qdrant_edge", reason="qdrant-edge-py is not installed: pip install qdrant-edge-py==0.9.0")


def test_rounds_alternate_the_encoder_alone_and_the_pipeline(tiny_clip_dir):
    lines: list[str] = []
    settings = IndexSettings(batch_size=4, workers=2, device="cpu")
    cfg = IndexBenchConfig(items=8, model=tiny_clip_dir, image_size=32, rounds=2, index=settings)
    result = run(cfg, log=lines.append)
    assert (result.model, result.device, result.items) == ("clip-tiny.image", "cpu", 8)
    assert (result.batch_size, result.workers) == (4, 2)
    assert result.rounds == 2 and len(result.wall_ratios) == len(result.cpu_ratios) == 2
    assert result.ratio in result.wall_ratios and result.cpu_ratio in result.cpu_ratios
    assert result.raw_items_per_s > 0 and result.pipeline_items_per_s > 0 and 0 <= result.encoder_busy <= 1
    # raw, pipeline, raw, pipeline, raw
    steps = [line.split(":")[0] for line in lines if line.startswith(("raw encoder", "pipeline"))]
    assert steps == ["raw encoder", "pipeline", "raw encoder", "pipeline", "raw encoder"]
    table = format_result(result)
    assert "vs raw encoder" in table and "per CPU second" in table and "median of 2 round(s)" in table


def test_cli_prints_the_figures_as_json(tiny_clip_dir):
    args = ["bench", "index", "--items", "6", "--model", str(tiny_clip_dir), "--image-size", "32"]
    result = CliRunner().invoke(cli, [*args, "--batch-size", "3", "--workers", "2", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert (figures["items"], figures["batch_size"], figures["rounds"]) == (6, 3, 1)
    assert "vs raw encoder" in result.stderr and "generating 6 photos" in result.stderr


@pytest.mark.parametrize("command", ["index", "query", "store"])
def test_help_lists_every_option(command):
    expected = {
        "index": ["--items", "--model", "--image-size", "--rounds", "--batch-size", "--workers", "--threads"],
        "query": ["--items", "--queries", "--warmup", "--candidates", "--limit", "--users", "--threads", "--quantize"],
        "store": ["--items", "--dim", "--multi-items", "--multi-rows", "--queries", "--memory-items", "--hnsw-m"],
    }[command]
    result = CliRunner().invoke(cli, ["bench", command, "--help"])
    assert result.exit_code == 0, result.output
    for option in [*expected, "--json"]:
        assert option in result.output, option
    assert "see `python -m" not in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["index", "--items", "0"], "'--items': 0 is not in the range x>=1"),
        (["index", "--batch-size", "many"], "'--batch-size': 'many' is not a valid integer"),
        (["index", "--device", "tpu"], "'--device': 'tpu' is not one of 'auto', 'cpu', 'cuda'"),
        (["index", "--model", "no/such/folder"], "'--model': Directory 'no/such/folder' does not exist"),
        (["query", "--items", "10"], "'--items': 10 is not in the range x>=100"),
        (["query", "--quantize", "fp16"], "'--quantize': 'fp16' is not one of 'none', 'int8'"),
        (["store", "--hnsw-m", "2"], "'--hnsw-m': 2 is not in the range 4<=x<=128"),
        (["index", "--rounds=3", "--verbose"], "No such option '--verbose'"),
    ],
)
def test_a_bad_option_value_is_a_usage_error(args, needle):
    result = CliRunner().invoke(cli, ["bench", *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output


def test_a_model_without_an_image_tower_is_one_error_line(minilm_dir):
    args = ["bench", "index", "--items", "2", "--image-size", "32", "--model", str(minilm_dir), "--device", "cpu"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "embeds nothing" in errors[0]
