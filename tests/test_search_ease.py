"""The `ease` signal served from Qdrant sparse vectors (`Searcher` on Edge and local mode).

Known answers: EASE's closed form computed here with numpy (B = I - P / diag(P)); the engine's
sparse dot products, the fused ranking and the breakdown must equal it, for a known user, for an
anonymous history and for an item, with the candidate rule and fusion of `mmsearch.query.fusion`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmsearch.cf import cf_config
from mmsearch.cf.collection import fit_collection_cf
from mmsearch.cf.interactions import Interactions
from mmsearch.errors import InputError, NotFoundError, SchemaMismatchError
from mmsearch.query import fusion as F
from mmsearch.query.engine import Searcher, SearchSettings
from mmsearch.storage import Item, open_store
from tests.storage_support import CLIP_TEXT, unit_rows

N_ITEMS, N_USERS, LAMBDA, K = 24, 40, 3.0, 6


def _log() -> Interactions:
    """Two taste groups (even and odd items) and noise; i23 has no interaction (cold)."""
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(N_USERS):
        group = u % 2
        for j in range(N_ITEMS - 1):
            if rng.random() < (0.6 if j % 2 == group else 0.05):
                users.append(f"u{u}")
                items.append(f"i{j}")
    return Interactions.from_arrays(users, items)


class World:
    def __init__(self, kind: str, tmp_path: Path) -> None:
        rng = np.random.default_rng(1)
        settings = {"collection": "e", "cf_dim": 4, "optimize_after": None}
        settings.update({"backend": "edge", "path": tmp_path / "edge"} if kind == "edge" else {"backend": "memory"})
        self.store = open_store(settings, encoders=[CLIP_TEXT])
        self.text = {f"i{j}": unit_rows(rng, 1, 8)[0] for j in range(N_ITEMS)}
        self.store.upsert([Item(i, {"clip.text": v}, {"n": int(i[1:])}) for i, v in self.text.items()])
        self.log = _log()
        config = cf_config("ease", regularization=LAMBDA, neighbors=N_ITEMS)
        self.ease, self.summary = fit_collection_cf(self.store, self.log, config, tmp_path / "cf")
        table = self.log.align(item_ids=list(self.ease.item_ids))[0]
        x = (table.to_csr().toarray() > 0).astype(np.float64)
        g = x.T @ x + LAMBDA * np.eye(x.shape[1])
        p = np.linalg.inv(g)
        self.b = -p / np.diag(p)
        np.fill_diagonal(self.b, 0.0)
        self.table = table

    def searcher(self, **settings) -> Searcher:
        return Searcher(self.store, (), None, SearchSettings(candidates=K, **settings), ease_model=self.ease)

    def dense_scores(self, history: list[str]) -> dict[str, float]:
        rows = [self.ease.item_index[i] for i in history if i in self.ease.item_index]
        scores = self.b[rows].sum(axis=0)
        return {item: float(scores[j]) for j, item in enumerate(self.ease.item_ids)}

    def seen(self, user: str) -> list[str]:
        return self.ease.seen_items(user)


@pytest.fixture(scope="module", params=["edge", "memory"])
def world(request, tmp_path_factory):
    w = World(request.param, tmp_path_factory.mktemp(request.param))
    yield w
    w.store.close()


def test_fit_writes_one_sparse_column_per_item_with_interactions(world: World) -> None:
    assert world.summary.algorithm == "ease" and world.summary.items_written == N_ITEMS - 1
    assert world.summary.items_cleared == 1  # i23: no interaction, no side information
    stored = world.store.retrieve(["i3", "i23"], with_vectors=["ease"])
    col = stored[0].sparse["ease"]
    j = world.ease.item_index["i3"]
    np.testing.assert_allclose(col.values, world.b[col.indices, j], atol=1e-5)  # column j of B
    assert "ease" not in stored[1].sparse


def test_ease_scores_in_qdrant_are_the_dense_closed_form(world: World) -> None:
    """Orientation: item j's stored vector is column j, so history . column j = sum over the history of B[i, j]."""
    searcher = world.searcher()
    user = "u4"
    got = searcher.recommend(user, weights={"ease": 1.0}, limit=N_ITEMS, explain=True)
    expected = world.dense_scores(world.seen(user))
    unseen = [i for i in world.ease.item_ids if i not in world.seen(user)]
    assert [r.id for r in got] == sorted(unseen, key=lambda i: -expected[i])[: len(got)]
    assert len(got) == len(unseen)  # every unseen item with weights, and not the cold i23
    for r in got:
        assert r.signals["ease"].raw == pytest.approx(expected[r.id], abs=1e-4)
    assert got.signals[0].name == "ease" and got.signals[0].inputs == ("user",)


