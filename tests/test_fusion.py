"""Fusion reference (`mmsearch.query.fusion`): hand-computed scores for every method and the missing cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmsearch.errors import ConfigError, UnknownNameError
from mmsearch.query import fusion as F

NAN = math.nan
# Leg A is a cosine, leg B an unbounded CF dot product.
A = [0.8, 0.6, 0.4]
B = [10.0, 30.0, 20.0]


def test_minmax_weighted_sum_by_hand():
    # nA = [1, .5, 0], nB = [0, 1, .5]; fused = .75 nA + .25 nB
    out = F.weighted_sum(np.column_stack([A, B]), [0.75, 0.25])
    np.testing.assert_allclose(out.scores, [0.75, 0.625, 0.125])
    np.testing.assert_allclose(out.normalized, [[1, 0], [0.5, 1], [0, 0.5]])
    np.testing.assert_allclose(out.contributions.sum(axis=1), out.scores)
    assert out.ranking(3).tolist() == [0, 1, 2]


def test_cf_scale_does_not_swamp_cosines():
    # Raw sums would let B (tens) decide alone; normalised, A's weight still wins.
    raw = F.weighted_sum(np.column_stack([A, B]), [0.75, 0.25], normalization="none")
    assert raw.ranking(1).tolist() == [1]
    assert F.weighted_sum(np.column_stack([A, B]), [0.75, 0.25]).ranking(1).tolist() == [0]


def test_missing_modality_is_renormalised_not_zeroed():
    m = np.array([[0.8, 10.0], [NAN, 30.0], [0.4, 20.0]])
    out = F.weighted_sum(m, [0.75, 0.25])
    # Row 1 has no A: its score is its B score alone (weight .25 renormalised to 1).
    np.testing.assert_allclose(out.scores, [0.75, 1.0, 0.125])
    np.testing.assert_allclose(out.weights[1], [0.0, 1.0])
    assert math.isnan(out.normalized[1, 0])
    # What an engine does with an implicit 0: row 1 drops from first to second place.
    zero = F.weighted_sum(m, [0.75, 0.25], missing="zero")
    np.testing.assert_allclose(zero.scores, [0.75, 0.25, 0.125])
    assert out.ranking(3).tolist() == [1, 0, 2]
    assert zero.ranking(3).tolist() == [0, 1, 2]


def test_missing_leg_takes_no_part():
    m = np.array([[NAN, 10.0], [NAN, 30.0], [NAN, 20.0]])
    out = F.weighted_sum(m, [0.9, 0.1])
    np.testing.assert_allclose(out.scores, [0.0, 1.0, 0.5])  # B alone, renormalised to weight 1
    np.testing.assert_allclose(out.weights[:, 1], 1.0)


def test_candidate_with_no_leg_is_never_ranked():
    m = np.array([[0.9, NAN], [NAN, NAN], [0.1, NAN]])
    out = F.weighted_sum(m, [1.0, 1.0])
    assert math.isnan(out.scores[1])
    assert out.ranking(3).tolist() == [0, 2]


def test_zero_weight_leg_is_ignored_even_when_it_is_the_only_one_present():
    m = np.array([[0.9, 1.0], [NAN, 5.0]])
    out = F.weighted_sum(m, [1.0, 0.0])
    assert out.scores[0] == pytest.approx(1.0)
    assert math.isnan(out.scores[1])


def test_dbsf_by_hand():
    # A = [1, 2, 3]: mean 2, sample sd 1, range [-1, 5] -> (s + 1) / 6. B has no spread -> 0.5.
    m = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, NAN]])
    zero = F.dbsf(m, missing="zero")  # Qdrant's DBSF: unweighted sum, missing adds nothing
    np.testing.assert_allclose(zero.scores, [1 / 3 + 0.5, 0.5 + 0.5, 2 / 3])
    renorm = F.dbsf(m, [1.0, 1.0])
    np.testing.assert_allclose(renorm.scores, [(1 / 3 + 0.5) / 2, 0.5, 2 / 3])
    assert F.normalize([7.0], "dbsf").tolist() == [0.5]


def test_rrf_by_hand():
    m = np.array([[0.9, 0.2], [0.5, NAN], [0.1, 0.8]])  # A ranks 0,1,2; B ranks row 2 then row 0
    plain = F.weighted_rrf(m, k=60, missing="zero")
    np.testing.assert_allclose(plain.scores, [1 / 60 + 1 / 61, 1 / 61, 1 / 62 + 1 / 60])
    # Qdrant's weighted term 1 / ((p + 1) / w + k - 1): A at w = 2.
    weighted = F.weighted_rrf(m, [2.0, 1.0], k=60, missing="zero")
    np.testing.assert_allclose(weighted.scores, [1 / 59.5 + 1 / 61, 1 / 60, 1 / 60.5 + 1 / 60])
    # Renormalised: row 1 lacks B, so its A term is scaled by (2 + 1) / 2.
    renorm = F.weighted_rrf(m, [2.0, 1.0], k=60)
    np.testing.assert_allclose(renorm.scores, [1 / 59.5 + 1 / 61, 1.5 / 60, 1 / 60.5 + 1 / 60])
    np.testing.assert_allclose(renorm.contributions.sum(axis=1), renorm.scores)


def test_rrf_zero_weight_and_ties():
    m = np.array([[0.5, 0.1], [0.5, 0.9], [0.1, 0.5]])
    assert F.ranks(m)[:, 0].tolist() == [0, 1, 2]  # tie: lower row first
    out = F.weighted_rrf(m, [1.0, 0.0], k=1, missing="zero")
    np.testing.assert_allclose(out.scores, [1.0, 0.5, 1 / 3])


def test_minmax_degenerate_and_none():
    assert F.normalize([0.3, 0.3], "minmax").tolist() == [1.0, 1.0]
    assert F.normalize([0.3, NAN], "none")[0] == 0.3
    assert math.isnan(F.normalize([0.3, NAN])[1])
    assert F.affine([2.0, 4.0]) == F.Affine(2.0, 0.5)


def test_fuse_dispatches_and_inputs_stay_untouched():
    m = np.array([[0.8, 10.0], [NAN, 30.0], [0.4, 20.0]])
    w = np.array([0.75, 0.25])
    before_m, before_w = m.copy(), w.copy()
    for method in F.METHODS:
        F.fuse(m, w, method)  # type: ignore[arg-type]
    np.testing.assert_array_equal(m, before_m)
    np.testing.assert_array_equal(w, before_w)
    np.testing.assert_allclose(F.fuse(m, w, "dbsf").scores, F.dbsf(m, w).scores)
    np.testing.assert_allclose(F.fuse(m, w, "rrf", k=5).scores, F.weighted_rrf(m, w, k=5).scores)


@pytest.mark.parametrize(
    ("call", "error", "needle"),
    [
        (lambda: F.weighted_sum([[1.0, 2.0]], [1.0]), ConfigError, "1 weights for 2 legs"),
        (lambda: F.weighted_sum([[1.0]], [-1.0]), ConfigError, "-1.0"),
        (lambda: F.weighted_sum([[1.0]], [math.inf]), ConfigError, "inf"),
        (lambda: F.weighted_sum([[math.inf]], [1.0]), ConfigError, "infinity"),
        (lambda: F.weighted_sum([1.0, 2.0], [1.0]), ConfigError, "2-D"),
        (lambda: F.weighted_sum([[1.0]], [1.0], normalization="zscore"), UnknownNameError, "zscore"),
        (lambda: F.weighted_sum([[1.0]], [1.0], missing="skip"), UnknownNameError, "skip"),
        (lambda: F.weighted_rrf([[1.0]], k=0), ConfigError, "k=0"),
        (lambda: F.fuse([[1.0]], [1.0], "max"), UnknownNameError, "max"),
    ],
)
def test_bad_arguments(call, error, needle):
    with pytest.raises(error, match=None) as info:
        call()
    assert needle in str(info.value)


# ------------------------------------------------------------------ the engine's rules, shared with the evaluation


def test_pool_is_the_union_of_each_legs_best_rows() -> None:
    m = np.array([[5.0, 0.0], [4.0, 1.0], [3.0, np.nan], [2.0, 3.0], [np.nan, 2.0]])
    assert F.pool(m, 2).tolist() == [0, 1, 3, 4]
    assert F.pool(m, 1).tolist() == [0, 3]
    ties = np.array([[1.0], [1.0], [1.0]])
    assert F.pool(ties, 2).tolist() == [0, 1]  # ties: lower row first, like a kNN's deterministic order here
    reach = np.array([[True, True], [False, True], [True, True], [True, False], [True, True]])
    assert F.pool(m, 2, retrievable=reach).tolist() == [0, 1, 2, 4]  # a leg pools only what it can return
    with pytest.raises(ConfigError, match="depth"):
        F.pool(m, 0)
    with pytest.raises(ConfigError, match="retrievable"):
        F.pool(m, 2, retrievable=np.ones((2, 2), bool))


def test_candidate_depth_and_engine_weights() -> None:
    assert F.candidate_depth(50, 10) == 50 and F.candidate_depth(50, 80) == 80
    np.testing.assert_allclose(F.engine_weights([2.0, 6.0], "wsum"), [0.25, 0.75])
    np.testing.assert_allclose(F.engine_weights([2.0, 6.0], "rrf"), [0.5, 1.5])  # averaging 1
    with pytest.raises(ConfigError, match="not all 0"):
        F.engine_weights([0.0, 0.0], "wsum")
    with pytest.raises(UnknownNameError, match="borda"):
        F.engine_weights([1.0], "borda")


def test_fuse_candidates_is_the_engines_fusion() -> None:
    m = np.array([[0.9, 3.0], [0.1, np.nan], [0.5, -1.0]])
    got = F.fuse_candidates(m, [3.0, 1.0], "wsum")
    np.testing.assert_allclose(got.scores, F.weighted_sum(m, [0.75, 0.25]).scores)
    dbsf = F.fuse_candidates(m, [3.0, 1.0], "dbsf")
    np.testing.assert_allclose(dbsf.scores, F.weighted_sum(m, [0.75, 0.25], normalization="dbsf").scores)
    rrf = F.fuse_candidates(m, [1.0, 1.0], "rrf", k=10)
    np.testing.assert_allclose(rrf.scores, F.weighted_rrf(m, [1.0, 1.0], k=10).scores)
    params = [F.Affine(0.0, 1.0), F.Affine(-1.0, 0.25)]
    fixed = F.fuse_candidates(m, [1.0, 1.0], "wsum", params=params)
    np.testing.assert_allclose(fixed.normalized[0], [0.9, 1.0])
