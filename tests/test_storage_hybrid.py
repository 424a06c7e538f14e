"""Hybrid queries (prefetch + formula, RRF, DBSF, MaxSim rescoring) on Edge and local mode, against numpy.

Every engine answer is compared with `mmsearch.query.fusion`, the numpy reference, on true scores
computed here from the vectors written.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmsearch.errors import ConfigError, InputError, UnknownVectorError, VectorDimensionError
from mmsearch.query import fusion as F
from mmsearch.storage import (
    Const,
    Dbsf,
    Filter,
    Formula,
    HasItemId,
    HasVector,
    HybridQuery,
    Item,
    NearestQuery,
    Prefetch,
    Rescore,
    Rrf,
    Score,
    Sum,
    VectorUpdate,
    weighted_sum_formula,
)
from tests.storage_support import CF_DIM, Opener, make_opener_fixture, maxsim, qdrant_server_url, unit_rows


@pytest.fixture(scope="session")
def qdrant_url():
    yield from qdrant_server_url()


opener = make_opener_fixture(["edge", "memory", pytest.param("server", marks=pytest.mark.docker)])
N = 24


def _catalogue(seed: int = 3) -> tuple[list[Item], dict[str, dict[str, np.ndarray]]]:
    """Items with 1-3 photos; every third item has no text, every fourth no cf vector."""
    rng = np.random.default_rng(seed)
    items, vectors = [], {}
    for i in range(N):
        v: dict[str, np.ndarray] = {"clip.image": unit_rows(rng, 1 + i % 3, 8)}
        if i % 3:
            v["clip.text"] = unit_rows(rng, 1, 8)[0]
        if i % 4:
            v["cf"] = rng.standard_normal(CF_DIM).astype(np.float32)
        items.append(Item(f"i{i}", v, {"rank": i}))
        vectors[f"i{i}"] = v
    return items, vectors


def _pooled(rows: np.ndarray) -> np.ndarray:
    m = np.atleast_2d(rows).astype(np.float64).mean(axis=0)
    return m / np.linalg.norm(m)


def _true_scores(vectors: dict, name: str, q: np.ndarray) -> np.ndarray:
    """Score of every item i0..i{N-1} on vector `name` (NaN when it lacks it)."""
    out = np.full(N, np.nan)
    for i in range(N):
        v = vectors[f"i{i}"].get(name)
        if v is None:
            continue
        out[i] = float(_pooled(v) @ (q / np.linalg.norm(q))) if name != "cf" else float(np.dot(v, q))
    return out


@pytest.fixture
def loaded(opener: Opener):
    items, vectors = _catalogue()
    store = opener()
    store.upsert(items)
    rng = np.random.default_rng(11)
    queries = {
        "clip.image": unit_rows(rng, 1, 8)[0],
        "clip.text": unit_rows(rng, 1, 8)[0],
        "cf": rng.standard_normal(CF_DIM).astype(np.float32),
    }
    return store, vectors, queries


def _ids(rows) -> list[str]:
    return [f"i{r}" for r in rows]


def test_formula_on_rescored_candidates_equals_numpy_weighted_sum(loaded):
    store, vectors, q = loaded
    names = ["clip.image", "clip.text", "cf"]
    weights = np.array([0.5, 0.3, 0.2])
    matrix = np.column_stack([_true_scores(vectors, n, q[n]) for n in names])
    params = [F.affine(matrix[:, j]) for j in range(3)]
    formula = weighted_sum_formula(weights, [p.shift for p in params], [p.scale for p in params], renormalize_by=names)
    everyone = Filter(must=(HasItemId(tuple(_ids(range(N)))),))
    prefetch = tuple(Prefetch(n, q[n], limit=N, filter=everyone, exact=True) for n in names)
    hits = store.hybrid_query(HybridQuery(prefetch, formula, limit=8))
    expected = F.weighted_sum(matrix, weights)
    order = expected.ranking(8)
    assert [h.id for h in hits] == _ids(order)
    np.testing.assert_allclose([h.score for h in hits], expected.scores[order], rtol=1e-5, atol=1e-6)


def test_score_items_gives_true_scores_and_nan_for_missing_vectors(loaded):
    store, vectors, q = loaded
    ids = ["i5", "i3", "i4", "nope", "i5"]
    got = store.score_items(ids, [("clip.text", q["clip.text"]), ("cf", q["cf"])])
    for r, item in enumerate(ids):
        for c, name in enumerate(["clip.text", "cf"]):
            if item == "nope":
                assert np.isnan(got[r, c])
                continue
            want = _true_scores(vectors, name, q[name])[int(item[1:])]
            np.testing.assert_allclose(got[r, c], want, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert np.isnan(got[1, 0]) and np.isnan(got[2, 1])  # i3 has no text, i4 no cf


def test_formula_defaults_replace_absent_scores(loaded):
    store, vectors, q = loaded
    a = _true_scores(vectors, "clip.image", q["clip.image"])
    b = _true_scores(vectors, "clip.text", q["clip.text"])
    top_a = F.ranks(a[:, None])[:, 0] < 5
    top_b = np.nan_to_num(F.ranks(b[:, None])[:, 0], nan=-1)
    top_b = (top_b >= 0) & (top_b < 5)
    prefetch = (
        Prefetch("clip.image", q["clip.image"], limit=5, exact=True),
        Prefetch("clip.text", q["clip.text"], limit=5, exact=True),
    )
    formula = Formula(Sum((Score(0), Score(1))), defaults={0: -1.0, 1: -2.0})
    hits = store.hybrid_query(HybridQuery(prefetch, formula, limit=N))
    union = top_a | top_b
    expected = np.where(top_a, a, -1.0) + np.where(top_b, b, -2.0)
    got = {h.id: h.score for h in hits}
    assert set(got) == set(_ids(np.flatnonzero(union)))
    for r in np.flatnonzero(union):
        assert got[f"i{r}"] == pytest.approx(expected[r], abs=1e-5)


def _prefetch_matrix(store, vectors, q, names, limit):
    """The lists native fusion sees: each prefetch's own top-`limit` (NaN outside it)."""
    cols = []
    for n in names:
        s = _true_scores(vectors, n, q[n])
        pos = F.ranks(s[:, None])[:, 0]
        cols.append(np.where((pos >= 0) & (pos < limit), s, np.nan))
    return np.column_stack(cols)


