"""Evaluation runs: split, learn from train, rank for every held-out user, score with metrics.

The protocol every reported number follows:

- Everything is learnt from the training part only: CF factors (ALS, BPR), content profiles
  (the mean of a user's training items' vectors), popularity.
- The validation part chooses what a hybrid fuses (the content strategy with the best
  validation score, `tune_metric`) and, with `tune=True`, its fusion weights and scheme from a
  grid; the test part only reports. Nothing about test is seen before the final ranking.
- A user is evaluated on a part when they have at least one interaction in it; every held-out
  interaction is relevant (binary relevance, whatever its weight or rating).
- Candidates: every catalogue item for the random and temporal splits; for the cold-items split,
  only the items without any training interaction (new items ranked among new items, which only
  content can score: CF and popularity have nothing to say about them). From either set, the
  user's training items are removed, and, when scoring test, their validation items too (known
  interactions, not targets).
- Metrics: `mmsearch.eval.metrics.evaluate` at each k (MAP, nDCG, Recall, Precision averaged over
  the evaluated users, and coverage of the catalogue by their top-k lists).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmsearch.cf import ALSConfig, BPRConfig, fit
from mmsearch.cf.interactions import Interactions
from mmsearch.errors import ConfigError, InputError, UnknownNameError
from mmsearch.eval.content import ItemVectors
from mmsearch.eval.metrics import (
    DEFAULT_KS,
    METRICS,
    average_precision_at_k,
    evaluate,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from mmsearch.eval.splits import DEFAULT_FRACTIONS, Split, cold_item_split, random_split, temporal_split
from mmsearch.eval.strategies import (
    DEFAULT_DEPTH,
    CFStrategy,
    FusionSpec,
    HybridStrategy,
    PopularStrategy,
    RandomStrategy,
    Strategy,
    content_strategies,
    fuse_scores,
    hybrid_name,
)
from mmsearch.ranking import top_k_rows

SPLITS: tuple[str, ...] = ("random", "temporal", "cold-items")
SCHEMES: tuple[str, ...] = ("wsum-minmax", "wsum-dbsf", "wsum-none", "rrf", "dbsf")
DEFAULT_SCHEMES: tuple[str, ...] = ("wsum-minmax", "wsum-dbsf", "rrf")
DEFAULT_WEIGHT_GRID: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
Log = Callable[[str], None]


def default_cf_configs() -> tuple[ALSConfig, BPRConfig]:
    """ALS with 100 factors and BPR with 50, the sizes the CLIP-for-recommendation study found best."""
    return ALSConfig(factors=100), BPRConfig(factors=50)


def fusion_spec(scheme: str, weights: Sequence[float], depth: int | None = DEFAULT_DEPTH) -> FusionSpec:
    """A `FusionSpec` from a scheme name (`wsum-minmax`, `wsum-dbsf`, `wsum-none`, `rrf`, `dbsf`).

    Raises:
        UnknownNameError: unknown scheme.
        ConfigError: bad weights.
    """
    if scheme not in SCHEMES:
        raise UnknownNameError("fusion scheme", scheme, SCHEMES)
    if scheme.startswith("wsum-"):
        return FusionSpec(tuple(weights), "wsum", scheme.split("-", 1)[1], depth=depth)
    return FusionSpec(tuple(weights), scheme, depth=depth)


def _metric_names(ks: Sequence[int]) -> list[str]:
    return [f"{m}@{k}" for k in ks for m in METRICS]


@dataclass(frozen=True)
class EvalSettings:
    """What an evaluation run does.

    Attributes:
        ks: metric cut-offs.
        splits: any of `random` (rows shuffled 80/10/10), `temporal` (each user's latest
            interaction to test, the one before to validation) and `cold-items` (items held out
            whole, 80/10/10).
        seed: seeds the splits, the random baseline, the user sample and the bootstrap (CF
            models carry their own seeds in `cf`).
        fractions: train, validation, test fractions of the random and cold-items splits.
        cf: the CF models to train (`ALSConfig`, `BPRConfig`); names must differ by algorithm.
        tune: search the hybrids' fusion on validation (`weight_grid` x `schemes`); otherwise
            fuse with `cf_weight` and `scheme`.
        cf_weight: weight of the CF leg without tuning (the content leg gets 1 - cf_weight).
        scheme: fusion scheme without tuning.
        weight_grid: CF-leg weights tried when tuning (the content leg gets 1 - w).
        schemes: fusion schemes tried when tuning.
        tune_metric: the validation metric that picks the hybrid's content leg and fusion.
        fusion_depth: without tuning: each leg's best candidates pooled before fusion, as the
            query engine's `SearchSettings.candidates` (100); None fuses over all candidates.
        tune_depths: pool depths tried when tuning (None: all candidates, which the engine
            reproduces with `candidates` >= the catalogue size).
        max_users: evaluate at most this many users per part (a seeded sample); None for all.
        chunk_users: users scored at a time (bounds memory: chunk x items floats per strategy).
    """

    ks: tuple[int, ...] = DEFAULT_KS
    splits: tuple[str, ...] = ("random",)
    seed: int = 0
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    cf: tuple[ALSConfig | BPRConfig, ...] = field(default_factory=default_cf_configs)
    tune: bool = False
    cf_weight: float = 0.5
    scheme: str = "wsum-minmax"
    weight_grid: tuple[float, ...] = DEFAULT_WEIGHT_GRID
    schemes: tuple[str, ...] = DEFAULT_SCHEMES
    tune_metric: str = "ndcg@10"
    fusion_depth: int | None = DEFAULT_DEPTH
    tune_depths: tuple[int | None, ...] = (DEFAULT_DEPTH, None)
    max_users: int | None = None
    chunk_users: int = 256

    def __post_init__(self) -> None:
        if not self.ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.ks):
            raise ConfigError(f"ks {list(self.ks)!r} must be positive integers (at least one)")
        object.__setattr__(self, "ks", tuple(sorted(set(self.ks))))
        if not self.splits:
            raise ConfigError("splits must name at least one split")
        for kind in self.splits:
            if kind not in SPLITS:
                raise UnknownNameError("split", kind, SPLITS)
        algorithms = [c.algorithm for c in self.cf]
        if len(set(algorithms)) != len(algorithms):
            raise ConfigError(f"CF models {algorithms} repeat an algorithm; train each algorithm once")
        for scheme in (self.scheme, *self.schemes):
            if scheme not in SCHEMES:
                raise UnknownNameError("fusion scheme", scheme, SCHEMES)
        if not 0.0 <= self.cf_weight <= 1.0:
            raise ConfigError(f"cf_weight {self.cf_weight!r} must lie in [0, 1]")
        if not self.weight_grid or any(not 0.0 <= w <= 1.0 for w in self.weight_grid):
            raise ConfigError(f"weight grid {list(self.weight_grid)!r} must hold CF weights in [0, 1]")
        if not self.schemes:
            raise ConfigError("schemes must name at least one fusion scheme to tune")
        known = _metric_names(self.ks)
        if self.tune_metric not in known or self.tune_metric.startswith("coverage"):
            raise UnknownNameError("tune metric", self.tune_metric, [m for m in known if not m.startswith("coverage")])
        for depth in (self.fusion_depth, *self.tune_depths):
            if depth is not None and depth < 1:
                raise ConfigError(f"fusion depth {depth!r} must be at least 1 (or None for all candidates)")
        if not self.tune_depths:
            raise ConfigError("tune_depths must list at least one pool depth (None for all candidates)")
        if self.max_users is not None and self.max_users < 1:
            raise ConfigError(f"max_users {self.max_users!r} must be at least 1")
        if self.chunk_users < 1:
            raise ConfigError(f"chunk_users {self.chunk_users!r} must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return {
            "ks": list(self.ks),
            "splits": list(self.splits),
            "seed": self.seed,
            "fractions": list(self.fractions),
            "cf": [c.model_dump() for c in self.cf],
            "tune": self.tune,
            "cf_weight": self.cf_weight,
            "scheme": self.scheme,
            "weight_grid": list(self.weight_grid),
            "schemes": list(self.schemes),
            "tune_metric": self.tune_metric,
            "fusion_depth": self.fusion_depth,
            "tune_depths": list(self.tune_depths),
            "max_users": self.max_users,
        }


@dataclass(frozen=True)
class StrategyResult:
    """One row of the results table.

    Attributes:
        name, kind, description: the strategy.
        metrics: test metrics, e.g. {"ndcg@10": ...}.
        validation: the same metrics on validation.
        n_users: test users averaged over.
        seconds: time to score and rank the test users.
        fusion: for hybrids: legs, weights, method, whether tuned, and the validation score.
    """

    name: str
    kind: str
    description: str
    metrics: dict[str, float]
    validation: dict[str, float]
    n_users: int
    seconds: float
    fusion: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "test": self.metrics,
            "validation": self.validation,
            "n_users": self.n_users,
            "seconds": round(self.seconds, 3),
            "fusion": self.fusion,
        }


@dataclass(frozen=True)
class TuningTrial:
    """One fusion tried on validation: its label, scheme, pool depth (None: all), weights and score."""

    label: str
    scheme: str
    depth: int | None
    weights: dict[str, float]
    value: float


@dataclass(frozen=True)
class Comparison:
    """A hybrid against the best single strategy on test, user by user (paired).

    Attributes:
        hybrid, versus: the two strategies.
        metric: e.g. `ndcg@10`.
        hybrid_value, versus_value: their means over the test users.
        difference: hybrid minus versus.
        ci95: a 95% paired bootstrap interval of the difference (users resampled).
        users_better, users_worse: users whose metric the hybrid raised or lowered.
    """

    hybrid: str
    versus: str
    metric: str
    hybrid_value: float
    versus_value: float
    difference: float
    ci95: tuple[float, float]
    users_better: int
    users_worse: int


@dataclass(frozen=True)
class SplitResult:
    """Every strategy's scores on one split.

    Attributes:
        kind: `random`, `temporal` or `cold-items`.
        summary: the split's sizes in words.
        candidates: `all items` or `cold items`.
        sizes: interactions in train, validation and test.
        users: users evaluated on validation and on test.
        strategies: the table rows, in order: baselines, content, CF, hybrids.
        tuning: hybrid name -> every fusion tried on validation (empty without tuning).
        tune_metric: the validation metric that chose.
        timings: seconds per step (CF fits, profiles, validation, tuning, test).
        comparisons: each hybrid against the best single strategy on test (`tune_metric`), paired.
    """

    kind: str
    summary: str
    candidates: str
    sizes: dict[str, int]
    users: dict[str, int]
    strategies: tuple[StrategyResult, ...]
    tuning: dict[str, list[TuningTrial]]
    tune_metric: str
    timings: dict[str, float]
    comparisons: tuple[Comparison, ...] = ()

    def row(self, name: str) -> StrategyResult:
        """The row of strategy `name`.

        Raises:
            UnknownNameError: no such strategy.
        """
        for r in self.strategies:
            if r.name == name:
                return r
        raise UnknownNameError("strategy", name, [r.name for r in self.strategies])

    def best(self, metric: str, kinds: Sequence[str] | None = None) -> StrategyResult:
        """The row with the highest test `metric` among `kinds` (all kinds if None)."""
        rows = [r for r in self.strategies if kinds is None or r.kind in kinds]
        if not rows:
            raise ConfigError(f"no strategy of kinds {list(kinds or [])} in the {self.kind} split")
        return max(rows, key=lambda r: np.nan_to_num(r.metrics.get(metric, np.nan), nan=-1.0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.kind,
            "summary": self.summary,
            "candidates": self.candidates,
            "sizes": self.sizes,
            "users": self.users,
            "tune_metric": self.tune_metric,
            "strategies": [r.to_dict() for r in self.strategies],
            "tuning": {name: [vars(t) for t in trials] for name, trials in self.tuning.items()},
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "comparisons": [vars(c) for c in self.comparisons],
        }


@dataclass(frozen=True)
class EvalResult:
    """A whole run: one `SplitResult` per split, the settings, the data and the time taken."""

    splits: tuple[SplitResult, ...]
    settings: EvalSettings
    data: dict[str, Any]
    timings: dict[str, float]

    def split(self, kind: str) -> SplitResult:
        """The result of split `kind`.

        Raises:
            UnknownNameError: the run has no such split.
        """
        for s in self.splits:
            if s.kind == kind:
                return s
        raise UnknownNameError("split", kind, [s.kind for s in self.splits])

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "settings": self.settings.to_dict(),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "splits": [s.to_dict() for s in self.splits],
        }


# ----------------------------------------------------------------------- the steps


def make_split(interactions: Interactions, kind: str, settings: EvalSettings) -> Split:
    """The split `kind` of `interactions` with the settings' seed and fractions.

    Raises:
        UnknownNameError: unknown kind.
        InputError: see the split functions (e.g. a temporal split without timestamps).
    """
    if kind == "random":
        return random_split(interactions, settings.fractions, seed=settings.seed)
    if kind == "temporal":
        return temporal_split(interactions)
    if kind == "cold-items":
        return cold_item_split(interactions, settings.fractions, seed=settings.seed)
    raise UnknownNameError("split", kind, SPLITS)


def eval_users(part: Interactions, max_users: int | None = None, seed: int = 0) -> np.ndarray:
    """Users with at least one interaction in `part` (sorted); a seeded sample of `max_users` if fewer are wanted."""
    users = np.flatnonzero(part.user_counts() > 0).astype(np.int64)
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, size=max_users, replace=False))
    return users


def candidate_mask(split: Split, part: str, users: np.ndarray, *, cold_only: bool) -> np.ndarray:
    """bool (len(users), n_items): the items each user's `part` ranking may hold (see the module docstring).

    Raises:
        UnknownNameError: `part` is not `validation` or `test`.
    """
    if part not in ("validation", "test"):
        raise UnknownNameError("split part", part, ("validation", "test"))
    n_items = split.train.n_items
    base = split.train.item_counts() == 0 if cold_only else np.ones(n_items, dtype=bool)
    mask = np.repeat(base[None, :], len(users), axis=0)
    known = [split.train] + ([split.validation] if part == "test" else [])
    for table in known:
        rows = table.to_csr()[users]
        mask[np.repeat(np.arange(len(users)), np.diff(rows.indptr)), rows.indices] = False
    return mask


Output = tuple[str, tuple[str, ...], FusionSpec]  # a fused ranking: key, leg names, fusion


def rank(
    users: np.ndarray,
    candidates_of: Callable[[np.ndarray], np.ndarray],
    k: int,
    legs: Sequence[Strategy],
    fused: Sequence[Output] = (),
    *,
    rank_legs: bool = True,
    chunk_users: int = 256,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Top-k rankings of `users` by each strategy in `legs` and each fusion of them in `fused`.

    Each leg is scored once per block of users and reused by every fusion, which is what makes a
    tuning grid affordable.

    Returns:
        key -> int64 (len(users), k) item indices (-1 padded), and key -> seconds spent.

    Raises:
        ConfigError: a fusion names a leg not in `legs`.
    """
    by_name = {leg.name: leg for leg in legs}
    for key, leg_names, _ in fused:
        missing = [n for n in leg_names if n not in by_name]
        if missing:
            raise ConfigError(f"fusion {key!r} uses legs {missing} that are not scored")
    keys = ([leg.name for leg in legs] if rank_legs else []) + [key for key, _, _ in fused]
    blocks: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    seconds: dict[str, float] = dict.fromkeys(keys, 0.0)
    for start in range(0, len(users), chunk_users):
        block = users[start : start + chunk_users]
        candidates = candidates_of(block)
        scores: dict[str, np.ndarray] = {}
        for leg in legs:
            began = time.perf_counter()
            scores[leg.name] = leg.scores(block, candidates)
            if rank_legs:
                blocks[leg.name].append(top_k_rows(scores[leg.name], k))
                seconds[leg.name] += time.perf_counter() - began
        for key, leg_names, spec in fused:
            began = time.perf_counter()
            blocks[key].append(top_k_rows(fuse_scores([scores[n] for n in leg_names], candidates, spec), k))
            seconds[key] += time.perf_counter() - began
    empty = np.zeros((0, k), dtype=np.int64)
    return {key: np.concatenate(parts) if parts else empty for key, parts in blocks.items()}, seconds


