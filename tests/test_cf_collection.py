"""CF attached to a collection (`mmsearch.cf.collection`): vectors written and cleared, dims, where the model lives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmsearch.cf import cf_config
from mmsearch.cf.collection import cf_folder, check_cf_dim, default_factors, fit_collection_cf, load_collection_cf
from mmsearch.cf.interactions import Interactions
from mmsearch.errors import ConfigError, InputError, SchemaMismatchError
from mmsearch.storage import Item, open_store
from tests.storage_support import CLIP_TEXT, unit_rows


def _store(cf_dim: int | None):
    rng = np.random.default_rng(0)
    store = open_store({"backend": "memory", "collection": "c", "cf_dim": cf_dim}, encoders=[CLIP_TEXT])
    store.upsert([Item(f"i{j}", {"clip.text": unit_rows(rng, 1, 8)}, {"n": j}) for j in range(8)])
    return store


def _log(items: list[int], users: int = 4) -> Interactions:
    u = [f"u{k}" for k in range(users) for _ in items]
    i = [f"i{j}" for _ in range(users) for j in items]
    return Interactions.from_arrays([*u, "u0"], [*i, "ghost"])


def test_bpr_vectors_fill_cf_dim_with_the_bias(tmp_path: Path):
    with _store(cf_dim=5) as store:
        model, summary = fit_collection_cf(
            store, _log([0, 1, 2, 3, 4, 5, 6, 7]), cf_config("bpr", factors=4, iterations=3), tmp_path / "cf"
        )
        assert model.dim == 5 and summary.dim == 5 and summary.factors == 4
        got = store.retrieve(["i2"], with_vectors=["cf"])[0].vectors["cf"]
        np.testing.assert_allclose(got, model.item_vector("i2"), rtol=1e-6)
        np.testing.assert_allclose(model.user_factors[:, -1], 1.0)  # the bias's constant partner
        assert summary.unknown_items == 1 and summary.rows_dropped == 1 and summary.examples["items"] == ["ghost"]
        assert store.retrieve(["i0"], with_vectors=True)[0].payload == {"n": 0}  # payload untouched


@pytest.mark.parametrize(("algorithm", "factors", "dim"), [("als", 12, 12), ("bpr", 6, 7)])
def test_the_first_fit_adds_the_cf_vector_at_the_models_length(tmp_path: Path, algorithm, factors, dim):
    with _store(cf_dim=None) as store:
        assert "cf" not in store.schema.vectors  # nothing fitted: no cf slot in any item
        model, _ = fit_collection_cf(store, _log(list(range(8))), cf_config(algorithm, factors=factors), tmp_path)
        assert store.schema.get("cf").dim == dim == model.dim
        assert store.retrieve(["i2"], with_vectors=["cf"])[0].vectors["cf"].shape == (dim,)
        with pytest.raises(SchemaMismatchError, match=f"holds {dim}"):  # from then on, its length is fixed
            fit_collection_cf(store, _log(list(range(8))), cf_config(algorithm, factors=factors + 2), tmp_path)


def test_refit_clears_the_cf_vector_of_items_left_without_interactions(tmp_path: Path):
    with _store(cf_dim=3) as store:
        fit_collection_cf(store, _log(list(range(8))), cf_config("als", factors=3, iterations=2), tmp_path / "cf")
        assert all("cf" in it.vectors for it in store.retrieve([f"i{j}" for j in range(8)], with_vectors=["cf"]))
        _, summary = fit_collection_cf(
            store, _log([0, 1, 2]), cf_config("als", factors=3, iterations=2), tmp_path / "cf"
        )
        assert summary.items_written == 3 and summary.items_cleared == 5
        stored = {it.id: it.vectors for it in store.retrieve([f"i{j}" for j in range(8)], with_vectors=True)}
        assert "cf" in stored["i1"] and "cf" not in stored["i6"] and "clip.text" in stored["i6"]
        assert "items_cleared" in summary.to_json() and "5 without interactions" in summary.summary()


def test_factor_count_must_fit_the_store():
    assert default_factors("als", 64) == 64 and default_factors("bpr", 64) == 63
    check_cf_dim("bpr", 63, 64)
    with pytest.raises(SchemaMismatchError, match="--factors 63"):
        check_cf_dim("bpr", 64, 64)
    with pytest.raises(SchemaMismatchError, match="holds 64: use --factors 64"):
        check_cf_dim("als", 32, 64)
    with pytest.raises(ConfigError):
        default_factors("bpr", 1)


def test_no_interaction_with_a_catalog_item_is_an_error(tmp_path: Path):
    with _store(cf_dim=3) as store, pytest.raises(InputError, match="no interactions"):
        fit_collection_cf(
            store, Interactions.from_arrays(["u"], ["ghost"]), cf_config("als", factors=3), tmp_path / "cf"
        )


def test_where_the_model_lives(tmp_path: Path):
    with open_store({"path": tmp_path, "collection": "shop"}, encoders=[CLIP_TEXT]) as store:
        assert cf_folder(store) == tmp_path / "shop" / "cf"
        assert cf_folder(store, tmp_path / "x") == tmp_path / "x"  # an explicit folder wins
        assert load_collection_cf(store) is None  # nothing fitted yet
    with open_store({"backend": "memory", "path": tmp_path / "local", "collection": "shop"}, encoders=[]) as store:
        assert cf_folder(store) == tmp_path / "local" / "shop.cf"


def test_a_store_without_a_folder_keeps_no_model_unless_given_one(tmp_path: Path):
    with _store(cf_dim=3) as store:  # in memory: no folder of its own
        assert cf_folder(store) is None and load_collection_cf(store) is None
        with pytest.raises(ConfigError, match="--cf-path"):
            fit_collection_cf(store, _log([0, 1]), cf_config("als", factors=3, iterations=2))
        assert "cf" not in store.retrieve(["i0"], with_vectors=True)[0].vectors  # refused before training
        model, summary = fit_collection_cf(store, _log([0, 1]), cf_config("als", factors=3, iterations=2), tmp_path)
        assert summary.folder == tmp_path
        loaded = load_collection_cf(store, tmp_path)
        assert loaded is not None and loaded.item_ids == model.item_ids


def test_a_fitted_model_is_found_in_the_stores_own_folder(tmp_path: Path):
    rng = np.random.default_rng(0)
    with open_store({"path": tmp_path, "collection": "shop", "cf_dim": 3}, encoders=[CLIP_TEXT]) as store:
        store.upsert([Item(f"i{j}", {"clip.text": unit_rows(rng, 1, 8)}) for j in range(4)])
        _, summary = fit_collection_cf(store, _log([0, 1, 2]), cf_config("als", factors=3, iterations=2))
        assert summary.folder == tmp_path / "shop" / "cf"
        loaded = load_collection_cf(store)
        assert loaded is not None and loaded.n_items == 3