@pytest.mark.parametrize("weights", [None, (2.0, 0.5)])
def test_native_rrf_equals_numpy(loaded, weights):
    store, vectors, q = loaded
    names = ["clip.image", "cf"]
    prefetch = tuple(Prefetch(n, q[n], limit=6, exact=True) for n in names)
    hits = store.hybrid_query(HybridQuery(prefetch, Rrf(k=3, weights=weights), limit=N))
    matrix = _prefetch_matrix(store, vectors, q, names, 6)
    expected = F.weighted_rrf(matrix, weights, k=3, missing="zero")
    got = {h.id: h.score for h in hits}
    present = np.flatnonzero(~np.isnan(expected.scores))
    assert set(got) == set(_ids(present))
    for r in present:
        assert got[f"i{r}"] == pytest.approx(expected.scores[r], rel=1e-5)


def test_native_dbsf_equals_numpy(loaded):
    store, vectors, q = loaded
    names = ["clip.image", "clip.text", "cf"]
    prefetch = tuple(Prefetch(n, q[n], limit=7, exact=True) for n in names)
    hits = store.hybrid_query(HybridQuery(prefetch, Dbsf(), limit=N))
    expected = F.dbsf(_prefetch_matrix(store, vectors, q, names, 7), missing="zero")
    got = {h.id: h.score for h in hits}
    present = np.flatnonzero(~np.isnan(expected.scores))
    assert set(got) == set(_ids(present))
    for r in present:
        assert got[f"i{r}"] == pytest.approx(expected.scores[r], rel=1e-4, abs=1e-6)


def test_maxsim_rescoring_of_pooled_candidates(loaded):
    store, vectors, _ = loaded
    query_rows = unit_rows(np.random.default_rng(5), 2, 8)
    pooled = _true_scores(vectors, "clip.image", query_rows[0])
    candidates = np.flatnonzero(F.ranks(pooled[:, None])[:, 0] < 10)
    hits = store.hybrid_query(
        HybridQuery(
            (Prefetch("clip.image", query_rows[0], limit=10, exact=True),),
            Rescore("clip.image.multi", query_rows),
            limit=4,
        )
    )
    want = {f"i{r}": maxsim(query_rows, vectors[f"i{r}"]["clip.image"]) for r in candidates}
    best = sorted(want, key=lambda k: -want[k])[:4]
    assert [h.id for h in hits] == best
    np.testing.assert_allclose([h.score for h in hits], [want[b] for b in best], rtol=1e-5)


def test_nested_prefetch_rescores_inside_a_fusion(loaded):
    store, _, q = loaded
    rows = unit_rows(np.random.default_rng(6), 1, 8)
    stage = Prefetch("clip.image.multi", rows, limit=5, prefetch=(Prefetch("clip.image", rows[0], limit=12),))
    hits = store.hybrid_query(HybridQuery((stage, Prefetch("cf", q["cf"], limit=5)), Rrf(k=1), limit=3))
    assert len(hits) == 3 and hits[0].score == pytest.approx(max(h.score for h in hits))
    assert hits[0].score <= 2.0 + 1e-9  # at most first in both lists: 1/1 + 1/1


