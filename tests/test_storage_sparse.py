"""Sparse vectors (e.g. `ease`) on every backend: writes, reads, search, exact scoring, hybrid legs, refusals.

The same cases run on Qdrant Edge, qdrant-client local mode and a real server (docker); every
score is checked against a dot product computed here with numpy.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from mmsearch.errors import (
    ConfigError,
    InputError,
    InvalidItemError,
    NonFiniteVectorError,
    UnknownVectorError,
)
from mmsearch.query import fusion as F
from mmsearch.storage import (
    Filter,
    HasItemId,
    HybridQuery,
    Item,
    Prefetch,
    SparseVector,
    VectorUpdate,
    open_store,
    weighted_sum_formula,
)
from mmsearch.storage.schema import ModelRecord
from tests.storage_support import CF_DIM, FP_IMG, FP_TXT, Opener, catalogue, make_opener_fixture, qdrant_server_url

opener = make_opener_fixture(["edge", "memory", pytest.param("server", marks=pytest.mark.docker)])
reopener = make_opener_fixture(["edge", "memory-path", pytest.param("server", marks=pytest.mark.docker)])
N = 30
DIM = 12  # indices 0..11


@pytest.fixture(scope="session")
def qdrant_url() -> Iterator[str]:
    yield from qdrant_server_url()


def _weights(seed: int = 0) -> dict[str, dict[int, float]]:
    """Every third item has no sparse vector; the others 1-4 indices with signed weights."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[int, float]] = {}
    for i in range(N):
        if i % 3 == 0:
            continue
        idx = rng.choice(DIM, size=1 + i % 4, replace=False)
        out[f"i{i}"] = {int(j): float(np.float32(rng.normal())) for j in idx}
    return out


def _dot(a: dict[int, float], b: dict[int, float]) -> float:
    return float(sum(v * b[i] for i, v in a.items() if i in b))


@pytest.fixture
def loaded(opener: Opener):
    store = opener()
    assert store.add_sparse_vectors(["ease"]) == ["ease"]
    assert store.add_sparse_vectors(["ease"]) == []  # already there
    weights = _weights()
    items = catalogue(N)
    for i, it in enumerate(items):
        if it.id in weights:
            items[i] = Item(it.id, {**it.vectors, "ease": SparseVector.from_dict(weights[it.id])}, it.payload)
    store.upsert(items)
    return store, weights


def test_schema_records_the_sparse_vector(loaded) -> None:
    store, _ = loaded
    spec = store.schema.get("ease")
    assert (spec.kind, spec.dim, spec.distance) == ("sparse", 0, "dot")
    assert "ease" in store.input_names and "ease" in store.vector_names


def test_adding_a_sparse_vector_keeps_the_recorded_model_folders(reopener: Opener) -> None:
    store = reopener()
    record = ModelRecord(name="clip", folder="/models/clip", fingerprints={"image": FP_IMG, "text": FP_TXT})
    assert store.record_models([record])
    assert store.add_sparse_vectors(["ease"]) == ["ease"]
    assert store.schema.models == {"clip": record}
    store.close()
    with reopener() as again:  # and the record on disk (or on the server) still holds them
        assert again.schema.models == {"clip": record} and again.schema.get("ease").kind == "sparse"


def test_sparse_vectors_read_back_sorted_and_exact(loaded) -> None:
    store, weights = loaded
    got = {it.id: it for it in store.retrieve([f"i{i}" for i in range(N)], with_vectors=["ease"])}
    for item_id, w in weights.items():
        vec = got[item_id].sparse["ease"]
        assert vec.indices.dtype == np.uint32 and vec.values.dtype == np.float32
        assert list(vec.indices) == sorted(w)
        assert vec.to_dict() == pytest.approx(w)
    assert got["i0"].sparse == {}  # no sparse vector
    assert got["i1"].vectors == {}  # dense vectors only when asked for


