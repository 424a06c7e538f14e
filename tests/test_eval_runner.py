"""Evaluation runs on synthetic data whose right answers are known.

Items belong to topics; every user interacted with every item of one topic (a checkerboard), and
item vectors cluster by topic. Once a user's training (and, for test, validation) items are
excluded, the only same-topic candidates left are exactly their held-out items, so a content
profile must rank them first: nDCG@k = 1 for every user.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from mmsearch.cf import ALSConfig, BPRConfig
from mmsearch.cf.interactions import Interactions
from mmsearch.errors import ConfigError, InputError, UnknownNameError
from mmsearch.eval import runner as runner_module
from mmsearch.eval.content import ItemVectors
from mmsearch.eval.metrics import evaluate
from mmsearch.eval.plot import PALETTE, Panel, duplicate_series, nice_ceiling
from mmsearch.eval.report import format_report, markdown_table, to_json, write_outputs
from mmsearch.eval.runner import (
    EvalSettings,
    candidate_mask,
    compare_paired,
    evaluate_split,
    fusion_spec,
    make_split,
    rank,
    run_eval,
    tune_fusion,
)
from mmsearch.eval.splits import Split, cold_item_split, random_split
from mmsearch.eval.strategies import (
    CFStrategy,
    FusionSpec,
    PopularStrategy,
    RandomStrategy,
    content_strategies,
    engine_ranking_scores,
    user_profiles,
)
from mmsearch.query import fusion

N_TOPICS, ITEMS_PER_TOPIC, USERS_PER_TOPIC, DIM = 2, 12, 10, 8
SMALL_CF = (ALSConfig(factors=4, iterations=10), BPRConfig(factors=4, iterations=50))


def topic_log() -> Interactions:
    """User `t-u` interacted with every item `t-i` of its topic t (ids sort topic by topic)."""
    users, items = [], []
    for t in range(N_TOPICS):
        for u in range(USERS_PER_TOPIC):
            for i in range(ITEMS_PER_TOPIC):
                users.append(f"{t}-{u:02d}")
                items.append(f"{t}-{i:02d}")
    return Interactions.from_arrays(users, items)


def topic_of_items(table: Interactions) -> np.ndarray:
    return np.array([int(i.split("-")[0]) for i in table.item_ids])


def topic_vectors(table: Interactions, model: str, modality: str, seed: int, family: str | None = None) -> ItemVectors:
    """Each item near its topic's axis (small noise), unit rows."""
    rng = np.random.default_rng(seed)
    vectors = np.eye(DIM)[topic_of_items(table)] + 0.05 * rng.standard_normal((table.n_items, DIM))
    return ItemVectors(model, modality, vectors, np.ones(table.n_items, dtype=bool), family)  # type: ignore[arg-type]


def settings(**overrides: object) -> EvalSettings:
    base: dict[str, object] = {"cf": SMALL_CF, "ks": (5, 10), "tune_metric": "ndcg@5"}
    base.update(overrides)
    return EvalSettings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def log() -> Interactions:
    return topic_log()


@pytest.fixture(scope="module")
def text_vectors(log: Interactions) -> ItemVectors:
    return topic_vectors(log, "emb", "text", seed=1)


@pytest.fixture(scope="module")
def random_result(log: Interactions, text_vectors: ItemVectors):  # type: ignore[no-untyped-def]
    return evaluate_split(random_split(log, seed=3), [text_vectors], settings(tune=True))