def test_filter_applies_to_every_prefetch(loaded):
    store, _, q = loaded
    only = Filter(must=(HasItemId(("i1", "i2", "i5")),))
    prefetch = (Prefetch("clip.image", q["clip.image"], limit=10), Prefetch("cf", q["cf"], limit=10))
    hits = store.hybrid_query(HybridQuery(prefetch, Rrf(), limit=10, filter=only, with_payload=True))
    assert {h.id for h in hits} <= {"i1", "i2", "i5"}
    assert all(h.payload is not None and "rank" in h.payload for h in hits)


def test_delete_vectors_removes_cf_only(loaded):
    store, _, _ = loaded
    assert store.delete_vectors(["i1", "i2", "missing"], ["cf"]) == 2
    got = {it.id: it for it in store.retrieve(["i1", "i2"], with_vectors=True)}
    assert "cf" not in got["i1"].vectors and "clip.image" in got["i1"].vectors
    assert "clip.text" in got["i1"].vectors and got["i1"].payload == {"rank": 1}
    store.update_vectors([VectorUpdate("i1", {"cf": np.ones(CF_DIM, np.float32)})])
    assert store.retrieve(["i1"], with_vectors=["cf"])[0].vectors["cf"].tolist() == [1.0] * CF_DIM
    with pytest.raises(UnknownVectorError, match="clip.image.multi"):
        store.delete_vectors(["i1"], ["clip.image.multi"])


@pytest.mark.parametrize(
    ("query", "error", "needle"),
    [
        (HybridQuery((), Rrf()), InputError, "at least one prefetch"),
        (HybridQuery((Prefetch("cf", np.ones(CF_DIM)),), Formula(Score(1))), ConfigError, "Score(1)"),
        (HybridQuery((Prefetch("cf", np.ones(CF_DIM)),), Formula(HasVector("nope"))), UnknownVectorError, "nope"),
        (HybridQuery((Prefetch("cf", np.ones(CF_DIM)),), Rrf(weights=(1.0, 2.0))), ConfigError, "2 weights"),
        (HybridQuery((Prefetch("cf", np.ones(CF_DIM)),), Rrf(weights=(-1.0,))), ConfigError, "-1.0"),
        (HybridQuery((Prefetch("cf", np.ones(CF_DIM)),), Rrf(k=0)), ConfigError, "k=0"),
        (HybridQuery((Prefetch("cf", np.ones(CF_DIM)),), Formula(Const(float("nan")))), ConfigError, "nan"),
        (HybridQuery((Prefetch("cf", np.ones(CF_DIM), limit=0),), Rrf()), InputError, "limit 0"),
        (HybridQuery((Prefetch("clip.text", np.ones(3)),), Dbsf()), VectorDimensionError, "3 values"),
        (HybridQuery((Prefetch("cf", np.ones(CF_DIM)),), Rescore("nope", np.ones(3))), UnknownVectorError, "nope"),
        (
            HybridQuery((Prefetch("cf", np.ones(CF_DIM), formula=Formula(Score(0))),), Rrf()),
            ConfigError,
            "no nested stages",
        ),
        (
            HybridQuery(
                (Prefetch("cf", np.ones(CF_DIM), prefetch=(Prefetch("cf", np.ones(CF_DIM)),), formula=Rrf()),), Rrf()
            ),  # type: ignore[arg-type]
            ConfigError,
            "is not a Formula",
        ),
        (
            HybridQuery(
                (
                    Prefetch(
                        "cf", np.ones(CF_DIM), prefetch=(Prefetch("cf", np.ones(CF_DIM)),), formula=Formula(Score(1))
                    ),
                ),
                Rrf(),
            ),
            ConfigError,
            "Score(1)",
        ),
    ],
)
def test_bad_hybrid_queries_are_refused(loaded, query, error, needle):
    store, _, _ = loaded
    with pytest.raises(error) as info:
        store.hybrid_query(query)
    assert needle in str(info.value)


