"""Tuning CF settings on validation (`mmsearch.eval.tuning`, `tune_cf`, `cf fit --tune`): optima, budgets, records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mmsearch.cf import ALSConfig, EASEConfig, cf_config
from mmsearch.cf.interactions import Interactions
from mmsearch.cli import cli
from mmsearch.errors import ConfigError, UnknownNameError
from mmsearch.eval.runner import tune_cf
from mmsearch.eval.tuning import SPACES, search_space, tune_model, with_param
from mmsearch.storage import Item, open_store
from tests.storage_support import CLIP_TEXT, unit_rows


def _bowl(config) -> float:  # type: ignore[no-untyped-def]
    """A score peaking at regularization 20, alpha 10 and binary weighting, whatever the rest."""
    return (
        -abs(np.log(config.regularization / 20.0)) - abs(np.log(config.alpha / 10.0)) - (config.weighting != "binary")
    )


def test_coordinate_search_finds_the_optimum_and_records_every_setting() -> None:
    start = ALSConfig(regularization=1.0, alpha=1.0, weighting="linear")
    best, report = tune_model(start, _bowl, name="als", metric="score", budget_s=60)
    assert (best.regularization, best.alpha, best.weighting) == (20.0, 10.0, "binary")
    assert report.best["regularization"] == 20.0 and report.start["regularization"] == 1.0
    assert report.trials[0].params == {} and report.value == pytest.approx(_bowl(best))
    keys = [json.dumps(t.params, sort_keys=True) for t in report.trials]
    assert len(keys) == len(set(keys))  # no setting is scored twice
    assert not report.exhausted and "regularization=20.0" in report.summary()
    assert report.searched["alpha"] == list(SPACES["als"]["alpha"])


def test_ties_keep_the_current_setting() -> None:
    best, report = tune_model(ALSConfig(), lambda c: 1.0, name="als", metric="score", budget_s=60)
    assert best == ALSConfig() and report.best == report.start


def test_the_budget_stops_the_search_after_the_start() -> None:
    best, report = tune_model(ALSConfig(regularization=1.0), _bowl, name="als", metric="score", budget_s=1e-9)
    assert best == ALSConfig(regularization=1.0) and len(report.trials) == 1 and report.exhausted
    assert "budget spent" in report.summary()
    with pytest.raises(ConfigError, match="budget"):
        tune_model(ALSConfig(), _bowl, name="als", metric="score", budget_s=0)


def test_fixed_parameters_and_side_weights() -> None:
    assert "factors" not in search_space(ALSConfig(), fixed=("factors",))
    space = search_space(EASEConfig(side={"genres": 2.0}))
    assert next(iter(space)) == "side:genres" and "neighbors" in space
    assert with_param(EASEConfig(side={"genres": 2.0}), "side:genres", 7.0).side == {"genres": 7.0}
    with pytest.raises(UnknownNameError, match="'alpha'"):
        search_space(EASEConfig(), fixed=("alpha",))


def _topic_log() -> Interactions:
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(60):
        for j in range(30):
            if rng.random() < (0.5 if j % 3 == u % 3 else 0.03):
                users.append(f"u{u}")
                items.append(f"i{j:02d}")
    return Interactions.from_arrays(users, items)


def test_tune_cf_holds_out_validation_and_improves_on_a_bad_start() -> None:
    log = _topic_log()
    start = cf_config("ease", regularization=2000.0, neighbors=64)
    best, report = tune_cf(log, start, budget_s=30, metric="ndcg@5")
    assert report.metric == "ndcg@5" and report.value >= report.trials[0].value
    assert best.regularization < 2000.0  # the penalty that flattens this small log is dropped
    with pytest.raises(ConfigError, match="holdout"):
        tune_cf(log, start, holdout=1.0)


def test_cf_fit_tune_from_the_command_line(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    with open_store({"path": tmp_path / "data", "collection": "c"}, encoders=[CLIP_TEXT]) as store:
        store.upsert([Item(f"i{j:02d}", {"clip.text": unit_rows(rng, 1, 8)[0]}) for j in range(30)])
    log = _topic_log()
    lines = ["user,item"] + [f"{u},{i}" for u, i, _, _ in (log.row(r) for r in range(len(log)))]
    (tmp_path / "log.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["cf", "fit", str(tmp_path / "log.csv"), "--store", str(tmp_path / "data"), "--collection", "c"]
    result = CliRunner().invoke(cli, [*args, "--algorithm", "ease", "--tune", "--tune-budget", "10", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["algorithm"] == "ease" and data["tuning"]["trials"] and data["tuning"]["metric"] == "ndcg@10"
    assert data["items_written"] == 30
    text = CliRunner().invoke(cli, [*args, "--algorithm", "als", "--tune", "--tune-budget", "5"])
    assert text.exit_code == 0, text.output
    assert text.stdout.startswith("tuned als:")
    als = CliRunner().invoke(cli, [*args, "--algorithm", "als", "--tune", "--tune-budget", "3", "--json"])
    searched = json.loads(als.stdout)["tuning"]["searched"]
    assert "factors" not in searched and "regularization" in searched  # the store's cf vector fixes factors
