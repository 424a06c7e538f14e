"""The library API end to end: index the example catalog, then search it through `Index`."""

from pathlib import Path

import pytest

import mmsearch.examples
from mmsearch.cf import cf_config
from mmsearch.cf.collection import fit_collection_cf
from mmsearch.cf.interactions import Interactions
from mmsearch.errors import ConfigError, NotFoundError
from mmsearch.indexing.index import Index
from mmsearch.query.engine import SearchSettings
from mmsearch.storage import where

CATALOG = Path(mmsearch.examples.__file__).parent / "catalog.jsonl"


@pytest.fixture(scope="module")
def index(tiny_clip_dir, minilm_dir, tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    with Index.open(models=[tiny_clip_dir, minilm_dir], store_path=store) as idx:
        summary = idx.sync(CATALOG, errors=store / "errors.jsonl")
        assert summary.ok and summary.indexed == 40
        yield idx


def test_text_search_finds_the_item_the_text_describes(index):
    hits = index.search(text="a red ball for kids", weights={"bert": 1}, limit=3, explain=True)
    assert hits[0].id == "sku-001"
    assert hits[0].payload["title"] == "Red ball"
    assert list(hits[0].signals) == ["minilm.text"]  # only the weighted signal takes part
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_filters_and_more_like_this(index):
    hits = index.search(item="sku-001", filter=where(category="toys"), limit=5)
    ids = [h.id for h in hits]
    assert "sku-001" not in ids and ids
    assert all(h.payload["category"] == "toys" for h in hits)


def test_a_sync_drops_the_cached_searcher(index):
    first = index.searcher()
    assert index.searcher() is first
    index.sync(CATALOG)
    assert index.searcher() is not first


def test_recommend_needs_cf_then_uses_it(index):
    with pytest.raises(ConfigError, match="run `mmsearch cf fit"):
        index.recommend("u1")
    # Two tastes: u0..u3 buy group A, u4..u7 group B; user u misses item u % 4 of their group.
    groups = [["sku-001", "sku-002", "sku-003", "sku-004"], ["sku-010", "sku-011", "sku-012", "sku-013"]]
    users, items = [], []
    for u in range(8):
        group = groups[u // 4]
        for i, item in enumerate(group):
            if i != u % 4:
                users.append(f"u{u}")
                items.append(item)
    log = Interactions.from_arrays(users, items)
    fit_collection_cf(index.store, log, cf_config("als", factors=64, iterations=15, regularization=1.0))
    searcher = index.searcher(SearchSettings())
    for u in range(8):
        hits = searcher.recommend(f"u{u}", weights={"cf": 1}, limit=3)
        assert hits[0].id == groups[u // 4][u % 4], f"u{u}: {[h.id for h in hits]}"
        assert not set(groups[u // 4]) - {groups[u // 4][u % 4]} & {h.id for h in hits}  # seen are excluded
    with pytest.raises(NotFoundError, match="nobody"):
        index.recommend("nobody")
