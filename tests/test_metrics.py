"""Ranking metrics: hand-computed cases, edge cases, and a plain-loop reference on random data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse

from mmsearch.errors import ConfigError, InputError
from mmsearch.eval.metrics import (
    average_precision_at_k,
    coverage_at_k,
    evaluate,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from mmsearch.ranking import top_k, top_k_rows

LOG2_3, LOG2_5 = math.log2(3), math.log2(5)

# One user, ranking items 0..4; relevant {1, 3, 7}: hits at positions 2 and 4, item 7 never ranked.
RANKED = np.array([[0, 1, 2, 3, 4]])
RELEVANT = [{1, 3, 7}]


def test_precision_hand_computed() -> None:
    assert precision_at_k(RANKED, RELEVANT, 5)[0] == pytest.approx(2 / 5)  # 2 hits in 5
    assert precision_at_k(RANKED, RELEVANT, 2)[0] == pytest.approx(1 / 2)  # item 1 at position 2
    assert precision_at_k(RANKED, RELEVANT, 1)[0] == 0.0


def test_recall_hand_computed() -> None:
    assert recall_at_k(RANKED, RELEVANT, 5)[0] == pytest.approx(2 / 3)  # 2 of 3 relevant found
    assert recall_at_k(RANKED, RELEVANT, 2)[0] == pytest.approx(1 / 3)


def test_average_precision_hand_computed() -> None:
    # AP@5 = (P@2 + P@4) / min(5, 3) = (1/2 + 2/4) / 3 = 1/3
    assert average_precision_at_k(RANKED, RELEVANT, 5)[0] == pytest.approx(1 / 3)
    # AP@2 = P@2 / min(2, 3) = (1/2) / 2 = 1/4
    assert average_precision_at_k(RANKED, RELEVANT, 2)[0] == pytest.approx(1 / 4)


def test_average_precision_denominator_is_min_k_relevant() -> None:
    # Five relevant items, top 2 both relevant: (P@1 + P@2) / min(2, 5) = (1 + 1) / 2 = 1.
    assert average_precision_at_k(np.array([[0, 1]]), [{0, 1, 2, 3, 4}], 2)[0] == pytest.approx(1.0)


def test_ndcg_binary_hand_computed() -> None:
    # DCG@5 = 1/log2(3) + 1/log2(5) (positions 2 and 4); IDCG@5 = 1 + 1/log2(3) + 1/log2(4) (3 relevant).
    dcg = 1 / LOG2_3 + 1 / LOG2_5
    idcg = 1 + 1 / LOG2_3 + 1 / 2
    assert ndcg_at_k(RANKED, RELEVANT, 5)[0] == pytest.approx(dcg / idcg)  # 0.49819...
    # @2: DCG = 1/log2(3); IDCG = 1 + 1/log2(3).
    assert ndcg_at_k(RANKED, RELEVANT, 2)[0] == pytest.approx((1 / LOG2_3) / (1 + 1 / LOG2_3))


def test_ndcg_graded_with_tied_grades() -> None:
    ranked = np.array([[2, 0, 1]])
    grades = [{0: 3.0, 1: 3.0, 2: 1.0}]  # items 0 and 1 tie at grade 3
    # DCG = 1/log2(2) + 3/log2(3) + 3/log2(4) = 1 + 3/log2(3) + 1.5
    # IDCG = 3/log2(2) + 3/log2(3) + 1/log2(4) = 3 + 3/log2(3) + 0.5
    expected = (1 + 3 / LOG2_3 + 1.5) / (3 + 3 / LOG2_3 + 0.5)  # 0.81457...
    assert ndcg_at_k(ranked, grades, 3, graded=True)[0] == pytest.approx(expected)
    # Binary relevance (the default) ignores grades: every ranked item is relevant, so 1.
    assert ndcg_at_k(ranked, grades, 3)[0] == pytest.approx(1.0)
    # Swapping the two tied items changes nothing.
    assert ndcg_at_k(np.array([[2, 1, 0]]), grades, 3, graded=True)[0] == pytest.approx(expected)


def test_k_larger_than_the_ranking() -> None:
    ranked = np.array([[5, -1]])  # one item, then padding
    relevant = [{5}]
    assert precision_at_k(ranked, relevant, 10)[0] == pytest.approx(1 / 10)  # still divided by k
    assert recall_at_k(ranked, relevant, 10)[0] == 1.0
    assert average_precision_at_k(ranked, relevant, 10)[0] == 1.0  # P@1 / min(10, 1)
    assert ndcg_at_k(ranked, relevant, 10)[0] == 1.0


def test_user_without_relevant_items_is_nan_and_skipped_by_evaluate() -> None:
    ranked = np.array([[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]])
    relevant = [{1, 3, 7}, set()]
    for metric in (precision_at_k, recall_at_k, average_precision_at_k, ndcg_at_k):
        values = metric(ranked, relevant, 5)
        assert math.isnan(values[1]), metric.__name__
    report = evaluate(ranked, relevant, ks=[5], n_items=10)
    assert (report.n_users, report.n_skipped) == (1, 1)
    # Means over the one defined user equal the single-user values above.
    assert report.values["map@5"] == pytest.approx(1 / 3)
    assert report.values["recall@5"] == pytest.approx(2 / 3)
    assert report.values["precision@5"] == pytest.approx(2 / 5)
    assert report.values["ndcg@5"] == pytest.approx((1 / LOG2_3 + 1 / LOG2_5) / (1.5 + 1 / LOG2_3))
    assert report.values["coverage@5"] == pytest.approx(5 / 10)  # items 0-4 of 10


def test_coverage_hand_computed() -> None:
    ranked = np.array([[0, 1, 2], [1, 2, 3], [-1, -1, -1]])
    assert coverage_at_k(ranked, 10, 2) == pytest.approx(3 / 10)  # {0, 1, 2}
    assert coverage_at_k(ranked, 10, 3) == pytest.approx(4 / 10)  # {0, 1, 2, 3}


def test_evaluate_default_ks_and_sparse_relevance() -> None:
    relevance = scipy.sparse.csr_matrix(([4.0, 5.0], ([0, 0], [1, 3])), shape=(1, 40))
    report = evaluate(RANKED, relevance)
    assert sorted(report.values) == sorted(
        f"{m}@{k}" for m in ("map", "ndcg", "recall", "precision") for k in (10, 20, 30)
    )
    # Hits at 2 and 4, 2 relevant: AP@10 = (1/2 + 2/4) / 2 = 1/2; recall 1; precision 2/10.
    assert report.values["map@10"] == pytest.approx(0.5)
    assert report.values["recall@10"] == 1.0
    assert report.values["precision@10"] == pytest.approx(0.2)


def test_dense_relevance_matrix_equals_sets() -> None:
    dense = np.zeros((1, 8))
    dense[0, [1, 3, 7]] = 1.0
    assert ndcg_at_k(RANKED, dense, 5)[0] == pytest.approx(ndcg_at_k(RANKED, RELEVANT, 5)[0])
    with pytest.raises(InputError, match=r"must be 2-D \(users x items\), got shape \(8,\)"):
        ndcg_at_k(RANKED, dense[0], 5)


def test_repeated_item_in_a_row_is_refused() -> None:
    with pytest.raises(InputError, match="row 1 lists item 4 more than once"):
        precision_at_k(np.array([[0, 1], [4, 4]]), [{0}, {4}], 2)


def test_bad_k_and_shapes() -> None:
    with pytest.raises(ConfigError, match="k must be a positive integer, got 0"):
        ndcg_at_k(RANKED, RELEVANT, 0)
    with pytest.raises(InputError, match="relevance has 2 users but ranked has 1 rows"):
        recall_at_k(RANKED, [{1}, {2}], 5)
    with pytest.raises(InputError, match="2-D"):
        recall_at_k(np.array([0, 1]), RELEVANT, 5)
    with pytest.raises(InputError, match="index 12 >= n_items 10"):
        coverage_at_k(np.array([[12]]), 10, 1)


# ----------------------------------------------------------------- independent reference


def reference(ranked: list[int], relevant: dict[int, float], k: int) -> dict[str, float]:
    """Textbook definitions, one user, plain Python loops."""
    top = [i for i in ranked[:k] if i >= 0]
    hits = [1 if i in relevant else 0 for i in top]
    n_rel = len(relevant)
    ap, found = 0.0, 0
    for pos, hit in enumerate(hits, start=1):
        if hit:
            found += 1
            ap += found / pos
    dcg = sum(relevant.get(i, 0.0) / math.log2(pos + 1) for pos, i in enumerate(top, start=1))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(pos + 1) for pos, g in enumerate(ideal, start=1))
    return {
        "precision": sum(hits) / k,
        "recall": sum(hits) / n_rel,
        "map": ap / min(k, n_rel),
        "ndcg": dcg / idcg,
    }


def test_matches_reference_on_random_rankings() -> None:
    rng = np.random.default_rng(7)
    n_users, n_items, width = 40, 30, 12
    ranked = np.full((n_users, width), -1)
    relevant: list[dict[int, float]] = []
    for u in range(n_users):
        length = rng.integers(1, width + 1)  # some rows padded
        ranked[u, :length] = rng.choice(n_items, size=length, replace=False)
        items = rng.choice(n_items, size=rng.integers(1, 10), replace=False)
        relevant.append({int(i): float(rng.integers(1, 4)) for i in items})
    for k in (1, 5, 12, 20):  # 20 > width
        ours = {
            "precision": precision_at_k(ranked, relevant, k),
            "recall": recall_at_k(ranked, relevant, k),
            "map": average_precision_at_k(ranked, relevant, k),
            "ndcg": ndcg_at_k(ranked, relevant, k, graded=True),
        }
        for u in range(n_users):
            expected = reference(ranked[u].tolist(), relevant[u], k)
            for name, value in expected.items():
                assert ours[name][u] == pytest.approx(value), (name, k, u)


def test_ndcg_matches_sklearn() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn not installed")
    rng = np.random.default_rng(3)
    n_users, n_items = 25, 15
    scores = rng.random((n_users, n_items))  # distinct scores: no ties for sklearn to average
    grades = rng.integers(0, 4, size=(n_users, n_items)).astype(float)
    grades[grades.sum(axis=1) == 0, 0] = 1.0
    ranked = top_k_rows(scores, n_items)
    relevance = scipy.sparse.csr_matrix(grades)
    for k in (3, 10):
        ours = ndcg_at_k(ranked, relevance, k, graded=True)
        theirs = [sklearn_metrics.ndcg_score(grades[u : u + 1], scores[u : u + 1], k=k) for u in range(n_users)]
        np.testing.assert_allclose(ours, theirs, rtol=1e-10)


# ----------------------------------------------------------------- ranking helpers


def test_top_k_breaks_ties_by_index_and_drops_non_finite() -> None:
    scores = np.array([0.5, 0.9, 0.5, -np.inf, np.nan, 0.9, 0.1])
    assert top_k(scores, 3).tolist() == [1, 5, 0]  # 0.9 (1), 0.9 (5), then the tie at 0.5 -> index 0
    assert top_k(scores, 10).tolist() == [1, 5, 0, 2, 6]  # -inf and NaN never returned


def test_top_k_rows_pads_with_minus_one() -> None:
    scores = np.array([[0.1, 0.3, 0.2], [-np.inf, 0.5, -np.inf]])
    assert top_k_rows(scores, 4).tolist() == [[1, 2, 0, -1], [1, -1, -1, -1]]
