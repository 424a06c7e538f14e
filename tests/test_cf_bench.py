"""`mmsearch bench cf` on a tiny log: the rows, the ratios to ALS, the synthetic log's long tail."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from mmsearch.bench.cf import CFBenchConfig, format_result, power_law_log, run
from mmsearch.cli import cli


def test_power_law_log_has_a_long_tail_and_topics() -> None:
    log = power_law_log(2000, 1000, per_user=20, zipf=1.0, seed=0)
    counts = np.sort(log.item_counts())[::-1]
    assert counts[:20].sum() > 0.1 * len(log)  # 1% of the items hold over 10% of the interactions
    assert counts[0] > 50 * np.median(counts)  # the head is far above the typical item
    assert 15 < len(log) / log.n_users < 30
    again = power_law_log(2000, 1000, per_user=20, zipf=1.0, seed=0)
    assert np.array_equal(again.items, log.items)  # seeded


def test_bench_cf_measures_each_model_against_als() -> None:
    result = run(CFBenchConfig(items=(400,), per_user=15, eval_users=100, exact_max_items=400))
    names = [r.model for r in result.rows]
    assert names == ["als", "ease sparse", "ease exact", "popular"]
    assert all(r.interactions > 0 and 0 <= r.ndcg10 <= 1 for r in result.rows)
    ease = {r.model: r for r in result.rows}["ease exact"]
    assert ease.nnz > 0 and ease.seconds > 0
    table = format_result(result)
    assert f"| {result.rows[0].items:,} |" in table and "1.0x" in table and "ease sparse" in table


def test_bench_cf_command_prints_json() -> None:
    args = ["bench", "cf", "--items", "300", "--per-user", "10", "--eval-users", "50", "--exact-max-items", "0"]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["model"] for r in data["rows"]] == ["als", "ease sparse", "popular"]
    bad = CliRunner().invoke(cli, ["bench", "cf", "--items", "5"])
    assert bad.exit_code == 2 and "--items" in bad.output