def tune_fusion(
    legs: Sequence[Strategy],
    grid: Sequence[FusionSpec],
    users: np.ndarray,
    candidates_of: Callable[[np.ndarray], np.ndarray],
    relevant: Any,
    *,
    ks: Sequence[int],
    metric: str,
    n_items: int,
    chunk_users: int = 256,
) -> tuple[FusionSpec, list[TuningTrial], dict[str, float]]:
    """The fusion of `legs` from `grid` with the best `metric` on the given (validation) users.

    Ties go to the earlier spec of the grid.

    Returns:
        The chosen spec, every trial, and the chosen spec's full metrics on these users.

    Raises:
        ConfigError: an empty grid.
    """
    if not grid:
        raise ConfigError("the fusion grid is empty")
    names = tuple(leg.name for leg in legs)
    outputs = [(f"{i}:{spec.label(names)}", names, spec) for i, spec in enumerate(grid)]
    ranked, _ = rank(users, candidates_of, max(ks), legs, outputs, rank_legs=False, chunk_users=chunk_users)
    trials: list[TuningTrial] = []
    reports = []
    for key, _, spec in outputs:
        report = evaluate(ranked[key], relevant, ks=ks, n_items=n_items)
        reports.append(report.values)
        trials.append(
            TuningTrial(
                spec.label(names),
                spec.scheme,
                spec.depth,
                dict(zip(names, spec.weights, strict=True)),
                report.values[metric],
            )
        )
    values = np.array([np.nan_to_num(t.value, nan=-1.0) for t in trials])
    best = int(np.argmax(values))  # argmax returns the first of equal maxima
    return grid[best], trials, reports[best]


