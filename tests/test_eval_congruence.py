"""The evaluation measures what the engine serves: on a MovieLens split, `Searcher.recommend` = the eval's ranking.

A Qdrant Edge store holds the 1,682 movies with a content vector each; ALS and EASE are fitted
into it by `fit_collection_cf` on the split's training part (the product path), and the same
models feed the evaluation's strategies. For a sample of validation users, every strategy's
top 10 in the evaluation (`mmsearch.eval.runner.rank`) must be the engine's top 10 for the same
signals and weights, with the same fused scores.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from indexers.protocol import EncoderSpec
from mmsearch.cf import cf_config
from mmsearch.cf.collection import fit_collection_cf
from mmsearch.eval.content import ItemVectors
from mmsearch.eval.runner import EvalSettings, candidate_mask, eval_users, make_split, rank
from mmsearch.eval.strategies import CFStrategy, EASEStrategy, FusionSpec, content_strategies
from mmsearch.query.engine import Searcher
from mmsearch.storage import Item, open_store

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("recbole") is None, reason="MovieLens-100k is read from the recbole wheel"
)
DIM, USERS, K = 24, 25, 10
TEXT = EncoderSpec("minilm", "bert", "text", DIM, "cosine", "f" * 64)
SIGNALS = {"ease": "ease", "als": "cf", "minilm.text": "profile:minilm.text"}
# Strategy -> (legs, fusion): each is also served as Searcher.recommend(weights=...).
CASES = {
    "ease": (("ease",), FusionSpec((1.0,))),
    "als": (("als",), FusionSpec((1.0,))),
    "minilm.text": (("minilm.text",), FusionSpec((1.0,))),
    "hybrid:ease+minilm.text": (("ease", "minilm.text"), FusionSpec((0.7, 0.3), "wsum", "minmax")),
    "hybrid:als+minilm.text dbsf": (("als", "minilm.text"), FusionSpec((0.6, 0.4), "wsum", "dbsf")),
    "hybrid:ease+als rrf": (("ease", "als"), FusionSpec((0.5, 0.5), "rrf")),
    "hybrid:ease+als+minilm.text": (("ease", "als", "minilm.text"), FusionSpec((0.5, 0.3, 0.2), "dbsf")),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    from mmsearch.datasets.movielens import load_movielens_100k

    data = load_movielens_100k()
    interactions, _ = data.interactions.align(item_ids=[m.item_id for m in data.movies])
    split = make_split(interactions, "random", EvalSettings())
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((interactions.n_items, DIM)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    vectors = ItemVectors("minilm", "text", rows, np.ones(interactions.n_items, dtype=bool), "bert")
    path = tmp_path_factory.mktemp("congruence")
    store = open_store({"path": path, "collection": "ml", "optimize_after": None}, encoders=[TEXT])
    store.upsert([Item(i, {"minilm.text": rows[j]}) for j, i in enumerate(interactions.item_ids)])
    als, _ = fit_collection_cf(store, split.train, cf_config("als"))
    ease, _ = fit_collection_cf(store, split.train, cf_config("ease"))
    strategies = {
        "als": CFStrategy.from_model(als, split.train.user_ids, split.train.item_ids),
        "ease": EASEStrategy.from_model(ease, split.train),
        **{s.name: s for s in content_strategies(split.train, [vectors])},
    }
    searcher = Searcher(store, (), als, ease_model=ease)
    users = eval_users(split.validation, USERS, seed=1)
    yield split, strategies, searcher, users
    store.close()


@pytest.mark.parametrize("case", list(CASES))
def test_recommend_returns_the_evaluations_top_10(world, case: str) -> None:
    split, strategies, searcher, users = world
    legs, spec = CASES[case]
    ranked, _ = rank(
        users,
        lambda u: candidate_mask(split, "validation", u, cold_only=False),
        K,
        [strategies[name] for name in legs],
        [(case, legs, spec)],
        rank_legs=False,
    )
    weights = {SIGNALS[name]: w for name, w in zip(legs, spec.weights, strict=True)}
    for row, user in enumerate(users):
        expected = [split.train.item_ids[j] for j in ranked[case][row] if j >= 0]
        got = searcher.recommend(
            split.train.user_ids[user], weights=weights, fusion=spec.method, normalization=spec.normalization, limit=K
        )
        assert_same_up_to_ties(got.ids, [r.score for r in got], expected, f"user {split.train.user_ids[user]}")


def assert_same_up_to_ties(ids: list[str], scores: list[float], expected: list[str], what: str) -> None:
    """`ids` (with their fused `scores`) rank as `expected` does, but for the order of items with equal scores.

    Weighted RRF with equal weights gives exact ties (ranks 3 and 5 against 5 and 3), which Qdrant
    and numpy order differently; a tie at the cut-off may also swap which of the tied items is 10th.
    """
    assert len(ids) == len(expected), what
    position = {item: i for i, item in enumerate(ids)}
    tie = 1e-9 * max(1.0, abs(scores[0])) if scores else 0.0
    for i, (mine, theirs) in enumerate(zip(ids, expected, strict=True)):
        if mine == theirs:
            continue
        j = position.get(theirs)
        if j is not None:  # the eval's item is ranked elsewhere by the engine: only among equal scores
            assert abs(scores[j] - scores[i]) <= tie, f"{what}: {ids} != {expected} (not a tie at {i})"
        else:  # the eval's item is missing: only where the engine's last score ties
            assert abs(scores[i] - scores[-1]) <= tie, f"{what}: {ids} != {expected} ({theirs} missing)"