class FixedStrategy:
    """Given scores (n_users, n_items), for known-answer tests of fusion and tuning."""

    kind = "content"
    description = "fixed scores"

    def __init__(self, name: str, scores: np.ndarray) -> None:
        self.name = name
        self.matrix = np.asarray(scores, dtype=np.float64)

    def scores(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        return np.where(candidates, self.matrix[users], np.nan)


# ----------------------------------------------------------------------- profiles and content


def test_user_profile_is_the_renormalised_mean_of_train_items() -> None:
    table = Interactions.from_arrays(["a", "a", "b"], ["x", "y", "y"])  # c has no interaction
    table = table.align(user_ids=["a", "b", "c"])[0]
    vectors = ItemVectors("m", "text", np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([True, True]))
    profiles = user_profiles(table, vectors)
    np.testing.assert_allclose(profiles[0], [math.sqrt(0.5), math.sqrt(0.5)], rtol=1e-6)
    np.testing.assert_allclose(profiles[1], [0.0, 1.0], rtol=1e-6)
    assert np.isnan(profiles[2]).all()  # no training item: no profile, not a zero vector


def test_items_without_the_modality_are_left_out_of_profiles_and_scores() -> None:
    table = Interactions.from_arrays(["a", "a"], ["x", "y"])
    vectors = ItemVectors("m", "image", np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([True, False]))
    (strategy,) = content_strategies(table, [vectors])
    np.testing.assert_allclose(user_profiles(table, vectors)[0], [1.0, 0.0])  # y has no image: not averaged in
    scores = strategy.scores(np.array([0]), np.ones((1, 2), dtype=bool))
    assert scores[0, 0] == pytest.approx(1.0) and np.isnan(scores[0, 1])


def test_image_and_text_of_one_model_give_the_five_study_techniques(log: Interactions) -> None:
    image, text = topic_vectors(log, "clip", "image", 1, "clip"), topic_vectors(log, "clip", "text", 2, "clip")
    names = [s.name for s in content_strategies(log, [image, text])]
    assert names == ["clip.image", "clip.text", "clip.text-image", "clip.image-text", "clip.mixed"]
    # Two models in different spaces are never crossed.
    other = topic_vectors(log, "bert", "text", 3, "bert")
    assert [s.name for s in content_strategies(log, [image, other])] == ["clip.image", "bert.text"]
    # The engine's rule decides whether one model's towers share a space (CLIP's do), not their dims.
    a, b = topic_vectors(log, "m", "image", 1, "resnet"), topic_vectors(log, "m", "text", 2, "bert")
    assert [s.name for s in content_strategies(log, [a, b])] == ["m.image", "m.text"]


def test_mixed_technique_averages_text_and_image() -> None:
    table = Interactions.from_arrays(["a"], ["x"])
    table = table.align(item_ids=["x", "y"])[0]
    text = ItemVectors("clip", "text", np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), [True, True], "clip")
    image = ItemVectors("clip", "image", np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]), [True, False], "clip")
    mixed = {s.name: s for s in content_strategies(table, [image, text])}["clip.mixed"]
    np.testing.assert_allclose(mixed.item_vectors[0], [math.sqrt(0.5), 0.0, math.sqrt(0.5)], rtol=1e-6)
    np.testing.assert_allclose(mixed.item_vectors[1], [0.0, 1.0, 0.0])  # no image: the text alone
    np.testing.assert_allclose(mixed.user_vectors[0], [math.sqrt(0.5), 0.0, math.sqrt(0.5)], rtol=1e-6)


def test_item_vectors_are_checked() -> None:
    with pytest.raises(InputError, match="row 1"):
        ItemVectors("m", "text", np.array([[1.0, 0.0], [0.0, 0.0]]), [True, True])
    with pytest.raises(ConfigError, match="'sound'"):
        ItemVectors("m", "sound", np.eye(2), [True, True])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'a.b'"):
        ItemVectors("a.b", "text", np.eye(2), [True, True])


# ----------------------------------------------------------------------- candidates and ranking