def _pair(cf_weight: float) -> tuple[float, float]:
    """(CF weight, content weight) summing to 1, without float dust (0.8 -> 0.2, not 0.19999999999999996)."""
    return float(cf_weight), round(1.0 - float(cf_weight), 12)


PER_USER = {
    "map": average_precision_at_k,
    "ndcg": ndcg_at_k,
    "recall": recall_at_k,
    "precision": precision_at_k,
}


def compare_paired(
    name_a: str,
    ranked_a: np.ndarray,
    name_b: str,
    ranked_b: np.ndarray,
    relevant: Any,
    metric: str,
    *,
    seed: int = 0,
    resamples: int = 2000,
) -> Comparison:
    """Paired comparison of two rankings of the same users on `metric` (`map@k`, `ndcg@k`, `recall@k`, `precision@k`).

    Raises:
        UnknownNameError: a metric without per-user values (coverage) or an unknown one.
    """
    base, _, k_text = metric.partition("@")
    if base not in PER_USER or not k_text.isdigit():
        raise UnknownNameError("per-user metric", metric, [f"{m}@k" for m in PER_USER])
    k = int(k_text)
    a = PER_USER[base](ranked_a, relevant, k)
    b = PER_USER[base](ranked_b, relevant, k)
    keep = np.isfinite(a) & np.isfinite(b)
    diff = a[keep] - b[keep]
    if diff.size:
        idx = np.random.default_rng(seed).integers(0, diff.size, size=(resamples, diff.size))
        means = diff[idx].mean(axis=1)
        ci = (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))
    else:
        ci = (float("nan"), float("nan"))
    return Comparison(
        name_a,
        name_b,
        metric,
        float(a[keep].mean()) if keep.any() else float("nan"),
        float(b[keep].mean()) if keep.any() else float("nan"),
        float(diff.mean()) if diff.size else float("nan"),
        ci,
        int((diff > 0).sum()),
        int((diff < 0).sum()),
    )