def test_an_anonymous_history_gets_ease_scores_without_a_refit(world: World) -> None:
    searcher = world.searcher()
    history = ["i2", "i4", "i6", "i23", "ghost"]  # two ids the model has no weights from
    got = searcher.recommend(history=history, weights={"ease": 1.0}, limit=5, explain=True)
    expected = world.dense_scores(history)
    candidates = [i for i in world.ease.item_ids if i not in history]
    assert [r.id for r in got] == sorted(candidates, key=lambda i: -expected[i])[:5]
    assert all(r.signals["ease"].raw == pytest.approx(expected[r.id], abs=1e-4) for r in got)
    assert any("2 item(s) of the history are unknown to the EASE model" in n for n in got.notes)
    assert got.signals[0].inputs == ("history",)


def test_a_history_joins_a_known_users_training_items(world: World) -> None:
    searcher = world.searcher()
    user, extra = "u1", ["i0", "i2"]
    got = searcher.recommend(user, history=extra, weights={"ease": 1.0}, limit=N_ITEMS, explain=True)
    known = list(dict.fromkeys([*world.seen(user), *extra]))
    expected = world.dense_scores(known)
    assert {r.id for r in got}.isdisjoint(known)
    assert all(r.signals["ease"].raw == pytest.approx(expected[r.id], abs=1e-4) for r in got)
    assert got.signals[0].inputs == ("user", "history")


def test_more_like_an_item_by_ease(world: World) -> None:
    got = world.searcher().search(item="i5", weights={"ease": 1.0}, limit=4, explain=True)
    expected = world.dense_scores(["i5"])
    rest = [i for i in world.ease.item_ids if i != "i5"]
    assert [r.id for r in got] == sorted(rest, key=lambda i: -expected[i])[:4]
    assert got.signals[0].inputs == ("item",)


@pytest.mark.parametrize("fusion", ["wsum", "dbsf", "rrf"])
def test_ease_fused_with_the_profile_equals_the_numpy_reference(world: World, fusion: str) -> None:
    user = "u6"
    weights = {"ease": 0.7, "profile:clip.text": 0.3}
    got = world.searcher().recommend(user, weights=weights, fusion=fusion, limit=5, explain=True)
    seen = world.seen(user)
    ids = [i for i in world.text if i not in seen]
    ease = world.dense_scores(seen)
    profile = np.mean([world.text[i] for i in seen], axis=0)
    profile /= np.linalg.norm(profile)
    matrix = np.array(
        [[ease.get(i, np.nan) if i in world.ease.item_index else np.nan, world.text[i] @ profile] for i in ids]
    )
    pool = F.pool(matrix, K)
    w = np.array([0.7, 0.3])
    if fusion == "rrf":
        fused = F.weighted_rrf(matrix[pool], w * 2 / w.sum())
    else:
        fused = F.weighted_sum(matrix[pool], w, normalization="dbsf" if fusion == "dbsf" else "minmax")
    order = fused.ranking(5)
    assert [r.id for r in got] == [ids[pool[o]] for o in order]
    np.testing.assert_allclose([r.score for r in got], fused.scores[order], atol=1e-4)
    assert got.engine == ("numpy" if fusion == "rrf" else "qdrant")


def test_default_weights_give_ease_its_share(world: World) -> None:
    got = world.searcher().recommend("u3")
    assert {s.name: round(s.weight, 3) for s in got.signals} == {"profile:clip.text": 0.5, "ease": 0.5}


def test_bad_histories_are_refused(world: World) -> None:
    searcher = world.searcher()
    with pytest.raises(InputError, match="list of item ids"):
        searcher.recommend(history="i1")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="non-empty string"):
        searcher.recommend(history=["i1", ""])
    with pytest.raises(InputError, match="a history"):
        searcher.search()
    with pytest.raises(NotFoundError, match="give a history"):
        searcher.recommend("stranger")
    stranger = searcher.recommend("stranger", history=["i1"], weights={"ease": 1.0})
    assert any("unknown" in n for n in stranger.notes) and len(stranger) > 0


def test_an_ease_model_needs_the_sparse_vector(world: World) -> None:
    with (
        open_store({"backend": "memory", "collection": "bare"}, encoders=[CLIP_TEXT]) as bare,
        pytest.raises(SchemaMismatchError, match="cf fit --algorithm ease"),
    ):
        Searcher(bare, (), None, ease_model=world.ease)


def test_searcher_open_finds_the_ease_model_beside_the_store(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    with open_store({"path": tmp_path, "collection": "shop"}, encoders=[CLIP_TEXT]) as store:
        store.upsert([Item(f"i{j}", {"clip.text": unit_rows(rng, 1, 8)[0]}) for j in range(N_ITEMS)])
        fit_collection_cf(store, _log(), cf_config("ease", neighbors=8))
    with Searcher.open({"path": tmp_path, "collection": "shop"}) as searcher:
        assert searcher.ease_model is not None and searcher.cf_model is None
        assert "ease" in [s.name for s in searcher.signals]
        assert len(searcher.recommend(history=["i1", "i3"], limit=3)) == 3
