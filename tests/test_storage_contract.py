"""One contract, every backend: Qdrant Edge, qdrant-client local mode, and a real server (docker).

Each test runs the same operations on each backend and checks known answers computed with numpy,
so the backends must also agree with each other (compared directly in test_backends_agree).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest

from indexers.protocol import EncoderSpec
from mmsearch.errors import (
    DuplicateIdError,
    EmptyBatchError,
    FingerprintMismatchError,
    InvalidItemError,
    ItemNotFoundError,
    NonFiniteVectorError,
    SchemaMismatchError,
    StorageError,
    StoreNotFoundError,
    UnknownVectorError,
    VectorDimensionError,
)
from mmsearch.storage import (
    Filter,
    HasItemId,
    IsEmpty,
    Item,
    Match,
    MatchAny,
    NearestQuery,
    Range,
    VectorUpdate,
    open_store,
    where,
)
from tests.storage_support import (
    CF_DIM,
    CLIP_IMAGE,
    CLIP_TEXT,
    ENCODERS,
    MINILM,
    Opener,
    catalogue,
    expected_pooled,
    make_opener_fixture,
    maxsim,
    qdrant_server_url,
    unit_rows,
)

SERVER = pytest.param("server", marks=pytest.mark.docker)


@pytest.fixture(scope="session")
def qdrant_url() -> Iterator[str]:
    yield from qdrant_server_url()


opener = make_opener_fixture(["edge", "memory", SERVER])
reopener = make_opener_fixture(["edge", "memory-path", SERVER])


@pytest.fixture
def store(opener: Opener):
    s = opener()
    s.upsert(catalogue())
    return s


def _snapshot(store) -> dict:
    """Everything stored, to prove a refused batch changed nothing."""
    return {
        it.id: (it.payload, {k: v.copy() for k, v in it.vectors.items()}) for it in store.iter_items(with_vectors=True)
    }


def _same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        if a[k][0] != b[k][0] or a[k][1].keys() != b[k][1].keys():
            return False
        if any(not np.array_equal(a[k][1][n], b[k][1][n]) for n in a[k][1]):
            return False
    return True


# -- writes and reads -------------------------------------------------------------------------------


def test_schema_names_follow_the_scheme(opener: Opener) -> None:
    s = opener()
    assert s.vector_names == ["cf", "clip.image", "clip.image.multi", "clip.text", "clip.text.multi"]
    assert s.input_names == ["cf", "clip.image", "clip.text"]
    assert s.schema.get("clip.image.multi").indexed is False
    assert s.schema.get("clip.image").fingerprint == CLIP_IMAGE.fingerprint
    assert s.schema.get("cf").dim == CF_DIM and s.schema.get("cf").distance == "dot"


def test_upsert_stores_pooled_and_multivector(store) -> None:
    items = {it.id: it for it in catalogue()}
    got = store.retrieve(["i2", "i4"], with_vectors=True)
    assert [g.id for g in got] == ["i2", "i4"]
    for g in got:
        rows = np.asarray(items[g.id].vectors["clip.image"])
        np.testing.assert_allclose(g.vectors["clip.image.multi"], rows, atol=1e-6)
        np.testing.assert_allclose(g.vectors["clip.image"], expected_pooled(rows), atol=1e-6)
        np.testing.assert_allclose(g.vectors["cf"], items[g.id].vectors["cf"], atol=1e-6)
        assert g.vectors["clip.text.multi"].shape == (1, 8)
        assert g.payload == items[g.id].payload


def test_retrieve_keeps_order_skips_missing_and_selects(store) -> None:
    got = store.retrieve(["i5", "missing", "i1", "i5"], with_vectors=["cf"], with_payload=False)
    assert [g.id for g in got] == ["i5", "i1", "i5"]
    assert all(g.payload == {} and list(g.vectors) == ["cf"] for g in got)
    with pytest.raises(UnknownVectorError, match="nope"):
        store.retrieve(["i1"], with_vectors=["nope"])


def test_reupsert_overwrites_instead_of_duplicating(store) -> None:
    again = [dataclasses.replace(it, payload={**it.payload, "color": "black"}) for it in catalogue()[:10]]
    assert store.upsert(again) == 10
    assert store.count() == 30
    assert store.count(where(color="black")) == 10
    assert store.retrieve(["i3"])[0].payload["color"] == "black"


def test_update_vectors_changes_only_what_is_named(store) -> None:
    before = store.retrieve(["i7"], with_vectors=True)[0]
    new_cf = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    assert store.update_vectors([VectorUpdate("i7", {"cf": new_cf})]) == 1
    after = store.retrieve(["i7"], with_vectors=True)[0]
    np.testing.assert_array_equal(after.vectors["cf"], new_cf)
    for name in ("clip.image", "clip.image.multi", "clip.text", "clip.text.multi"):
        np.testing.assert_array_equal(after.vectors[name], before.vectors[name])
    assert after.payload == before.payload


def test_update_encoder_key_replaces_pooled_and_multi(store) -> None:
    rows = unit_rows(np.random.default_rng(5), 4, 8)
    store.update_vectors([VectorUpdate("i7", {"clip.image": rows})])
    got = store.retrieve(["i7"], with_vectors=["clip.image", "clip.image.multi"])[0]
    np.testing.assert_allclose(got.vectors["clip.image.multi"], rows, atol=1e-6)
    np.testing.assert_allclose(got.vectors["clip.image"], expected_pooled(rows), atol=1e-6)


def test_update_of_missing_item_writes_nothing(store) -> None:
    before = _snapshot(store)
    with pytest.raises(ItemNotFoundError, match="'ghost'"):
        store.update_vectors(
            [VectorUpdate("i1", {"cf": np.zeros(CF_DIM)}), VectorUpdate("ghost", {"cf": np.ones(CF_DIM)})]
        )
    assert _same(before, _snapshot(store))


def test_delete_by_id_and_by_filter(store) -> None:
    assert store.delete(["i0", "i1", "not-there"]) == 2
    assert store.count() == 28
    assert store.retrieve(["i0", "i1"]) == []
    assert store.delete([]) == 0
    assert store.delete_where(Filter(must=(Match("color", "blue"),))) == 10  # i2, i5, ... i29
    assert store.count() == 18
    assert store.count(where(color="blue")) == 0


def test_count_with_filters(store) -> None:
    assert store.count() == 30
    assert store.count(where(color="red")) == 10
    assert store.count(Filter(must=(MatchAny("color", ("red", "green")),))) == 20
    assert store.count(Filter(must=(Range("price", gte=10, lt=20),))) == 10
    assert store.count(Filter(must=(Match("tags", "t1"),))) == 15  # list field: contains
    assert store.count(Filter(must=(HasItemId(("i1", "i2", "zz")),))) == 2
    assert store.count(Filter(must_not=(Match("color", "red"),))) == 20
    assert store.count(Filter(should=(Match("rank", 3), Match("rank", 4)))) == 2
    nested = Filter(
        must=(Filter(should=(Match("color", "red"), Match("color", "blue"))),), must_not=(Range("price", lt=15),)
    )
    assert store.count(nested) == 10


def test_scroll_pages_cover_everything_once(store) -> None:
    seen, offset, pages = [], None, 0
    while True:
        page = store.scroll(limit=7, offset=offset)
        seen += [it.id for it in page.items]
        pages += 1
        if page.next_offset is None:
            break
        offset = page.next_offset
    assert sorted(seen) == sorted(f"i{i}" for i in range(30)) and len(seen) == 30
    assert pages == 5
    red = [it.id for it in store.iter_items(filter=where(color="red"), page_size=4)]
    assert sorted(red) == sorted(f"i{i}" for i in range(0, 30, 3))


# -- queries ------------------------------------------------------------------------------------------


def _exact_top(store, name: str, q: np.ndarray, k: int, keep=lambda it: True) -> list[tuple[str, float]]:
    items = [it for it in catalogue() if keep(it)]
    if name == "clip.image.multi":
        scores = [(it.id, maxsim(q, np.asarray(it.vectors["clip.image"]))) for it in items]
    elif name == "cf":
        scores = [(it.id, float(np.dot(q, it.vectors["cf"]))) for it in items]
    else:
        qn = q / np.linalg.norm(q)
        scores = [(it.id, float(qn @ expected_pooled(np.asarray(it.vectors[name])))) for it in items]
    return sorted(scores, key=lambda t: -t[1])[:k]


@pytest.mark.parametrize("name,shape", [("clip.image", (8,)), ("clip.image.multi", (3, 8)), ("cf", (CF_DIM,))])
def test_query_matches_exact_scores(store, name: str, shape: tuple[int, ...]) -> None:
    q = np.random.default_rng(11).standard_normal(shape).astype(np.float32)
    hits = store.query(name, q, limit=5)
    want = _exact_top(store, name, q, 5)
    assert [h.id for h in hits] == [w[0] for w in want]
    np.testing.assert_allclose([h.score for h in hits], [w[1] for w in want], atol=1e-4)
    assert all(h.payload is None for h in hits)


def test_query_finds_item_by_its_own_vector(store) -> None:
    target = catalogue()[13]
    hits = store.query("clip.image", expected_pooled(np.asarray(target.vectors["clip.image"])), limit=1)
    assert hits[0].id == "i13" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    hits = store.query("clip.image.multi", target.vectors["clip.image"], limit=1)
    assert hits[0].id == "i13" and hits[0].score == pytest.approx(2.0, abs=1e-4)  # 2 rows, each matching itself


def test_query_with_filter_payload_and_threshold(store) -> None:
    q = np.random.default_rng(3).standard_normal(8).astype(np.float32)
    hits = store.query("clip.text", q, limit=4, filter=where(color="green"), with_payload=True)
    want = _exact_top(store, "clip.text", q, 4, keep=lambda it: it.payload["color"] == "green")
    assert [h.id for h in hits] == [w[0] for w in want]
    assert all(h.payload["color"] == "green" and "item_id" not in h.payload for h in hits)
    cut = want[1][1] - 1e-4
    assert [h.id for h in store.query("clip.text", q, limit=4, filter=where(color="green"), score_threshold=cut)] == [
        w[0] for w in want[:2]
    ]


def test_query_batch_equals_single_queries(store) -> None:
    rng = np.random.default_rng(4)
    qs = [
        NearestQuery("clip.image", rng.standard_normal(8), limit=3),
        NearestQuery("clip.text.multi", rng.standard_normal((2, 8)), limit=4, filter=where(color="red")),
        NearestQuery("cf", rng.standard_normal(CF_DIM), limit=2, exact=True),
    ]
    batch = store.query_batch(qs)
    single = [store.query(q.vector, q.query, limit=q.limit, filter=q.filter, exact=q.exact) for q in qs]
    assert [[h.id for h in r] for r in batch] == [[h.id for h in r] for r in single]
    assert [len(r) for r in batch] == [3, 4, 2]


def test_filters_must_be_filters(store) -> None:
    from mmsearch.errors import InvalidFilterError

    # A dict is read in Qdrant's JSON filter form: {"color": "red"} is not one, and says why.
    with pytest.raises(InvalidFilterError, match="unsupported filter part.*color"):
        store.count({"color": "red"})
    with pytest.raises(InvalidFilterError, match="unsupported filter part.*color"):
        store.query("cf", np.ones(CF_DIM), filter={"color": "red"})
    with pytest.raises(InvalidFilterError, match="is a str"):
        store.count("color=red")
    with pytest.raises(InvalidFilterError, match="delete"):
        store.delete_where(None)
    assert store.count() == 30


# -- payload types: the same filters, the same ids, on every backend ---------------------------------


def _typed_catalogue() -> list[Item]:
    """Items whose payloads hold every documented type: bool, int, float, keyword, list, nested object."""
    rng = np.random.default_rng(7)
    items = []
    for i in range(24):
        payload = {
            "in_stock": i % 3 != 0,
            "rank": i,
            "price": round(2.5 + 0.75 * i, 2),
            "color": COLORS_4[i % 4],
            "tags": [f"t{i % 2}", "all"],
            "meta": {"brand": "acme" if i % 2 else "zeta", "rating": i % 5},
        }
        if i % 5 == 0:
            payload["sale"] = True
        items.append(Item(f"p{i}", {"clip.text": unit_rows(rng, 1, 8)[0]}, payload))
    return items


COLORS_4 = ("red", "green", "blue", "black")
TYPED = {it.id: dict(it.payload) for it in _typed_catalogue()}


def _ids(pred) -> list[str]:
    return sorted(i for i, p in TYPED.items() if pred(p))


FILTER_CASES = {
    "bool true": (where(in_stock=True), lambda p: p["in_stock"] is True),
    "bool false": (where(in_stock=False), lambda p: p["in_stock"] is False),
    "bool any": (Filter(must=(MatchAny("in_stock", (True, False)),)), lambda p: True),
    "bool negated": (Filter(must_not=(Match("in_stock", True),)), lambda p: not p["in_stock"]),
    "int": (where(rank=7), lambda p: p["rank"] == 7),
    "int any": (Filter(must=(MatchAny("rank", (1, 2, 30)),)), lambda p: p["rank"] in (1, 2)),
    "float exact": (where(price=5.5), lambda p: p["price"] == 5.5),
    "float any": (Filter(must=(MatchAny("price", (2.5, 4.75)),)), lambda p: p["price"] in (2.5, 4.75)),
    "float range": (Filter(must=(Range("price", gte=5.0, lt=10.25),)), lambda p: 5.0 <= p["price"] < 10.25),
    "int range": (Filter(must=(Range("rank", gt=3, lte=6),)), lambda p: 3 < p["rank"] <= 6),
    "keyword": (where(color="blue"), lambda p: p["color"] == "blue"),
    "keyword any": (Filter(must=(MatchAny("color", ("red", "black")),)), lambda p: p["color"] in ("red", "black")),
    "keyword negated": (Filter(must_not=(MatchAny("color", ("red", "black")),)), lambda p: p["color"] in COLORS_4[1:3]),
    "list contains": (where(tags="t1"), lambda p: "t1" in p["tags"]),
    "nested key": (where(**{"meta.brand": "acme"}), lambda p: p["meta"]["brand"] == "acme"),
    "nested key range": (Filter(must=(Range("meta.rating", gte=3),)), lambda p: p["meta"]["rating"] >= 3),
    "is empty": (Filter(must=(IsEmpty("sale"),)), lambda p: "sale" not in p),
    "has a value": (Filter(must_not=(IsEmpty("sale"),)), lambda p: "sale" in p),
    "nested filters": (
        Filter(
            must=(Filter(should=(Match("color", "red"), Match("in_stock", False))),),
            must_not=(Filter(must=(Range("price", gt=12.0), Match("meta.brand", "zeta"))),),
        ),
        lambda p: (
            (p["color"] == "red" or not p["in_stock"]) and not (p["price"] > 12.0 and p["meta"]["brand"] == "zeta")
        ),
    ),
}


@pytest.fixture
def typed_store(opener: Opener):
    s = opener()
    s.upsert(_typed_catalogue())
    return s


@pytest.mark.parametrize("case", list(FILTER_CASES))
def test_every_payload_type_filters_the_same(typed_store, case: str) -> None:
    flt, pred = FILTER_CASES[case]
    expected = _ids(pred)
    assert expected, "the case must match something"
    assert len(expected) < len(TYPED) or case == "bool any", "the case must tell items apart"
    assert sorted(it.id for it in typed_store.iter_items(filter=flt)) == expected
    assert typed_store.count(flt) == len(expected)
    hits = typed_store.query("clip.text", np.ones(8), limit=100, filter=flt, exact=True)
    assert sorted(h.id for h in hits) == expected


def test_qdrant_filters_are_accepted_as_objects_and_dicts(typed_store) -> None:
    from qdrant_client import models as m

    obj = m.Filter(
        must=[
            m.FieldCondition(key="in_stock", match=m.MatchValue(value=True)),
            m.Filter(should=[m.FieldCondition(key="color", match=m.MatchAny(any=["red", "blue"]))]),
        ],
        must_not=[m.FieldCondition(key="price", range=m.Range(gt=10.0))],
    )
    as_dict = {
        "must": [
            {"key": "in_stock", "match": {"value": True}},
            {"should": [{"key": "color", "match": {"any": ["red", "blue"]}}]},
        ],
        "must_not": {"key": "price", "range": {"gt": 10.0}},
    }
    expected = _ids(lambda p: p["in_stock"] and p["color"] in ("red", "blue") and not p["price"] > 10.0)
    assert expected
    for flt in (obj, as_dict):
        assert sorted(it.id for it in typed_store.iter_items(filter=flt)) == expected
        hits = typed_store.query("clip.text", np.ones(8), limit=100, filter=flt, exact=True)
        assert sorted(h.id for h in hits) == expected
    assert typed_store.count({"must": [{"is_empty": {"key": "sale"}}]}) == len(_ids(lambda p: "sale" not in p))


@pytest.mark.parametrize(
    ("qdrant", "message"),
    [
        ({"must": [{"has_id": [1, 2]}]}, "unsupported condition"),
        ({"must": [{"key": "color", "match": {"except": ["red"]}}]}, "unsupported match .*except"),
        ({"must": [{"key": "color", "match": {"text": "re"}}]}, "unsupported match"),
        ({"min_should": {"conditions": [], "min_count": 1}}, "unsupported filter part.*min_should"),
        ({"must": [{"key": "when", "range": {"gte": "2024-01-01T00:00:00Z"}}]}, "finite number"),
        ({"must": [{"key": "loc", "geo_radius": {"center": {"lon": 0, "lat": 0}, "radius": 1}}]}, "geo_radius"),
    ],
)
def test_qdrant_conditions_mmsearch_cannot_express_are_refused(typed_store, qdrant, message) -> None:
    from mmsearch.errors import InvalidFilterError

    with pytest.raises(InvalidFilterError, match=message):
        typed_store.count(qdrant)


def test_absent_fields_names_the_fields_no_item_has(typed_store) -> None:
    flt = Filter(must=(Range("pricee", lt=3), Match("color", "red")), must_not=(Match("meta.brandd", "x"),))
    assert typed_store.absent_fields(flt) == ["pricee", "meta.brandd"]
    assert typed_store.absent_fields(where(sale=True)) == []  # 5 of 24 items have it
    assert typed_store.absent_fields(None) == []
    assert typed_store.payload_fields() == ["color", "in_stock", "meta", "price", "rank", "sale", "tags"]


def test_query_bad_input(store) -> None:
    with pytest.raises(UnknownVectorError, match="'clip.video'") as e:
        store.query("clip.video", np.ones(8))
    assert "clip.image.multi" in str(e.value)
    with pytest.raises(VectorDimensionError, match="7 values per row, expected 8"):
        store.query("clip.image", np.ones(7))
    with pytest.raises(NonFiniteVectorError, match="nan"):
        store.query("clip.image", np.array([1, 2, np.nan, 4, 5, 6, 7, 8]))
    with pytest.raises(InvalidItemError, match="dense"):
        store.query("clip.image", np.ones((2, 8)))


# -- bad batches: refused whole, nothing lost ---------------------------------------------------------

GOOD = {"clip.image": np.eye(8, dtype=np.float32)[:2]}
BAD_BATCHES = {
    "wrong dimension": ([Item("n1", GOOD), Item("i3", {"clip.image": np.ones(7)})], VectorDimensionError, "7 values"),
    "nan": ([Item("n1", GOOD), Item("i3", {"cf": np.array([0, np.nan, 0, 0])})], NonFiniteVectorError, "nan"),
    "inf": ([Item("i3", {"clip.text": np.array([1, 0, 0, 0, 0, 0, 0, np.inf])})], NonFiniteVectorError, "inf"),
    "float64 overflow": ([Item("i3", {"cf": np.array([1e300, 0, 0, 0])})], NonFiniteVectorError, "inf"),
    "unknown vector": ([Item("n1", GOOD), Item("i3", {"clip.audio": np.ones(8)})], UnknownVectorError, "'clip.audio'"),
    "multivector name": (
        [Item("i3", {"clip.image.multi": np.ones((2, 8))})],
        UnknownVectorError,
        "pass the rows under 'clip.image'",
    ),
    "duplicate ids": ([Item("i3", GOOD), Item("n1", GOOD), Item("i3", GOOD)], DuplicateIdError, "'i3'"),
    "empty batch": ([], EmptyBatchError, "no items"),
    "id not a string": ([Item(7, GOOD)], InvalidItemError, "7"),  # type: ignore[arg-type]
    "empty id": ([Item("", GOOD)], InvalidItemError, "''"),
    "reserved payload key": ([Item("i3", GOOD, {"item_id": "x"})], InvalidItemError, "'item_id'"),
    "payload not json": ([Item("i3", GOOD, {"when": object()})], InvalidItemError, "JSON"),
    "zero row under cosine": ([Item("i3", {"clip.image": np.zeros((1, 8))})], InvalidItemError, "all zeros"),
    "rows cancel out": (
        [Item("i3", {"clip.image": np.stack([np.eye(8)[0], -np.eye(8)[0]])})],
        InvalidItemError,
        "zero vector",
    ),
    "3-d array": ([Item("i3", {"clip.image": np.ones((1, 2, 8))})], InvalidItemError, "shape"),
    "no rows": ([Item("i3", {"clip.image": np.ones((0, 8))})], InvalidItemError, "0 rows"),
    "cf with rows": ([Item("i3", {"cf": np.ones((2, CF_DIM))})], InvalidItemError, "2 rows"),
    "ragged": ([Item("i3", {"clip.image": [[1.0] * 8, [1.0] * 7]})], InvalidItemError, "not a numeric array"),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES))
def test_bad_batch_is_refused_and_nothing_is_lost(store, case: str) -> None:
    items, error, needle = BAD_BATCHES[case]
    before = _snapshot(store)
    with pytest.raises(error) as e:
        store.upsert(items)
    assert needle.lower() in str(e.value).lower()
    assert isinstance(e.value, StorageError) and isinstance(e.value, ValueError)
    assert _same(before, _snapshot(store))
    assert store.retrieve(["n1"]) == []


@pytest.mark.parametrize("case", ["wrong dimension", "nan", "unknown vector", "duplicate ids", "empty batch"])
def test_bad_update_batch_is_refused_and_nothing_is_lost(store, case: str) -> None:
    updates = {
        "wrong dimension": [VectorUpdate("i1", {"cf": np.ones(CF_DIM)}), VectorUpdate("i2", {"cf": np.ones(3)})],
        "nan": [VectorUpdate("i1", {"cf": np.ones(CF_DIM)}), VectorUpdate("i2", {"clip.text": [np.nan] * 8})],
        "unknown vector": [VectorUpdate("i1", {"cf": np.ones(CF_DIM)}), VectorUpdate("i2", {"bogus": np.ones(8)})],
        "duplicate ids": [VectorUpdate("i1", {"cf": np.ones(CF_DIM)}), VectorUpdate("i1", {"cf": np.zeros(CF_DIM)})],
        "empty batch": [],
    }[case]
    error = {
        "wrong dimension": VectorDimensionError,
        "nan": NonFiniteVectorError,
        "unknown vector": UnknownVectorError,
        "duplicate ids": DuplicateIdError,
        "empty batch": EmptyBatchError,
    }[case]
    before = _snapshot(store)
    with pytest.raises(error):
        store.update_vectors(updates)
    assert _same(before, _snapshot(store))


def test_fingerprint_mismatch_is_refused_and_data_kept(store) -> None:
    other = dataclasses.replace(CLIP_IMAGE, fingerprint="f" * 64)
    before = _snapshot(store)
    with pytest.raises(FingerprintMismatchError) as e:
        store.add_encoders([CLIP_TEXT, other])
    assert CLIP_IMAGE.fingerprint in str(e.value) and "f" * 64 in str(e.value) and "'clip.image'" in str(e.value)
    assert _same(before, _snapshot(store))


def test_dim_change_under_same_fingerprint_is_refused(store) -> None:
    with pytest.raises(SchemaMismatchError, match="8-d"):
        store.add_encoders([dataclasses.replace(CLIP_IMAGE, dim=16)])


# -- schema changes -----------------------------------------------------------------------------------


def test_adding_an_encoder_keeps_the_others(store) -> None:
    before = _snapshot(store)
    assert store.add_encoders([*ENCODERS, MINILM]) == ["minilm.text"]  # its multivector waits for a second row
    assert store.add_encoders([MINILM]) == []
    assert "minilm.text.multi" in store.vector_names and store.schema.get("minilm.text.multi").indexed is False
    assert "minilm.text.multi" in store.schema.pending
    assert _same(before, {k: (p, dict(vs.items())) for k, (p, vs) in _snapshot(store).items()})
    rows = unit_rows(np.random.default_rng(9), 2, 6)
    store.update_vectors([VectorUpdate("i4", {"minilm.text": rows})])
    assert "minilm.text.multi" in store.schema.vectors and not store.schema.pending.get("minilm.text.multi")
    assert store.query("minilm.text", rows[0], limit=1)[0].id == "i4"
    assert store.query("minilm.text.multi", rows, limit=1)[0].score == pytest.approx(2.0, abs=1e-4)
    np.testing.assert_array_equal(
        store.retrieve(["i4"], with_vectors=["clip.image"])[0].vectors["clip.image"], before["i4"][1]["clip.image"]
    )


def test_closed_store_refuses_work(opener: Opener) -> None:
    s = opener()
    s.close()
    s.close()
    with pytest.raises(StorageError, match="closed"):
        s.count()


# -- reopening (folders and servers) ------------------------------------------------------------------


def test_reopen_keeps_data_and_schema(reopener: Opener) -> None:
    with reopener() as s:
        s.upsert(catalogue())
    with reopener(encoders=None) as s:
        assert s.count() == 30
        assert s.vector_names == ["cf", "clip.image", "clip.image.multi", "clip.text", "clip.text.multi"]
        assert s.query("clip.image.multi", catalogue()[4].vectors["clip.image"], limit=1)[0].id == "i4"


def test_reopen_with_other_fingerprint_names_both(reopener: Opener) -> None:
    with reopener() as s:
        s.upsert(catalogue())
    other = dataclasses.replace(CLIP_TEXT, fingerprint="e" * 64)
    with pytest.raises(FingerprintMismatchError) as e:
        reopener(encoders=[CLIP_IMAGE, other])
    assert "b" * 64 in str(e.value) and "e" * 64 in str(e.value)
    with reopener() as s:  # the refused open released the store and changed nothing
        assert s.count() == 30


def test_reopen_adds_new_encoder_and_records_it(reopener: Opener) -> None:
    with reopener() as s:
        s.upsert(catalogue())
    with reopener(encoders=[MINILM]) as s:
        assert "minilm.text" in s.vector_names and s.count() == 30
        s.update_vectors([VectorUpdate("i1", {"minilm.text": unit_rows(np.random.default_rng(1), 1, 6)})])
    with reopener(encoders=None) as s:
        assert s.schema.get("minilm.text").fingerprint == MINILM.fingerprint
        assert s.retrieve(["i1"], with_vectors=["minilm.text"])[0].vectors["minilm.text"].shape == (6,)
        with pytest.raises(FingerprintMismatchError):
            s.add_encoders([dataclasses.replace(MINILM, fingerprint="0" * 64)])


def test_reopen_with_other_cf_dim_is_refused(reopener: Opener) -> None:
    reopener().close()
    with pytest.raises(SchemaMismatchError, match="cf_dim=8"):
        reopener(cf_dim=8)
    with reopener(cf_dim=None) as s:  # None keeps the stored one
        assert s.schema.get("cf").dim == CF_DIM


def test_opening_a_missing_store_without_encoders(reopener: Opener) -> None:
    with pytest.raises(StoreNotFoundError, match="encoders"):
        open_store(reopener.settings(), encoders=None)


# -- the backends agree -------------------------------------------------------------------------------


def test_backends_agree(tmp_path) -> None:
    """The same operations on Edge and local mode give the same ids, scores, counts and pages."""
    stores = [Opener("edge", tmp_path), Opener("memory", tmp_path)]
    results = []
    rng = np.random.default_rng(21)
    queries = [
        NearestQuery("clip.image", rng.standard_normal(8), limit=10),
        NearestQuery("clip.text", rng.standard_normal(8), limit=10, filter=Filter(must=(Range("price", gt=5),))),
        NearestQuery("clip.image.multi", rng.standard_normal((3, 8)), limit=10),
        NearestQuery("clip.text.multi", rng.standard_normal((2, 8)), limit=10, filter=where(color="red")),
        NearestQuery("cf", rng.standard_normal(CF_DIM), limit=10),
    ]
    try:
        for op in stores:
            s = op()
            s.upsert(catalogue(60, seed=3))
            s.update_vectors([VectorUpdate("i5", {"cf": np.ones(CF_DIM)})])
            s.delete(["i7"])
            s.delete_where(Filter(must=(Range("price", gte=55),)))
            s.optimize()
            hits = s.query_batch(queries)
            results.append(
                {
                    "count": s.count(),
                    "red": s.count(where(color="red")),
                    "scroll": [it.id for it in s.scroll(limit=13).items],
                    "ids": [[h.id for h in r] for r in hits],
                    "scores": np.array([[h.score for h in r] for r in hits]),
                    "i5": s.retrieve(["i5"], with_vectors=True)[0],
                }
            )
    finally:
        for op in stores:
            op.close_all()
    edge, mem = results
    assert edge["count"] == mem["count"] == 54 and edge["red"] == mem["red"]
    assert edge["scroll"] == mem["scroll"]
    assert edge["ids"] == mem["ids"]
    np.testing.assert_allclose(edge["scores"], mem["scores"], atol=1e-4)
    assert edge["i5"].payload == mem["i5"].payload
    for name in edge["i5"].vectors:
        np.testing.assert_allclose(edge["i5"].vectors[name], mem["i5"].vectors[name], atol=1e-6)


def test_open_store_rejects_bad_encoder_specs(tmp_path) -> None:
    from mmsearch.errors import ConfigError

    bad = EncoderSpec("clip/vit", "clip", "image", 8, "cosine", "a" * 64)
    with pytest.raises(ConfigError, match="'clip/vit'"):
        open_store({"backend": "memory"}, encoders=[bad])