def _timed(timings: dict[str, float], key: str, began: float) -> None:
    timings[key] = timings.get(key, 0.0) + time.perf_counter() - began


def _learn(
    split: Split, vectors: Sequence[ItemVectors], settings: EvalSettings, timings: dict[str, float], say: Log
) -> tuple[list[Strategy], list[Strategy]]:
    """The content strategies (profiles from train) and the CF strategies (fitted on train)."""
    began = time.perf_counter()
    content: list[Strategy] = list(content_strategies(split.train, vectors))
    _timed(timings, "content profiles", began)
    cf: list[Strategy] = []
    for config in settings.cf:
        began = time.perf_counter()
        model, report = fit(split.train, config)
        _timed(timings, f"fit {config.algorithm}", began)
        say(f"{split.kind}: {config.algorithm} {report.summary()}")
        cf.append(CFStrategy.from_model(model, split.train.user_ids, split.train.item_ids))
    return content, cf


def _grid(settings: EvalSettings) -> list[FusionSpec]:
    """Every fusion the tuner tries, in tie-breaking order: scheme, then pool depth, then CF weight."""
    return [
        fusion_spec(s, _pair(w), depth)
        for s in settings.schemes
        for depth in dict.fromkeys(settings.tune_depths)
        for w in settings.weight_grid
    ]