def test_search_scores_the_dot_product_of_items_sharing_an_index(loaded) -> None:
    store, weights = loaded
    query = {2: 1.0, 5: 0.5, 7: -2.0}
    hits = store.query("ease", SparseVector.from_dict(query), limit=N)
    expected = {i: _dot(query, w) for i, w in weights.items() if set(w) & set(query)}
    assert {h.id for h in hits} == set(expected)
    for h in hits:
        assert h.score == pytest.approx(expected[h.id], abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_score_items_gives_zero_without_a_shared_index_and_nan_without_the_vector(loaded) -> None:
    store, weights = loaded
    query = {2: 1.0, 5: 0.5}
    ids = [f"i{i}" for i in range(N)] + ["not-there"]
    scores = store.score_items(ids, [("ease", SparseVector.from_dict(query)), ("cf", np.ones(CF_DIM))])
    for r, item_id in enumerate(ids):
        if item_id in weights:
            assert scores[r, 0] == pytest.approx(_dot(query, weights[item_id]), abs=1e-5)
        else:
            assert np.isnan(scores[r, 0])
    assert np.isfinite(scores[:N, 1]).all() and np.isnan(scores[N, 1])


def test_sparse_leg_in_a_weighted_sum_reads_its_true_score(loaded) -> None:
    store, weights = loaded
    query = SparseVector.from_dict({1: 1.0, 4: 1.0, 9: 1.0})
    cf = np.linspace(-1, 1, CF_DIM).astype(np.float32)
    ids = [f"i{i}" for i in range(N)]
    matrix = store.score_items(ids, [("ease", query), ("cf", cf)])
    unreached = [i for i, w in weights.items() if not set(w) & {1, 4, 9}]
    assert unreached and np.nanmin(matrix[:, 0]) < 0  # so a default of `shift` would differ from the true 0
    params = [F.affine(matrix[:, j]) for j in range(2)]
    reference = F.weighted_sum(matrix, [0.6, 0.4], params=params)
    # Sparse legs default to a raw 0 (the true score of an item holding the vector but missing
    # from the prefetch); HasVector drops the term of an item without it.
    formula = weighted_sum_formula(
        [0.6, 0.4],
        [p.shift for p in params],
        [p.scale for p in params],
        renormalize_by=["ease", "cf"],
        absent=[0.0, None],
    )
    prefetch = (Prefetch("ease", query, limit=N, exact=True), Prefetch("cf", cf, limit=N, exact=True))
    hits = store.hybrid_query(HybridQuery(prefetch, formula, limit=N, filter=Filter(must=(HasItemId(tuple(ids)),))))
    got = {h.id: h.score for h in hits}
    for r, item_id in enumerate(ids):
        assert got[item_id] == pytest.approx(reference.scores[r], abs=1e-5)


def test_update_and_delete_sparse_vectors(loaded) -> None:
    store, _ = loaded
    store.update_vectors([VectorUpdate("i0", {"ease": SparseVector([11], [3.0])})])
    hits = store.query("ease", SparseVector([11], [1.0]), limit=N)
    assert ("i0", 3.0) in [(h.id, h.score) for h in hits]
    before = store.retrieve(["i0"], with_vectors=True)[0]
    assert before.vectors["cf"].shape == (CF_DIM,)  # the dense vectors stayed
    assert store.delete_vectors(["i0", "i1"], ["ease"]) == 2
    after = store.retrieve(["i0", "i1"], with_vectors=True)
    assert all("ease" not in it.sparse and "cf" in it.vectors for it in after)


@pytest.mark.parametrize(
    ("value", "error", "needle"),
    [
        (SparseVector([1, 1], [1.0, 2.0]), InvalidItemError, "index 1 twice"),
        (SparseVector([-1], [1.0]), InvalidItemError, r"\[0, 2\*\*32\)"),
        (SparseVector([2**32], [1.0]), InvalidItemError, r"\[0, 2\*\*32\)"),
        (SparseVector([0.5], [1.0]), InvalidItemError, "integers"),
        (SparseVector([1, 2], [1.0]), InvalidItemError, "one value per index"),
        (SparseVector([], []), InvalidItemError, "at least one"),
        (SparseVector([3], [float("nan")]), NonFiniteVectorError, "finite"),
        (np.ones(4, np.float32), InvalidItemError, "must be a SparseVector"),
    ],
)
def test_bad_sparse_vectors_are_refused_and_nothing_is_written(loaded, value, error, needle) -> None:
    store, _ = loaded
    before = store.count()
    with pytest.raises(error, match=needle):
        store.upsert([Item("new-a", {"cf": np.ones(CF_DIM)}), Item("new-b", {"ease": value})])
    assert store.count() == before
    with pytest.raises(error, match=needle):
        store.query("ease", value)


def test_dense_vectors_refuse_sparse_values(loaded) -> None:
    store, _ = loaded
    with pytest.raises(InvalidItemError, match="dense"):
        store.upsert([Item("x", {"cf": SparseVector([0], [1.0])})])
    with pytest.raises(InvalidItemError, match="dense"):
        store.query("cf", SparseVector([0], [1.0]))


def test_score_range_refuses_sparse_vectors(loaded) -> None:
    store, _ = loaded
    assert not store.can_score_range("ease")
    with pytest.raises(InputError, match="score_items"):
        store.score_range(["i1"], [("ease", SparseVector([1], [1.0]))])


def test_sparse_names_are_checked(loaded) -> None:
    store, _ = loaded
    with pytest.raises(ConfigError, match="not 'cf'"):
        store.add_sparse_vectors(["cf"])
    with pytest.raises(ConfigError, match="sparse vector name"):
        store.add_sparse_vectors(["with.dot"])
    with pytest.raises(UnknownVectorError, match="bm25"):
        store.query("bm25", SparseVector([1], [1.0]))


def test_sparse_vector_added_later_persists(reopener: Opener) -> None:
    store = reopener()
    store.upsert(catalogue(4))
    store.add_sparse_vectors(["ease"])
    store.update_vectors([VectorUpdate("i2", {"ease": SparseVector([5, 1], [2.0, 1.0])})])
    store.close()
    again = open_store(reopener.settings())
    reopener.opened.append(again)
    assert again.schema.get("ease").kind == "sparse"
    hits = again.query("ease", SparseVector([1, 5], [1.0, 1.0]), limit=3)
    assert [(h.id, h.score) for h in hits] == [("i2", 3.0)]
    assert again.retrieve(["i3"], with_vectors=True)[0].vectors["cf"].shape == (CF_DIM,)
