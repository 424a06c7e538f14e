"""Collaborative filtering: known-answer recommendations, cold start, catalog alignment, persistence."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from mmsearch.cf import ALSConfig, BPRConfig, CFModel, cf_config, fit, load_model, save_model
from mmsearch.cf.interactions import Interactions
from mmsearch.cf.persist import ARRAYS, SIDECAR
from mmsearch.errors import ConfigError, InputError, ModelError, ModelIntegrityError, NotFoundError, UnknownNameError

GROUP, N_GROUPS = 6, 6


def checkerboard() -> Interactions:
    """Users and items in 6 groups of 6; user i interacted with every item of its group but item i.

    Item i is then the one unseen item that i's neighbours all share, so it must come first.
    """
    users, items = [], []
    for g in range(N_GROUPS):
        for a in range(GROUP):
            for b in range(GROUP):
                if a != b:
                    users.append(f"u{g * GROUP + a}")
                    items.append(f"i{g * GROUP + b}")
    return Interactions.from_arrays(users, items)


# ALS with as many factors as groups learns one factor per group (more factors start fitting the
# missing diagonal itself and blur the answer); BPR's ranking loss is robust to the factor count.
# The defaults' penalty (50, for logs the size of MovieLens) would flatten a 180-interaction
# board: the known answer is checked at a toy log's scale.
CONFIGS = {
    "als": {"factors": N_GROUPS, "iterations": 30, "regularization": 0.01, "alpha": 1.0, "weighting": "linear"},
    "bpr": {"factors": 8, "iterations": 200, "learning_rate": 0.05},
}


@pytest.fixture(scope="module")
def board() -> Interactions:
    return checkerboard()


@pytest.fixture(scope="module")
def als_model(board: Interactions) -> CFModel:
    return fit(board, cf_config("als", **CONFIGS["als"]))[0]


@pytest.mark.parametrize("algorithm", ["als", "bpr"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_checkerboard_user_i_gets_item_i_first(board: Interactions, algorithm: str, seed: int) -> None:
    model, report = fit(board, cf_config(algorithm, seed=seed, **CONFIGS[algorithm]))
    assert (report.n_users, report.n_items, report.n_interactions) == (36, 36, 180)
    for u in range(GROUP * N_GROUPS):
        best = model.recommend(f"u{u}", k=1).item_ids
        assert best == [f"i{u}"], (algorithm, seed, u)


def test_recommend_excludes_seen_items_only_when_asked(als_model: CFModel) -> None:
    seen = set(als_model.seen_items("u0"))
    assert seen == {f"i{j}" for j in range(1, GROUP)}
    fresh = als_model.recommend("u0", k=10)
    assert not seen & set(fresh.item_ids)
    everything = als_model.recommend("u0", k=10, exclude_seen=False)
    assert seen <= set(everything.item_ids[:GROUP])  # own group (seen + i0) ranks above the others
    assert np.all(np.diff(everything.scores) <= 0)


def test_recommend_candidates_and_short_lists(als_model: CFModel) -> None:
    rec = als_model.recommend("u0", k=5, candidates=["i7", "i0", "nope", "i1"])
    assert rec.item_ids == ["i0", "i7"]  # i1 is seen; 'nope' is unknown and ignored
    assert als_model.recommend("u0", k=100).item_ids.__len__() == 36 - 5


def test_score_matches_dot_products_and_marks_unknown_items(als_model: CFModel) -> None:
    scores = als_model.score("u3", ["i3", "unknown-item", "i20"])
    user = als_model.user_vector("u3")
    assert scores[0] == pytest.approx(float(als_model.item_vector("i3") @ user), rel=1e-5, abs=1e-6)
    assert np.isnan(scores[1])
    assert scores[2] == pytest.approx(float(als_model.item_vector("i20") @ user), rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(als_model.all_scores("u3"), als_model.item_factors @ user, rtol=1e-6)


def test_cold_users() -> None:
    table = Interactions.from_arrays(["rich"] * 3 + ["poor"], ["a", "b", "c", "a"])
    model, _ = fit(table, cf_config("als", factors=2, iterations=2))
    assert model.interaction_count("rich") == 3 and model.interaction_count("poor") == 1
    assert not model.is_cold("rich", min_interactions=3)
    assert model.is_cold("poor", min_interactions=2)
    assert not model.is_cold("poor")
    assert model.is_cold("stranger")  # unknown: cold, not an error
    assert model.interaction_count("stranger") == 0
    with pytest.raises(ConfigError, match="min_interactions must be at least 1, got 0"):
        model.is_cold("rich", min_interactions=0)


def test_unknown_user_raises_not_found(als_model: CFModel) -> None:
    for call in (
        lambda: als_model.recommend("zz9", k=3),
        lambda: als_model.score("zz9", ["i0"]),
        lambda: als_model.user_vector("zz9"),
    ):
        with pytest.raises(NotFoundError) as info:
            call()
        assert str(info.value).startswith("user 'zz9' is unknown to the als model")  # not quoted by KeyError
        assert isinstance(info.value, KeyError)
    with pytest.raises(NotFoundError, match="item 'zz9' is unknown"):
        als_model.item_vector("zz9")


def test_fit_is_deterministic_for_a_seed(board: Interactions) -> None:
    for config in (cf_config("als", seed=5, **CONFIGS["als"]), cf_config("bpr", seed=5, **CONFIGS["bpr"])):
        a, _ = fit(board, config)
        b, _ = fit(board, config)
        np.testing.assert_array_equal(a.user_factors, b.user_factors)
        np.testing.assert_array_equal(a.item_factors, b.item_factors)
    c, _ = fit(board, cf_config("bpr", seed=6, **CONFIGS["bpr"]))
    assert not np.array_equal(c.item_factors, b.item_factors)


def test_bpr_vectors_carry_a_bias_dimension(board: Interactions) -> None:
    model, _ = fit(board, cf_config("bpr", factors=4, iterations=5))
    assert model.dim == 5
    np.testing.assert_array_equal(model.user_factors[:, -1], 1.0)


def test_als_weighting() -> None:
    users, items = ["a", "a", "b", "b", "c"], ["x", "y", "y", "z", "x"]
    weighted = Interactions.from_arrays(users, items, [5.0, 1.0, 2.0, 1.0, 3.0])
    ones = Interactions.from_arrays(users, items)
    binary, _ = fit(weighted, cf_config("als", factors=3, weighting="binary"))
    plain, _ = fit(ones, cf_config("als", factors=3, weighting="linear"))
    linear, _ = fit(weighted, cf_config("als", factors=3, weighting="linear"))
    np.testing.assert_allclose(binary.user_factors, plain.user_factors, rtol=1e-6)
    assert not np.allclose(linear.user_factors, plain.user_factors)


def test_no_blas_thread_warning(board: Interactions) -> None:
    import implicit.utils

    implicit.utils._checked_blas_config = False  # implicit warns once per process
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fit(board, cf_config("als", factors=2, iterations=1))
        fit(board, cf_config("bpr", factors=2, iterations=1))


def test_catalog_alignment_counts_unknowns() -> None:
    table = Interactions.from_arrays(["a", "a", "b", "c"], ["x", "ghost", "ghost", "y"])
    model, report = fit(table, cf_config("als", factors=2, iterations=2), catalog_item_ids=["x", "y", "z", "w"])
    assert report.catalog is not None
    assert report.catalog.unknown_items == ("ghost",) and report.catalog.rows_dropped == 2
    assert report.users_dropped == 1  # b only had the ghost item
    assert report.catalog_items_without_interactions == 2  # z and w: cold items
    assert model.item_ids == ("x", "y") and model.user_ids == ("a", "c")
    assert "1 users left without interactions" in report.summary()


def test_fit_with_nothing_left_is_an_error() -> None:
    table = Interactions.from_arrays(["a"], ["ghost"])
    with pytest.raises(InputError, match="no interactions to train the als model on once items unknown"):
        fit(table, catalog_item_ids=["x"])


def test_config_validation() -> None:
    assert cf_config("als") == ALSConfig() and isinstance(cf_config("bpr"), BPRConfig)
    with pytest.raises(ConfigError, match="learning_rate"):
        cf_config("als", learning_rate=0.1)  # a BPR-only option: extra="forbid"
    with pytest.raises(ConfigError, match="factors"):
        cf_config("bpr", factors=0)
    with pytest.raises(UnknownNameError, match="'svd'.*known: als, bpr"):
        cf_config("svd")


def test_save_and_load_round_trip(tmp_path: Path, als_model: CFModel) -> None:
    folder = save_model(als_model, tmp_path / "cf")
    with np.load(folder / ARRAYS, allow_pickle=False) as data:  # loads without pickle
        assert sorted(data.files) == ["item_factors", "seen_indices", "seen_indptr", "user_factors"]
    sidecar = json.loads((folder / SIDECAR).read_text())
    assert sidecar["config"]["algorithm"] == "als" and sidecar["dim"] == N_GROUPS
    loaded = load_model(folder)
    assert loaded.config == als_model.config
    assert loaded.user_ids == als_model.user_ids and loaded.item_ids == als_model.item_ids
    np.testing.assert_array_equal(loaded.item_factors, als_model.item_factors)
    assert loaded.recommend("u4", k=3).item_ids == als_model.recommend("u4", k=3).item_ids
    assert loaded.seen_items("u4") == als_model.seen_items("u4")


def test_load_refuses_tampered_or_missing_files(tmp_path: Path, als_model: CFModel) -> None:
    folder = save_model(als_model, tmp_path / "cf")
    arrays = folder / ARRAYS
    data = bytearray(arrays.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte inside the factors
    arrays.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_model(folder)
    with pytest.raises(ModelError, match="cf_model.json is missing"):
        load_model(tmp_path / "elsewhere")