def test_candidates_exclude_known_interactions_and_keep_cold_items_only_when_asked() -> None:
    table = Interactions.from_arrays(["u"] * 3 + ["v"], ["a", "b", "c", "d"])
    split = Split(
        "cold-items",
        table.select([0, 3]),  # train: u-a, v-d
        table.select([1]),  # validation: u-b
        table.select([2]),  # test: u-c
    )
    users = np.array([0])
    assert candidate_mask(split, "validation", users, cold_only=False).tolist() == [[False, True, True, True]]
    assert candidate_mask(split, "test", users, cold_only=False).tolist() == [[False, False, True, True]]
    # Cold only: items without a training interaction (b, c); d is warm though u never saw it.
    assert candidate_mask(split, "validation", users, cold_only=True).tolist() == [[False, True, True, False]]
    with pytest.raises(UnknownNameError, match="'train'"):
        candidate_mask(split, "train", users, cold_only=False)


def test_rankings_do_not_depend_on_the_user_block_size(log: Interactions) -> None:
    split = random_split(log, seed=1)
    legs = [RandomStrategy(log.n_items, log.n_users, seed=4), PopularStrategy.from_train(split.train)]
    users = np.arange(log.n_users)

    def candidates(u: np.ndarray) -> np.ndarray:
        return candidate_mask(split, "test", u, cold_only=False)

    one, _ = rank(users, candidates, 7, legs, chunk_users=1)
    many, _ = rank(users, candidates, 7, legs, chunk_users=64)
    for name in ("random", "popular"):
        np.testing.assert_array_equal(one[name], many[name])


def test_cf_scores_are_nan_for_items_and_users_the_model_never_saw(log: Interactions) -> None:
    from mmsearch.cf import fit

    split = cold_item_split(log, seed=0)
    model, _ = fit(split.train, SMALL_CF[0])
    strategy = CFStrategy.from_model(model, log.user_ids, log.item_ids)
    scores = strategy.scores(np.arange(log.n_users), np.ones((log.n_users, log.n_items), dtype=bool))
    cold = split.cold_items
    assert len(cold) > 0
    assert np.isnan(scores[:, cold]).all()
    warm = np.setdiff1d(np.arange(log.n_items), cold)
    assert np.isfinite(scores[:, warm]).all()


# ----------------------------------------------------------------------- fusion


def test_hybrid_scores_are_the_engines_fusion_over_each_users_candidates() -> None:
    rng = np.random.default_rng(0)
    cf, content = rng.random((3, 9)), rng.random((3, 9))
    cf[:, 7:] = np.nan  # cold items: CF has no score
    candidates = rng.random((3, 9)) > 0.3
    spec = FusionSpec((0.7, 0.3), "wsum", "minmax", depth=None)
    fused = engine_ranking_scores([cf, content], candidates, spec)
    for u in range(3):
        cols = np.flatnonzero(candidates[u])
        reference = fusion.weighted_sum(np.column_stack([cf[u, cols], content[u, cols]]), [0.7, 0.3])
        np.testing.assert_allclose(fused[u, cols], reference.scores)
        assert np.isnan(fused[u, ~candidates[u]]).all()
    # A cold candidate is scored by content alone (weights renormalised), not punished with 0.
    u = int(np.flatnonzero(candidates[:, 8])[0])
    cols = np.flatnonzero(candidates[u])
    content_norm = fusion.normalize(content[u, cols])
    assert fused[u, 8] == pytest.approx(content_norm[list(cols).index(8)])