def evaluate_split(
    split: Split,
    vectors: Sequence[ItemVectors] = (),
    settings: EvalSettings | None = None,
    *,
    log: Log | None = None,
) -> SplitResult:
    """Train on `split.train`, choose hybrids on validation, report every strategy on test.

    Args:
        split: the split (its parts share one item index space, the rows of `vectors`).
        vectors: content vectors, one row per item of the split's tables.
        settings: the run's settings (defaults without).
        log: called with progress messages.

    Raises:
        InputError: vectors whose rows do not match the items, or an empty validation or test part.
    """
    settings = settings or EvalSettings()
    say = log or (lambda _msg: None)
    train = split.train
    n_items = train.n_items
    for v in vectors:
        if v.n_items != n_items:
            raise InputError(f"content vectors {v.name} have {v.n_items} rows for {n_items} items")
    for part in ("validation", "test"):
        if len(getattr(split, part)) == 0:
            raise InputError(f"the {split.kind} split has an empty {part} part; use more interactions")
    timings: dict[str, float] = {}
    content, cf = _learn(split, vectors, settings, timings, say)
    baselines: list[Strategy] = [
        RandomStrategy(n_items, train.n_users, settings.seed),
        PopularStrategy.from_train(train),
    ]
    singles = baselines + content + cf
    cold_only = split.kind == "cold-items"
    val_users = eval_users(split.validation, settings.max_users, settings.seed + 1)
    test_users = eval_users(split.test, settings.max_users, settings.seed + 2)
    val_relevant = split.validation.to_csr()[val_users]
    test_relevant = split.test.to_csr()[test_users]
    ks = settings.ks

    def val_candidates(users: np.ndarray) -> np.ndarray:
        return candidate_mask(split, "validation", users, cold_only=cold_only)

    def test_candidates(users: np.ndarray) -> np.ndarray:
        return candidate_mask(split, "test", users, cold_only=cold_only)

    began = time.perf_counter()
    say(f"{split.kind}: ranking {len(val_users)} validation users with {len(singles)} strategies")
    val_ranked, _ = rank(val_users, val_candidates, max(ks), singles, chunk_users=settings.chunk_users)
    validation = {s.name: evaluate(val_ranked[s.name], val_relevant, ks=ks, n_items=n_items).values for s in singles}
    _timed(timings, "validation", began)

    hybrids: list[HybridStrategy] = []
    tuning: dict[str, list[TuningTrial]] = {}
    metric = settings.tune_metric
    if content and cf:
        best_content = max(content, key=lambda s: np.nan_to_num(validation[s.name][metric], nan=-1.0))
        for cf_leg in cf:
            legs = (cf_leg, best_content)
            names = (cf_leg.name, best_content.name)
            name = hybrid_name(names)
            if settings.tune:
                began = time.perf_counter()
                say(f"{split.kind}: tuning {name} over {len(_grid(settings))} fusions on validation")
                spec, trials, chosen = tune_fusion(
                    legs,
                    _grid(settings),
                    val_users,
                    val_candidates,
                    val_relevant,
                    ks=ks,
                    metric=metric,
                    n_items=n_items,
                    chunk_users=settings.chunk_users,
                )
                _timed(timings, f"tune {name}", began)
                tuning[name] = trials
                validation[name] = chosen
            else:
                spec = fusion_spec(settings.scheme, _pair(settings.cf_weight), settings.fusion_depth)
            params = {
                **spec.to_dict(names),
                "tuned": settings.tune,
                "tune_metric": metric,
                "content_leg_chosen_on": "validation",
            }
            hybrids.append(HybridStrategy(name, legs, spec, params=params))

    began = time.perf_counter()
    say(f"{split.kind}: ranking {len(test_users)} test users")
    fused = [(h.name, h.leg_names, h.spec) for h in hybrids]
    test_ranked, seconds = rank(test_users, test_candidates, max(ks), singles, fused, chunk_users=settings.chunk_users)
    _timed(timings, "test", began)
    if not settings.tune:
        # Untuned hybrids still get a validation row, for comparison with the tuned ones.
        val_hybrid, _ = rank(
            val_users, val_candidates, max(ks), singles, fused, rank_legs=False, chunk_users=settings.chunk_users
        )
        for h in hybrids:
            validation[h.name] = evaluate(val_hybrid[h.name], val_relevant, ks=ks, n_items=n_items).values

    rows = []
    for s in [*singles, *hybrids]:
        report = evaluate(test_ranked[s.name], test_relevant, ks=ks, n_items=n_items)
        fusion_info = None
        if isinstance(s, HybridStrategy):
            fusion_info = {**s.params, "validation_" + metric: validation[s.name][metric]}
        rows.append(
            StrategyResult(
                s.name,
                s.kind,
                s.description,
                report.values,
                validation[s.name],
                report.n_users,
                seconds[s.name],
                fusion_info,
            )
        )
    comparisons = []
    singles_rows = [r for r in rows if r.kind != "hybrid"]
    if hybrids and singles_rows:
        best_single = max(singles_rows, key=lambda r: np.nan_to_num(r.metrics[metric], nan=-1.0))
        for h in hybrids:
            comparisons.append(
                compare_paired(
                    h.name,
                    test_ranked[h.name],
                    best_single.name,
                    test_ranked[best_single.name],
                    test_relevant,
                    metric,
                    seed=settings.seed,
                )
            )
    return SplitResult(
        kind=split.kind,
        summary=split.summary(),
        candidates="cold items" if cold_only else "all items",
        sizes={"train": len(split.train), "validation": len(split.validation), "test": len(split.test)},
        users={"validation": len(val_users), "test": len(test_users)},
        strategies=tuple(rows),
        tuning=tuning,
        tune_metric=metric,
        timings=timings,
        comparisons=tuple(comparisons),
    )


