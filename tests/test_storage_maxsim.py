"""Multivectors that hold only the items with several rows: every read gives the MaxSim of all items.

The same cases on Qdrant Edge and local mode, checked against numpy MaxSim over each item's rows
(an item with one row is that row).
"""

from __future__ import annotations

import numpy as np
import pytest

from mmsearch.storage import (
    Const,
    Formula,
    HasVector,
    HybridQuery,
    Item,
    Mult,
    NearestQuery,
    Prefetch,
    Rescore,
    Rrf,
    Score,
    Sum,
    VectorUpdate,
)
from mmsearch.storage.ids import point_id
from tests.storage_support import CF_DIM, Opener, make_opener_fixture, maxsim, qdrant_server_url, unit_rows

opener = make_opener_fixture(["edge", "memory", pytest.param("server", marks=pytest.mark.docker)])
N = 40


@pytest.fixture(scope="session")
def qdrant_url():
    yield from qdrant_server_url()


def _items() -> tuple[list[Item], dict[str, np.ndarray]]:
    """Photos: one for half of the items, 2-3 for the rest; one text each; every fifth item has no photo."""
    rng = np.random.default_rng(8)
    items, photos = [], {}
    for i in range(N):
        v: dict[str, np.ndarray] = {"clip.text": unit_rows(rng, 1, 8)[0], "cf": rng.standard_normal(CF_DIM)}
        if i % 5:
            v["clip.image"] = unit_rows(rng, 1 if i % 2 else 2 + i % 3 // 2, 8)
            photos[f"i{i}"] = v["clip.image"]
        items.append(Item(f"i{i}", v, {"rank": i}))
    return items, photos


def _want(photos: dict[str, np.ndarray], q: np.ndarray) -> dict[str, float]:
    return {i: maxsim(q, rows) for i, rows in photos.items()}


@pytest.fixture
def loaded(opener: Opener):
    items, photos = _items()
    store = opener()
    store.upsert(items)
    return store, photos


def test_the_first_item_with_several_rows_creates_the_multivector(opener: Opener, caplog) -> None:
    items, _ = _items()
    store = opener()
    one_row = [it for it in items if len(it.vectors.get("clip.image", ())) == 1]
    store.upsert(one_row)
    assert "clip.image.multi" in store.schema.pending and not caplog.records
    with caplog.at_level("INFO", logger="mmsearch.storage.store"):
        store.upsert(items)
    assert "clip.image.multi" in store.schema.vectors and "clip.image.multi" not in store.schema.pending
    assert [r.getMessage() for r in caplog.records if r.name == "mmsearch.storage.store"] == [
        "created clip.image.multi: the first item with several rows of it came"
    ]


def test_one_row_items_store_no_rows_but_read_back_their_one_row(loaded) -> None:
    store, photos = loaded
    one = [i for i, rows in photos.items() if len(rows) == 1]
    raw = store._backend.retrieve([point_id(i) for i in one], ["clip.image.multi"], False)
    assert one and all("clip.image.multi" not in r.vectors for r in raw)  # nothing stored twice
    assert "clip.text.multi" in store.schema.pending and "clip.text.multi" in store.vector_names
    for it in store.retrieve(list(photos), with_vectors=["clip.image.multi", "clip.text.multi"]):
        rows = photos[it.id]
        want = rows if len(rows) > 1 else rows / np.linalg.norm(rows, axis=1, keepdims=True)
        np.testing.assert_allclose(it.vectors["clip.image.multi"], want, atol=1e-6)
        assert it.vectors["clip.text.multi"].shape == (1, 8) and set(it.vectors) == {
            "clip.image.multi",
            "clip.text.multi",
        }


@pytest.mark.parametrize("n_rows", [1, 2, 3])
def test_nearest_on_a_partial_multivector_is_maxsim_over_every_item(loaded, n_rows: int) -> None:
    store, photos = loaded
    q = unit_rows(np.random.default_rng(n_rows), n_rows, 8) * np.array([[1.0], [2.0], [0.5]])[:n_rows]
    want = _want(photos, q)
    best = sorted(want, key=lambda k: -want[k])[:10]
    for exact in (True, False):
        hits = store.query("clip.image.multi", q, limit=10, exact=exact)
        assert [h.id for h in hits] == best
        np.testing.assert_allclose([h.score for h in hits], [want[b] for b in best], rtol=1e-5, atol=1e-6)
    cut = want[best[3]] - 1e-4
    assert [h.id for h in store.query("clip.image.multi", q, limit=10, score_threshold=cut)] == best[:4]


def test_a_pending_multivector_reads_the_pooled_vectors(loaded) -> None:
    store, _ = loaded
    q = unit_rows(np.random.default_rng(3), 2, 8)
    texts = {
        it.id: it.vectors["clip.text"][None, :]
        for it in store.retrieve([f"i{i}" for i in range(N)], with_vectors=["clip.text"])
    }
    want = _want(texts, q)
    hits = store.query("clip.text.multi", q, limit=5)
    assert [h.id for h in hits] == sorted(want, key=lambda k: -want[k])[:5]
    np.testing.assert_allclose([h.score for h in hits], sorted(want.values(), reverse=True)[:5], rtol=1e-5, atol=1e-6)
    scored = store.score_items(list(want), [("clip.text.multi", q)])[:, 0]
    np.testing.assert_allclose(scored, list(want.values()), rtol=1e-5, atol=1e-6)
    one = _want(texts, q[:1])  # one row: the pooled vector's own search
    hits = store.query("clip.text.multi", q[:1], limit=5, score_threshold=-1.0)
    assert [h.id for h in hits] == sorted(one, key=lambda k: -one[k])[:5]
    np.testing.assert_allclose([h.score for h in hits], sorted(one.values(), reverse=True)[:5], rtol=1e-5, atol=1e-6)


def test_candidates_and_exact_scores_cover_both_parts(loaded) -> None:
    store, photos = loaded
    q = unit_rows(np.random.default_rng(4), 2, 8)
    want = _want(photos, q)
    cands = store.candidates([NearestQuery("clip.image.multi", q, limit=8, exact=True)])
    ids = {it.id for it in store.candidate_items(cands, range(len(cands)))}
    assert set(sorted(want, key=lambda k: -want[k])[:8]) <= ids  # the top 8 by MaxSim, whichever part
    everyone = [f"i{i}" for i in range(N)]
    scored = store.score_items(everyone, [("clip.image.multi", q), ("clip.image", q[0])])
    np.testing.assert_allclose(scored[:, 0], [want.get(i, np.nan) for i in everyone], rtol=1e-5, atol=1e-6)
    assert np.isnan(scored[:, 0]).sum() == N - len(photos)  # no photo, no score


def test_fusions_and_rescoring_read_both_parts(loaded) -> None:
    store, photos = loaded
    rng = np.random.default_rng(5)
    q, cf = unit_rows(rng, 2, 8), rng.standard_normal(CF_DIM)
    want = _want(photos, q)
    # A formula: MaxSim for items with a photo (HasVector reads "has the modality"), else -1.
    has = HasVector("clip.image.multi")
    lacks = Sum((Const(1.0), Mult((Const(-1.0), has))))
    formula = Formula(Sum((Mult((has, Score(0))), Mult((lacks, Const(-1.0))))), defaults={0: 0.0})
    hits = store.hybrid_query(HybridQuery((Prefetch("clip.image.multi", q, limit=N, exact=True),), formula, limit=N))
    got = {h.id: h.score for h in hits}
    assert {i for i, s in got.items() if s > -1} == set(photos)
    np.testing.assert_allclose([got[i] for i in photos], [want[i] for i in photos], rtol=1e-5, atol=1e-6)
    # RRF over a MaxSim stage ranks it as one list: the best MaxSim item wins on that list alone.
    top = max(want, key=lambda k: want[k])
    rrf = HybridQuery((Prefetch("clip.image.multi", q, limit=N, exact=True),), Rrf(k=1), limit=3)
    assert store.hybrid_query(rrf)[0].id == top
    fused = HybridQuery((Prefetch("clip.image.multi", q, limit=5), Prefetch("cf", cf, limit=5)), Rrf(), limit=10)
    assert top in {h.id for h in store.hybrid_query(fused)}
    # Rescoring pooled candidates by MaxSim scores the one-row ones too.
    stage = (Prefetch("clip.image", q[0], limit=N, exact=True),)
    rescored = store.hybrid_query(HybridQuery(stage, Rescore("clip.image.multi", q), limit=6))
    best = sorted(want, key=lambda k: -want[k])[:6]
    assert [h.id for h in rescored] == best
    np.testing.assert_allclose([h.score for h in rescored], [want[b] for b in best], rtol=1e-5, atol=1e-6)


def test_updating_an_item_to_one_row_drops_its_old_rows(loaded) -> None:
    store, photos = loaded
    many = next(i for i, rows in photos.items() if len(rows) > 1)
    row = unit_rows(np.random.default_rng(6), 1, 8)
    store.update_vectors([VectorUpdate(many, {"clip.image": row})])
    raw = store._backend.retrieve([point_id(many)], ["clip.image.multi"], False)
    assert "clip.image.multi" not in raw[0].vectors
    hit = store.query("clip.image.multi", row, limit=1)[0]
    assert hit.id == many and hit.score == pytest.approx(1.0, abs=1e-5)
    store.delete_vectors([many], ["clip.image"])
    assert np.isnan(store.score_items([many], [("clip.image.multi", row)])[0, 0])


reopener = make_opener_fixture(["edge", "memory-path", pytest.param("server", marks=pytest.mark.docker)])


def test_a_multivector_created_but_not_recorded_is_adopted(reopener: Opener, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer that dies between creating a multivector and recording it (or a second writer) leaves it usable."""
    items, photos = _items()
    one_row = [it for it in items if "clip.image" in it.vectors and len(it.vectors["clip.image"]) == 1]
    with reopener() as s:
        s.upsert(one_row)
        assert "clip.image.multi" in s.schema.pending

        def crash(*args: object, **kwargs: object) -> None:
            raise KeyboardInterrupt("simulated crash before the record")

        if reopener.kind == "edge":
            monkeypatch.setattr(s._backend, "_record", crash)
        else:  # the schema record lives in the collection's metadata
            monkeypatch.setattr(s._backend._client, "update_collection", crash)
        with pytest.raises(KeyboardInterrupt):
            s.upsert(items)
        monkeypatch.undo()
    with reopener(encoders=None) as s:
        assert "clip.image.multi" in s.schema.vectors and "clip.image.multi" not in s.schema.pending
        s.upsert(items)  # creating it again is skipped
        q = unit_rows(np.random.default_rng(9), 2, 8)
        want = _want(photos, q)
        hits = s.query("clip.image.multi", q, limit=5, exact=True)
        assert [h.id for h in hits] == sorted(want, key=lambda k: -want[k])[:5]