def test_fusion_pools_each_legs_best_candidates_like_the_query_engine() -> None:
    cf = np.array([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    content = np.array([[0.0, 0.1, 0.2, 0.3, 0.4, 0.5]])
    candidates = np.ones((1, 6), dtype=bool)
    spec = FusionSpec((0.5, 0.5), "wsum", "minmax", depth=2)
    fused = engine_ranking_scores([cf, content], candidates, spec)
    pool = [0, 1, 4, 5]  # the best two of each leg; items 2 and 3 are in neither list
    assert np.isnan(fused[0, [2, 3]]).all()
    reference = fusion.weighted_sum(np.column_stack([cf[0, pool], content[0, pool]]), [0.5, 0.5])
    np.testing.assert_allclose(fused[0, pool], reference.scores)  # normalised over the pool only
    deeper = engine_ranking_scores([cf, content], candidates, spec, limit=3)  # depth = max(candidates, limit)
    assert np.isfinite(deeper[0]).sum() == 6


def test_a_leg_of_weight_0_takes_no_part_and_a_sparse_leg_pools_what_it_retrieves() -> None:
    cf = np.array([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    content = np.array([[0.0, 0.1, 0.2, 0.3, 0.4, 0.5]])
    candidates = np.ones((1, 6), dtype=bool)
    alone = engine_ranking_scores([cf, content], candidates, FusionSpec((1.0, 0.0), depth=2))
    assert np.flatnonzero(np.isfinite(alone[0])).tolist() == [0, 1]  # as if the signal were not asked for
    reach = np.array([[False, True, True, True, True, True]])  # item 0 shares no index with the history
    sparse = engine_ranking_scores(
        [cf, content], candidates, FusionSpec((0.5, 0.5), depth=2), retrievable=[reach, None]
    )
    assert np.flatnonzero(np.isfinite(sparse[0])).tolist() == [1, 2, 4, 5]


def test_rrf_weights_average_one_as_the_engine_sends_them() -> None:
    spec = FusionSpec((0.5, 0.5), "rrf", depth=None)
    np.testing.assert_allclose(fusion.engine_weights(spec.weights, "rrf"), [1.0, 1.0])  # equal: plain RRF
    np.testing.assert_allclose(fusion.engine_weights((3.0, 1.0), "wsum"), [0.75, 0.25])
    a, b = np.array([[3.0, 2.0, 1.0]]), np.array([[1.0, 3.0, 2.0]])
    fused = engine_ranking_scores([a, b], np.ones((1, 3), dtype=bool), spec)
    plain = [1 / 60 + 1 / 62, 1 / 61 + 1 / 60, 1 / 62 + 1 / 61]  # 1 / (k + p), p the 0-based position
    np.testing.assert_allclose(fused[0], plain)


def test_fusion_spec_is_checked() -> None:
    with pytest.raises(UnknownNameError, match="'borda'"):
        FusionSpec((0.5, 0.5), "borda")
    with pytest.raises(ConfigError, match=r"\[-1.0, 1.0\]"):
        FusionSpec((-1.0, 1.0))
    with pytest.raises(ConfigError, match=r"\[0.0, 0.0\]"):
        FusionSpec((0.0, 0.0))
    with pytest.raises(ConfigError, match="depth 0"):
        FusionSpec((0.5, 0.5), depth=0)
    with pytest.raises(UnknownNameError, match="'wsum-zscore'"):
        fusion_spec("wsum-zscore", (0.5, 0.5))
    assert fusion_spec("wsum-dbsf", (1, 0)) == FusionSpec((1.0, 0.0), "wsum", "dbsf")


def test_tuning_picks_the_only_weight_that_ranks_the_relevant_item_first() -> None:
    # Items a, b, c. CF: a=1, b=0, c=0.6; content: a=0, b=1, c=0.6. With min-max and CF weight w,
    # fused: a=w, b=1-w, c=0.6, so c (the relevant item) comes first only for 0.4 < w < 0.6.
    cf = FixedStrategy("cf", np.array([[1.0, 0.0, 0.6]]))
    content = FixedStrategy("text", np.array([[0.0, 1.0, 0.6]]))
    grid = [fusion_spec("wsum-minmax", (w, 1 - w)) for w in np.round(np.linspace(0, 1, 11), 1)]
    relevant = [{2}]
    spec, trials, chosen = tune_fusion(
        [cf, content],
        grid,
        np.array([0]),
        lambda u: np.ones((len(u), 3), dtype=bool),
        relevant,
        ks=(1,),
        metric="ndcg@1",
        n_items=3,
    )
    assert spec.weights == pytest.approx((0.5, 0.5))
    assert [t.value for t in trials] == [0.0] * 5 + [1.0] + [0.0] * 5
    assert chosen["ndcg@1"] == 1.0


def test_hybrid_weights_come_from_validation_not_test() -> None:
    # Validation's relevant item is what content ranks first; test's is what CF ranks first.
    # Tuning must follow validation (content weight 1) and so score 0 on test.
    scores_cf = np.array([[1.0, 0.0, 0.5], [1.0, 0.0, 0.5]])
    scores_text = np.array([[0.0, 1.0, 0.5], [0.0, 1.0, 0.5]])
    legs = [FixedStrategy("cf", scores_cf), FixedStrategy("text", scores_text)]
    grid = [fusion_spec("wsum-minmax", (w, 1 - w)) for w in (1.0, 0.5, 0.0)]
    users = np.array([0, 1])
    validation, test = [{1}, {1}], [{0}, {0}]
    spec, _, _ = tune_fusion(
        legs, grid, users, lambda u: np.ones((len(u), 3), dtype=bool), validation, ks=(1,), metric="ndcg@1", n_items=3
    )
    assert spec.weights == (0.0, 1.0)
    ranked, _ = rank(
        users, lambda u: np.ones((len(u), 3), dtype=bool), 1, legs, [("hybrid", ("cf", "text"), spec)], rank_legs=False
    )
    assert evaluate(ranked["hybrid"], test, ks=(1,)).values["ndcg@1"] == 0.0


def test_the_runner_tunes_on_validation_relevance_only(
    log: Interactions, text_vectors: ItemVectors, monkeypatch: pytest.MonkeyPatch
) -> None:
    split = random_split(log, seed=5)
    seen = []
    real = runner_module.tune_fusion

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((args[2].copy(), args[4].toarray()))
        return real(*args, **kwargs)

    monkeypatch.setattr(runner_module, "tune_fusion", spy)
    evaluate_split(split, [text_vectors], settings(tune=True, weight_grid=(0.0, 1.0), schemes=("wsum-minmax",)))
    assert len(seen) == 2  # one tuning per CF model
    validation = split.validation.to_csr().toarray()
    for users, relevant in seen:
        np.testing.assert_array_equal(users, np.flatnonzero(validation.sum(axis=1) > 0))
        np.testing.assert_array_equal(relevant, validation[users])
        assert not (relevant * split.test.to_csr().toarray()[users]).any()


# ----------------------------------------------------------------------- whole runs


def test_random_split_table_rows_and_known_answers(random_result) -> None:  # type: ignore[no-untyped-def]
    names = [r.name for r in random_result.strategies]
    assert names == ["random", "popular", "emb.text", "als", "bpr", "hybrid:als+emb.text", "hybrid:bpr+emb.text"]
    kinds = [r.kind for r in random_result.strategies]
    assert kinds == ["baseline", "baseline", "content", "cf", "cf", "hybrid", "hybrid"]
    content = random_result.row("emb.text")
    assert content.metrics["ndcg@5"] == 1.0 and content.metrics["ndcg@10"] == 1.0
    assert content.metrics["recall@10"] == 1.0
    assert random_result.row("random").metrics["ndcg@10"] < 0.8
    # Popularity is flat on a checkerboard (every item has 10 users): no better than content.
    assert random_result.row("popular").metrics["ndcg@10"] < 1.0
    for hybrid in ("hybrid:als+emb.text", "hybrid:bpr+emb.text"):
        row = random_result.row(hybrid)
        assert row.fusion is not None and row.fusion["tuned"] is True
        assert sum(row.fusion["weights"].values()) == pytest.approx(1.0)
        assert row.validation["ndcg@5"] == max(t.value for t in random_result.tuning[hybrid])
        assert row.metrics["ndcg@5"] >= 0.9  # content alone is perfect, and tuning may pick it


def test_cold_split_ranks_cold_items_through_content_only(log: Interactions, text_vectors: ItemVectors) -> None:
    split = cold_item_split(log, seed=2)
    result = evaluate_split(split, [text_vectors], settings(tune=True, weight_grid=(0.0, 0.5, 1.0)))
    assert result.candidates == "cold items"
    for name in ("als", "bpr", "popular"):
        assert result.row(name).metrics["ndcg@10"] == 0.0  # they cannot score an item CF never saw
        assert result.row(name).metrics["coverage@10"] == 0.0
    assert result.row("emb.text").metrics["ndcg@10"] == 1.0
    for hybrid in ("hybrid:als+emb.text", "hybrid:bpr+emb.text"):
        assert result.row(hybrid).metrics == result.row("emb.text").metrics


def test_untuned_hybrid_uses_the_given_weight(log: Interactions, text_vectors: ItemVectors) -> None:
    result = evaluate_split(
        random_split(log, seed=3), [text_vectors], settings(tune=False, cf_weight=0.3, scheme="rrf")
    )
    row = result.row("hybrid:als+emb.text")
    assert row.fusion["weights"] == {"als": 0.3, "emb.text": 0.7}
    assert row.fusion["method"] == "rrf" and row.fusion["tuned"] is False
    assert result.tuning == {}


def test_max_users_samples_the_evaluated_users(log: Interactions) -> None:
    result = run_eval(log, (), settings(max_users=5))
    (split,) = result.splits
    assert split.users == {"validation": 5, "test": 5}
    assert [r.name for r in split.strategies] == ["random", "popular", "als", "bpr"]  # no content: no hybrid
    assert all(r.n_users == 5 for r in split.strategies)


def test_settings_and_inputs_are_checked(log: Interactions) -> None:
    with pytest.raises(UnknownNameError, match="'ndcg@7'"):
        settings(tune_metric="ndcg@7")
    with pytest.raises(UnknownNameError, match="'leave-one-out'"):
        settings(splits=("leave-one-out",))
    with pytest.raises(ConfigError, match=r"\[0.0, 1.5\]"):
        settings(weight_grid=(0.0, 1.5))
    with pytest.raises(ConfigError, match="'als', 'als'"):
        settings(cf=(ALSConfig(), ALSConfig(factors=8)))
    short = ItemVectors("emb", "text", np.eye(3), [True, True, True])
    with pytest.raises(InputError, match="3 rows"):
        run_eval(log, [short], settings())
    with pytest.raises(InputError, match="timestamp"):
        make_split(log, "temporal", settings())


def test_settings_name_the_bad_field_and_value() -> None:
    with pytest.raises(ConfigError, match=r"chunk_users: .*greater than or equal to 1 \(got 0\)"):
        settings(chunk_users=0)
    with pytest.raises(ConfigError, match=r"tune_depths\.1: .*\(got 0\)"):
        settings(tune_depths=(5, 0))
    with pytest.raises(ConfigError, match=r"cf_weight: .*\(got 1\.5\)"):
        settings(cf_weight=1.5)
    with pytest.raises(ConfigError, match=r"ks\.0: .*valid integer \(got True\)"):
        settings(ks=(True,))
    with pytest.raises(ConfigError, match=r"fractions \(0\.5, 0\.5, 0\.5\)"):
        settings(fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ConfigError, match="colour: Extra inputs are not permitted"):
        settings(colour="red")
    with pytest.raises(UnknownNameError, match="'wsum-zscore'"):
        settings(schemes=("rrf", "wsum-zscore"))


def test_settings_json_holds_every_field_and_reads_back() -> None:
    chosen = settings(ks=(10, 5, 10), chunk_users=7, tune_depths=(50, None))
    assert chosen.ks == (5, 10)  # sorted, without repeats
    data = json.loads(json.dumps(chosen.model_dump(mode="json")))
    assert set(data) == set(EvalSettings.model_fields)
    assert data["chunk_users"] == 7 and data["tune_depths"] == [50, None]
    assert [c["algorithm"] for c in data["cf"]] == ["als", "bpr"]
    assert EvalSettings.model_validate(data) == chosen
    result = runner_module.EvalResult((), chosen, {}, {})
    assert result.to_dict()["settings"] == data


def test_paired_comparison_known_answer() -> None:
    a = np.array([[0, 1], [2, 3]])
    b = np.array([[1, 0], [3, 2]])
    relevant = [{0}, {3}]  # a ranks user 0's item first, b ranks user 1's first
    c = compare_paired("a", a, "b", b, relevant, "precision@1")
    assert (c.hybrid_value, c.versus_value, c.difference) == (0.5, 0.5, 0.0)
    assert (c.users_better, c.users_worse) == (1, 1)
    assert c.ci95[0] <= 0.0 <= c.ci95[1]
    with pytest.raises(UnknownNameError, match="'coverage@1'"):
        compare_paired("a", a, "b", b, relevant, "coverage@1")


# ----------------------------------------------------------------------- reports


def test_markdown_table_json_and_png(random_result, tmp_path) -> None:  # type: ignore[no-untyped-def]
    table = markdown_table(random_result, metrics=("ndcg", "coverage"), ks=(5,))
    lines = table.splitlines()
    assert lines[0] == "| Strategy | nDCG@5 | Cov@5 |"
    assert [line.split("|")[1].strip() for line in lines[2:]] == [r.name for r in random_result.strategies]
    assert "| emb.text | **1.0000** |" in table  # the best column value is bold
    with pytest.raises(ConfigError, match=r"\[30\]"):
        markdown_table(random_result, ks=(30,))

    from mmsearch.eval.runner import EvalResult

    result = EvalResult(
        (random_result,),
        settings(),
        {"dataset": "topics", "users": 20, "items": 24, "interactions": 240},
        {"evaluation": 1.0},
    )
    paths = write_outputs(result, tmp_path / "out")
    assert set(paths) == {"markdown", "json", "plot:random"}
    data = json.loads(paths["json"].read_text())
    assert data == json.loads(to_json(result))
    rows = {r["name"]: r for r in data["splits"][0]["strategies"]}
    assert rows["emb.text"]["test"]["ndcg@10"] == 1.0
    assert rows["hybrid:als+emb.text"]["fusion"]["tuned"] is True
    assert paths["markdown"].read_text() == format_report(result)
    with Image.open(paths["plot:random"]) as image:
        assert image.format == "PNG" and image.width > 800 and image.height > 600
        colours = {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 20)}
    first = tuple(int(PALETTE[0][i : i + 2], 16) for i in (1, 3, 5))
    last = tuple(int(PALETTE[6][i : i + 2], 16) for i in (1, 3, 5))  # the 7th strategy's line
    assert first in colours and last in colours


def test_series_equal_to_an_earlier_one_are_found() -> None:
    panels = [
        Panel("a", [10, 20], {"x": [0.1, 0.2], "y": [0.3, 0.4], "z": [0.1, 0.2], "w": [0.0, math.nan]}),
        Panel("b", [10, 20], {"x": [1.0, 1.0], "y": [0.5, 0.5], "z": [1.0, 1.0], "w": [0.0, math.nan]}),
    ]
    assert duplicate_series(panels) == {"z": "x"}
    panels[1] = Panel("b", [10, 20], {"x": [1.0, 1.0], "y": [0.5, 0.5], "z": [1.0, 0.9], "w": [0.0, math.nan]})
    assert duplicate_series(panels) == {}


def test_nice_ceiling() -> None:
    assert [nice_ceiling(v) for v in (0.0, 0.13, 0.2, 0.21, 0.9, 3.1)] == [1.0, 0.2, 0.2, 0.25, 1.0, 5.0]