def run_eval(
    interactions: Interactions,
    vectors: Sequence[ItemVectors] = (),
    settings: EvalSettings | None = None,
    *,
    dataset: str = "",
    log: Log | None = None,
) -> EvalResult:
    """Evaluate every strategy on each split of `settings.splits`.

    Args:
        interactions: the whole log (its item indices are the rows of `vectors`).
        vectors: content vectors per tower (none: baselines and CF only).
        settings: what to run.
        dataset: a name for the report.
        log: called with progress messages.

    Raises:
        InputError: vectors that do not match the items; a split that cannot be made.
        ConfigError: bad settings.
    """
    settings = settings or EvalSettings()
    for v in vectors:
        if v.n_items != interactions.n_items:
            raise InputError(
                f"content vectors {v.name} have {v.n_items} rows but the interactions index "
                f"{interactions.n_items} items"
            )
    began = time.perf_counter()
    results = []
    for kind in settings.splits:
        start = time.perf_counter()
        split = make_split(interactions, kind, settings)
        (log or (lambda _m: None))(split.summary())
        result = evaluate_split(split, vectors, settings, log=log)
        result.timings["total"] = time.perf_counter() - start
        results.append(result)
    data = {
        "dataset": dataset,
        "users": interactions.n_users,
        "items": interactions.n_items,
        "interactions": len(interactions),
        "content": [v.name for v in vectors],
    }
    return EvalResult(tuple(results), settings, data, {"evaluation": time.perf_counter() - began})


__all__ = [
    "DEFAULT_SCHEMES",
    "DEFAULT_WEIGHT_GRID",
    "SCHEMES",
    "SPLITS",
    "Comparison",
    "EvalResult",
    "EvalSettings",
    "SplitResult",
    "StrategyResult",
    "TuningTrial",
    "candidate_mask",
    "compare_paired",
    "default_cf_configs",
    "eval_users",
    "evaluate_split",
    "fusion_spec",
    "make_split",
    "rank",
    "run_eval",
    "tune_fusion",
]