def test_candidates_are_the_union_of_the_searches_and_score_like_item_ids(loaded):
    store, vectors, q = loaded
    searches = [NearestQuery("clip.image", q["clip.image"], limit=5), NearestQuery("cf", q["cf"], limit=4)]
    cands = store.candidates(searches)
    union = {h.id for hits in store.query_batch(searches) for h in hits}
    assert len(cands) == len(union)
    assert sorted(cands.row(i) for i in union) == list(range(len(cands)))
    with pytest.raises(KeyError):
        cands.row(next(f"i{i}" for i in range(N) if f"i{i}" not in union))
    pairs = [("clip.image", q["clip.image"]), ("clip.text", q["clip.text"]), ("cf", q["cf"])]
    by_ids = store.score_items(sorted(union, key=cands.row), pairs)
    np.testing.assert_allclose(store.score_items(cands, pairs), by_ids, rtol=1e-6, equal_nan=True)
    for r, item in enumerate(sorted(union, key=cands.row)):
        for c, (name, query) in enumerate(pairs):
            want = _true_scores(vectors, name, query)[int(item[1:])]
            np.testing.assert_allclose(by_ids[r, c], want, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert np.isnan(by_ids).any()  # some candidate lacks text or cf: NaN, not 0


def test_hybrid_query_within_candidates_sees_only_them(loaded):
    store, _, q = loaded
    cands = store.candidates([NearestQuery("clip.text", q["clip.text"], limit=6)])
    prefetch = (Prefetch("clip.image", q["clip.image"], limit=len(cands), exact=True),)
    inside = store.hybrid_query(HybridQuery(prefetch, Rrf(k=60), limit=N), within=cands)
    assert {h.id for h in inside} == {h.id for h in store.query("clip.text", q["clip.text"], limit=6)}
    # Both the shared candidate filter and the query's own filter hold.
    odd = Filter(must=(HasItemId(tuple(f"i{i}" for i in range(1, N, 2))),))
    both = store.hybrid_query(HybridQuery(prefetch, Rrf(k=60), limit=N, filter=odd), within=cands)
    assert {h.id for h in both} == {h.id for h in inside if int(h.id[1:]) % 2}
    nobody = Filter(must=(HasItemId(("nope",)),))
    empty = store.candidates([NearestQuery("clip.text", q["clip.text"], limit=3, filter=nobody)])
    assert len(empty) == 0 and store.hybrid_query(HybridQuery(prefetch, Rrf(), limit=3), within=empty) == []
    assert store.score_items(empty, [("cf", q["cf"])]).shape == (0, 1)
    with pytest.raises(InputError, match="NearestQuery"):
        store.candidates([HybridQuery(prefetch, Rrf(), limit=3)])  # type: ignore[list-item]


def test_score_range_is_the_min_and_max_of_the_true_scores(loaded):
    store, vectors, q = loaded
    ids = [f"i{i}" for i in range(0, N, 2)] + ["missing"]
    pairs = [("clip.image", q["clip.image"]), ("clip.text", q["clip.text"]), ("cf", q["cf"])]
    got = store.score_range(ids, pairs)
    rows = [int(i[1:]) for i in ids[:-1]]
    for j, name in enumerate(["clip.image", "clip.text", "cf"]):
        scores = _true_scores(vectors, name, q[name])[rows]
        np.testing.assert_allclose(got[j], [np.nanmin(scores), np.nanmax(scores)], rtol=1e-5, atol=1e-6)
    assert np.isnan(store.score_range(["i3"], [("clip.text", q["clip.text"])])).all()  # i3 has no text
    with pytest.raises(InputError, match="clip.image.multi"):
        store.score_range(ids, [("clip.image.multi", q["clip.image"])])
    cands = store.candidates([NearestQuery("clip.image", q["clip.image"], limit=7)])
    by_ids = store.score_range(sorted({h.id for h in store.query("clip.image", q["clip.image"], limit=7)}), pairs)
    np.testing.assert_allclose(store.score_range(cands, pairs), by_ids, rtol=1e-6, equal_nan=True)


def test_rrf_weighted_scales_relative_weights_to_qdrants_convention(loaded):
    assert Rrf.weighted([3.0, 1.0], k=5) == Rrf(k=5, weights=(1.5, 0.5))
    assert Rrf.weighted([0.25, 0.25, 0.25, 0.25]).weights == (1.0, 1.0, 1.0, 1.0)
    for bad in ([0.0, 0.0], [-1.0, 2.0], [float("nan"), 1.0]):
        with pytest.raises(ConfigError, match="RRF weights"):
            Rrf.weighted(bad)
    store, _, q = loaded
    prefetch = tuple(Prefetch(n, q[n], limit=6, exact=True) for n in ("clip.image", "cf"))
    plain = store.hybrid_query(HybridQuery(prefetch, Rrf(k=3), limit=N))
    equal = store.hybrid_query(HybridQuery(prefetch, Rrf.weighted([0.2, 0.2], k=3), limit=N))
    assert {h.id: h.score for h in equal} == pytest.approx({h.id: h.score for h in plain})  # ties in any order


def test_can_score_range_names_the_dense_cosine_and_dot_vectors(loaded):
    store = loaded[0]
    assert store.can_score_range("clip.image") and store.can_score_range("cf")
    assert not store.can_score_range("clip.image.multi")
    with pytest.raises(UnknownVectorError):
        store.can_score_range("nope")
