"""Evaluation runs: split, learn from train, rank for every held-out user, score with metrics.

The protocol every reported number follows:

- Everything is learnt from the training part only: CF factors (ALS, BPR), EASE weights,
  content profiles (the mean of a user's training items' vectors), popularity.
- The validation part chooses what a hybrid fuses (the content strategy with the best
  validation score, `tune_metric`) and, with `tune=True`, every model's settings
  (`mmsearch.eval.tuning`, within `tune_budget_s` per model) and the hybrids' fusion weights and
  scheme from a grid; the test part only reports. Nothing about test is seen before the final
  ranking.
- What is scored is what the engine serves: EASE from its pruned columns, hybrids with the query
  engine's candidate pooling and fusion (`mmsearch.eval.strategies.engine_ranking_scores`).
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmsearch.cf import EASEConfig, fit
from mmsearch.cf.config import AnyCFConfig
from mmsearch.cf.interactions import Interactions
from mmsearch.errors import ConfigError, InputError, UnknownNameError
from mmsearch.eval.content import ItemVectors
from mmsearch.eval.metrics import (
    MetricReport,
    average_precision_at_k,
    evaluate,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)
from mmsearch.eval.results import Comparison, EvalResult, SplitResult, StrategyResult, TuningTrial
from mmsearch.eval.settings import (
    DEFAULT_SCHEMES,
    DEFAULT_WEIGHT_GRID,
    SCHEMES,
    SPLITS,
    EvalSettings,
    cf_name,
    default_cf_configs,
    fusion_spec,
)
from mmsearch.eval.splits import Split, cold_item_split, random_split, temporal_split
from mmsearch.eval.strategies import (
    CFStrategy,
    EASEStrategy,
    FusionSpec,
    HybridStrategy,
    PopularStrategy,
    RandomStrategy,
    Strategy,
    content_strategies,
    engine_rankings,
    hybrid_name,
    retrievable_of,
)
from mmsearch.eval.tuning import DEFAULT_BUDGET_S, ModelTuning, get_param, search_space, side_config, tune_model
from mmsearch.ranking import top_k_rows

Log = Callable[[str], None]
# A progress bar for a countable step: called with its description and total (users), it gives a
# context manager yielding the function to call with each block of users done (e.g. tqdm's update).
Bar = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]


def _quiet(_message: str) -> None:
    pass


@contextmanager
def no_bar(_desc: str, _total: int) -> Iterator[Callable[[int], None]]:
    """The `Bar` that shows nothing."""
    yield lambda _n: None


@contextmanager
def timed(timings: dict[str, float], step: str) -> Iterator[None]:
    """Add the seconds the `with` block takes to `timings[step]`."""
    began = time.perf_counter()
    yield
    timings[step] = timings.get(step, 0.0) + time.perf_counter() - began


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
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Top-k rankings of `users` by each strategy in `legs` and each fusion of them in `fused`.

    Each leg is scored once per block of users and reused by every fusion, which is what makes a
    tuning grid affordable. `progress` is called with the number of users of each block done.

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
        reach = dict(zip(by_name, retrievable_of(legs, block, candidates), strict=True)) if fused else {}
        for leg_names, outputs in _by_legs(fused).items():
            began = time.perf_counter()
            fused_scores = engine_rankings(
                [scores[n] for n in leg_names],
                candidates,
                [spec for _, spec in outputs],
                retrievable=[reach[n] for n in leg_names],
                limit=k,
            )
            share = (time.perf_counter() - began) / len(outputs)
            for (key, _), matrix in zip(outputs, fused_scores, strict=True):
                blocks[key].append(top_k_rows(matrix, k))
                seconds[key] += share
        if progress is not None:
            progress(len(block))
    empty = np.zeros((0, k), dtype=np.int64)
    return {key: np.concatenate(parts) if parts else empty for key, parts in blocks.items()}, seconds


def _by_legs(fused: Sequence[Output]) -> dict[tuple[str, ...], list[tuple[str, FusionSpec]]]:
    """The fused outputs grouped by their legs, so that each group's pools are found once per user."""
    groups: dict[tuple[str, ...], list[tuple[str, FusionSpec]]] = {}
    for key, leg_names, spec in fused:
        groups.setdefault(tuple(leg_names), []).append((key, spec))
    return groups


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
    progress: Callable[[int], None] | None = None,
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
    ranked, _ = rank(
        users, candidates_of, max(ks), legs, outputs, rank_legs=False, chunk_users=chunk_users, progress=progress
    )
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


# ----------------------------------------------------------------------- one split


# The user samples of the two held-out parts are drawn with the run's seed plus these.
_SAMPLE_SEED_OFFSET = {"validation": 1, "test": 2}


@dataclass(frozen=True, eq=False)
class _Part:
    """A held-out part of a split as it is scored: its users, their relevant items, their candidates."""

    split: Split
    name: str
    users: np.ndarray
    relevant: Any

    @classmethod
    def of(cls, split: Split, name: str, settings: EvalSettings) -> _Part:
        table: Interactions = getattr(split, name)
        users = eval_users(table, settings.max_users, settings.seed + _SAMPLE_SEED_OFFSET[name])
        return cls(split, name, users, table.to_csr()[users])

    @property
    def n_items(self) -> int:
        return self.split.train.n_items

    def candidates(self, users: np.ndarray) -> np.ndarray:
        return candidate_mask(self.split, self.name, users, cold_only=self.split.kind == "cold-items")


@dataclass(eq=False)
class _SplitRun:
    """What the steps of one split's evaluation share: the settings, the progress log, the step timings."""

    split: Split
    settings: EvalSettings
    say: Log
    bar: Bar = no_bar
    timings: dict[str, float] = field(default_factory=dict)

    def timed(self, step: str) -> AbstractContextManager[None]:
        return timed(self.timings, step)

    def rank(
        self,
        part: _Part,
        legs: Sequence[Strategy],
        fused: Sequence[Output] = (),
        *,
        rank_legs: bool = True,
        desc: str = "ranking",
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        k = max(self.settings.ks)
        with self.bar(f"{self.split.kind}: {desc}", len(part.users)) as update:
            return rank(
                part.users,
                part.candidates,
                k,
                legs,
                fused,
                rank_legs=rank_legs,
                chunk_users=self.settings.chunk_users,
                progress=update,
            )

    def report(self, ranked: np.ndarray, part: _Part) -> MetricReport:
        return evaluate(ranked, part.relevant, ks=self.settings.ks, n_items=part.n_items)

    def learn(
        self, vectors: Sequence[ItemVectors], side: Mapping[str, np.ndarray], part: _Part
    ) -> tuple[list[Strategy], list[Strategy], dict[str, ModelTuning]]:
        """The content strategies (profiles from train), the CF strategies (fitted on train) and their tuning.

        Each CF configuration gives one strategy; an EASE one without side information also gives
        `ease-side`, with the content vectors and `side` blocks as side information. With
        `tune`, each is tuned on validation first.
        """
        train = self.split.train
        with self.timed("content profiles"):
            content: list[Strategy] = list(content_strategies(train, vectors))
        features = {**{v.name: v.vectors for v in vectors}, **side}
        cf: list[Strategy] = []
        tunings: dict[str, ModelTuning] = {}
        for name, config, feats in self.variants(features):
            if self.settings.tune:
                config, tunings[name] = self.tune_model(name, config, feats, part)
            with self.timed(f"fit {name}"):
                strategy, summary = self.fit(name, config, feats)
            self.say(f"{self.split.kind}: {name} {summary}")
            cf.append(strategy)
        return content, cf, tunings

    def variants(self, features: Mapping[str, np.ndarray]) -> list[tuple[str, AnyCFConfig, dict[str, np.ndarray]]]:
        """(name, settings, side information) of every CF strategy: one per config, `ease-side` for EASE."""
        out: list[tuple[str, AnyCFConfig, dict[str, np.ndarray]]] = []
        for config in self.settings.cf:
            if isinstance(config, EASEConfig) and config.side:
                unknown = sorted(set(config.side) - set(features))
                if unknown:
                    raise ConfigError(
                        f"EASE side information {unknown} is not among this run's content vectors and side "
                        f"information ({sorted(features)})"
                    )
                out.append(("ease-side", config, {k: features[k] for k in config.side}))
                continue
            out.append((config.algorithm, config, {}))
            if isinstance(config, EASEConfig) and self.settings.side_information and features:
                weights = dict.fromkeys(features, self.settings.side_weight)
                out.append(("ease-side", side_config(config, weights), dict(features)))
        return out

    def fit(self, name: str, config: AnyCFConfig, features: Mapping[str, np.ndarray]) -> tuple[Strategy, str]:
        """A CF strategy fitted on train with these settings, and its fit summary."""
        train = self.split.train
        if isinstance(config, EASEConfig):
            ease, report = fit(train, config, features=features or None)
            return EASEStrategy.from_model(ease, train, name), report.summary()
        model, report = fit(train, config)
        return CFStrategy.from_model(model, train.user_ids, train.item_ids, name), report.summary()

    def tune_model(
        self, name: str, config: AnyCFConfig, features: Mapping[str, np.ndarray], part: _Part
    ) -> tuple[AnyCFConfig, ModelTuning]:
        """`config` tuned on validation (`tune_metric`), within `tune_budget_s`."""
        settings = self.settings

        def score(candidate: AnyCFConfig) -> float:
            return _score_on(self, name, candidate, features, part)

        with self.timed(f"tune {name}"):
            if not self.scores_candidates(name, config, features, part):
                self.say(f"{self.split.kind}: {name} scores none of the candidates here: not tuned")
                return config, _untuned(name, config, settings.tune_metric)
            self.say(f"{self.split.kind}: tuning {name} on validation (budget {settings.tune_budget_s:g} s)")
            best, report = tune_model(
                config, score, name=name, metric=settings.tune_metric, budget_s=settings.tune_budget_s, log=self.say
            )
        self.say(f"{self.split.kind}: {report.summary()}")
        return best, report

    def scores_candidates(
        self, name: str, config: AnyCFConfig, features: Mapping[str, np.ndarray], part: _Part
    ) -> bool:
        """Whether the model scores any candidate of the first validation users (CF on cold items scores none)."""
        strategy, _ = self.fit(name, config, features)
        users = part.users[: self.settings.chunk_users]
        return bool(np.isfinite(strategy.scores(users, part.candidates(users))).any())

    def baselines(self) -> list[Strategy]:
        train = self.split.train
        return [RandomStrategy(train.n_items, train.n_users, self.settings.seed), PopularStrategy.from_train(train)]

    def validate(self, singles: Sequence[Strategy], part: _Part) -> dict[str, dict[str, float]]:
        """Each single strategy's metrics on validation."""
        with self.timed("validation"):
            self.say(f"{self.split.kind}: ranking {len(part.users)} validation users with {len(singles)} strategies")
            ranked, _ = self.rank(part, singles, desc="validation users")
            return {s.name: self.report(ranked[s.name], part).values for s in singles}

    def hybrids(
        self,
        content: Sequence[Strategy],
        cf: Sequence[Strategy],
        validation: Mapping[str, Mapping[str, float]],
        part: _Part,
    ) -> tuple[list[HybridStrategy], dict[str, list[TuningTrial]], dict[str, dict[str, float]]]:
        """Each CF strategy fused with the content strategy best on validation.

        Returns:
            The hybrids, the fusions tried per hybrid (tuning only), and the hybrids' validation metrics.
        """
        if not (content and cf):
            return [], {}, {}
        metric = self.settings.tune_metric
        best_content = max(content, key=lambda s: np.nan_to_num(validation[s.name][metric], nan=-1.0))
        hybrids: list[HybridStrategy] = []
        tuning: dict[str, list[TuningTrial]] = {}
        chosen: dict[str, dict[str, float]] = {}
        for cf_leg in cf:
            legs = (cf_leg, best_content)
            name = hybrid_name([leg.name for leg in legs])
            if self.settings.tune:
                spec, tuning[name], chosen[name] = self.tune(name, legs, part)
            else:
                spec = fusion_spec(self.settings.scheme, _pair(self.settings.cf_weight), self.settings.fusion_depth)
            hybrids.append(self.hybrid(name, legs, spec))
        if not self.settings.tune:
            # Untuned hybrids still get a validation row, for comparison with the tuned ones.
            ranked, _ = self.rank(part, [*cf, best_content], _fusions(hybrids), rank_legs=False)
            chosen = {h.name: self.report(ranked[h.name], part).values for h in hybrids}
        return hybrids, tuning, chosen

    def tune(
        self, name: str, legs: Sequence[Strategy], part: _Part
    ) -> tuple[FusionSpec, list[TuningTrial], dict[str, float]]:
        settings = self.settings
        with self.timed(f"tune {name}"):
            grid = _grid(settings)
            self.say(f"{self.split.kind}: tuning {name} over {len(grid)} fusions on validation")
            with self.bar(f"{self.split.kind}: tuning {name}", len(part.users)) as update:
                return tune_fusion(
                    legs,
                    grid,
                    part.users,
                    part.candidates,
                    part.relevant,
                    ks=settings.ks,
                    metric=settings.tune_metric,
                    n_items=part.n_items,
                    chunk_users=settings.chunk_users,
                    progress=update,
                )

    def hybrid(self, name: str, legs: Sequence[Strategy], spec: FusionSpec) -> HybridStrategy:
        params = {
            **spec.to_dict([leg.name for leg in legs]),
            "tuned": self.settings.tune,
            "tune_metric": self.settings.tune_metric,
            "content_leg_chosen_on": "validation",
        }
        return HybridStrategy(name, tuple(legs), spec, params=params)

    def test(
        self, singles: Sequence[Strategy], hybrids: Sequence[HybridStrategy], part: _Part
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Every strategy's test rankings and the seconds each took."""
        with self.timed("test"):
            self.say(f"{self.split.kind}: ranking {len(part.users)} test users")
            return self.rank(part, singles, _fusions(hybrids), desc="test users")

    def rows(
        self,
        strategies: Sequence[Strategy],
        ranked: Mapping[str, np.ndarray],
        seconds: Mapping[str, float],
        validation: Mapping[str, dict[str, float]],
        part: _Part,
    ) -> tuple[StrategyResult, ...]:
        metric = self.settings.tune_metric
        rows = []
        for s in strategies:
            report = self.report(ranked[s.name], part)
            fusion_info = None
            if isinstance(s, HybridStrategy):
                fusion_info = {**s.params, "validation_" + metric: validation[s.name][metric]}
            row = StrategyResult(
                s.name,
                s.kind,
                s.description,
                report.values,
                validation[s.name],
                report.n_users,
                seconds[s.name],
                fusion_info,
            )
            rows.append(row)
        return tuple(rows)

    def comparisons(
        self, rows: Sequence[StrategyResult], ranked: Mapping[str, np.ndarray], part: _Part
    ) -> tuple[Comparison, ...]:
        """Each hybrid against the single strategy best on test, user by user."""
        metric = self.settings.tune_metric
        singles = [r for r in rows if r.kind != "hybrid"]
        hybrids = [r for r in rows if r.kind == "hybrid"]
        if not (hybrids and singles):
            return ()
        best = max(singles, key=lambda r: np.nan_to_num(r.metrics[metric], nan=-1.0))
        return tuple(
            compare_paired(
                h.name, ranked[h.name], best.name, ranked[best.name], part.relevant, metric, seed=self.settings.seed
            )
            for h in hybrids
        )


def tune_cf(
    interactions: Interactions,
    config: AnyCFConfig,
    *,
    features: Mapping[str, np.ndarray] | None = None,
    budget_s: float = DEFAULT_BUDGET_S,
    fixed: Sequence[str] = (),
    holdout: float = 0.1,
    metric: str = "ndcg@10",
    seed: int = 0,
    log: Log | None = None,
) -> tuple[AnyCFConfig, ModelTuning]:
    """A CF model's settings tuned on a held-out part of the log (`mmsearch cf fit --tune`).

    A seeded `holdout` fraction of the interactions is the validation part; the settings are
    searched from `config` (`mmsearch.eval.tuning.tune_model`) for the best `metric` of its users,
    ranked among every item they have not interacted with in the rest. Refit the winner on the
    whole log.

    Args:
        interactions: the log (its item indices are the rows of `features`).
        config: the starting settings.
        features: EASE side information, source -> (n_items, d), as `config.side` names them.
        budget_s: seconds of search.
        fixed: parameters not searched (e.g. `factors`, fixed by a store's `cf` vector).
        holdout: the fraction held out.
        metric: `ndcg@k`, `map@k`, `recall@k` or `precision@k`.
        seed: seeds the holdout.
        log: called with progress messages.

    Raises:
        ConfigError: a holdout outside (0, 1), a bad metric or budget.
        InputError: a log too small to hold a validation part out.
    """
    if not 0 < holdout < 1:
        raise ConfigError(f"holdout {holdout!r} must be a fraction between 0 and 1")
    _, _, k = metric.partition("@")
    settings = EvalSettings(
        ks=(int(k),) if k.isdigit() else (10,),
        cf=(config,),
        tune=True,
        tune_budget_s=budget_s,
        tune_metric=metric,
        seed=seed,
        fractions=(1.0 - holdout, holdout, 0.0),
    )
    split = random_split(interactions, settings.fractions, seed=seed)
    if len(split.validation) == 0:
        raise InputError(f"{len(interactions)} interactions leave none for a {holdout:.0%} validation part")
    run = _SplitRun(split, settings, log or _quiet)
    part = _Part.of(split, "validation", settings)
    name = cf_name(config)
    feats = dict(features or {})
    with run.timed("tune"):
        best, report = tune_model(
            config,
            lambda c: _score_on(run, name, c, feats, part),
            name=name,
            metric=metric,
            budget_s=budget_s,
            fixed=fixed,
            log=log,
        )
    return best, report


def _score_on(run: _SplitRun, name: str, config: AnyCFConfig, features: Mapping[str, np.ndarray], part: _Part) -> float:
    """The validation score of a model fitted with `config` on the run's training part."""
    strategy, _ = run.fit(name, config, features)
    ranked, _ = run.rank(part, [strategy])
    return run.report(ranked[name], part).values[run.settings.tune_metric]


def _untuned(name: str, config: AnyCFConfig, metric: str) -> ModelTuning:
    """The record of a model left as it was: it scores none of the candidates of this split."""
    start = {p: get_param(config, p) for p in search_space(config)}
    return ModelTuning(name, metric, {}, start, start, float("nan"), note="it scores none of the candidates here")


def _fusions(hybrids: Sequence[HybridStrategy]) -> list[Output]:
    return [(h.name, h.leg_names, h.spec) for h in hybrids]


def _grid(settings: EvalSettings) -> list[FusionSpec]:
    """Every fusion the tuner tries, in tie-breaking order: scheme, then pool depth, then CF weight."""
    return [
        fusion_spec(s, _pair(w), depth)
        for s in settings.schemes
        for depth in dict.fromkeys(settings.tune_depths)
        for w in settings.weight_grid
    ]


def _check_split(split: Split, vectors: Sequence[ItemVectors]) -> None:
    n_items = split.train.n_items
    for v in vectors:
        if v.n_items != n_items:
            raise InputError(f"content vectors {v.name} have {v.n_items} rows for {n_items} items")
    for part in ("validation", "test"):
        if len(getattr(split, part)) == 0:
            raise InputError(f"the {split.kind} split has an empty {part} part; use more interactions")


def evaluate_split(
    split: Split,
    vectors: Sequence[ItemVectors] = (),
    settings: EvalSettings | None = None,
    *,
    side: Mapping[str, np.ndarray] | None = None,
    log: Log | None = None,
    bar: Bar | None = None,
) -> SplitResult:
    """Train on `split.train`, choose (and tune) on validation, report every strategy on test.

    Args:
        split: the split (its parts share one item index space, the rows of `vectors`).
        vectors: content vectors, one row per item of the split's tables.
        settings: the run's settings (defaults without).
        side: more EASE side information, name -> (n_items, d) features (e.g. one-hot genres).
        log: called with progress messages.
        bar: a progress bar for each ranking step (users ranked), e.g. one made with tqdm.

    Raises:
        InputError: vectors whose rows do not match the items, or an empty validation or test part.
    """
    return _evaluate_split(split, vectors, settings or EvalSettings(), log or _quiet, bar or no_bar, side=side or {})


def _evaluate_split(
    split: Split,
    vectors: Sequence[ItemVectors],
    settings: EvalSettings,
    say: Log,
    bar: Bar = no_bar,
    *,
    side: Mapping[str, np.ndarray],
    started: float | None = None,
) -> SplitResult:
    """`evaluate_split`; with `started` (a `time.perf_counter()` reading), timings get the `total` since."""
    _check_split(split, vectors)
    run = _SplitRun(split, settings, say, bar)
    val_part, test_part = _Part.of(split, "validation", settings), _Part.of(split, "test", settings)
    content, cf, model_tuning = run.learn(vectors, side, val_part)
    singles = [*run.baselines(), *content, *cf]
    validation = run.validate(singles, val_part)
    hybrids, tuning, hybrid_validation = run.hybrids(content, cf, validation, val_part)
    ranked, seconds = run.test(singles, hybrids, test_part)
    rows = run.rows([*singles, *hybrids], ranked, seconds, {**validation, **hybrid_validation}, test_part)
    timings = dict(run.timings)
    if started is not None:
        timings["total"] = time.perf_counter() - started
    return SplitResult(
        kind=split.kind,
        summary=split.summary(),
        candidates="cold items" if split.kind == "cold-items" else "all items",
        sizes={"train": len(split.train), "validation": len(split.validation), "test": len(split.test)},
        users={"validation": len(val_part.users), "test": len(test_part.users)},
        strategies=rows,
        tuning=tuning,
        tune_metric=settings.tune_metric,
        timings=timings,
        comparisons=run.comparisons(rows, ranked, test_part),
        model_tuning=model_tuning,
    )


def run_eval(
    interactions: Interactions,
    vectors: Sequence[ItemVectors] = (),
    settings: EvalSettings | None = None,
    *,
    dataset: str = "",
    log: Log | None = None,
    bar: Bar | None = None,
    facts: Mapping[str, Any] | None = None,
    steps: Mapping[str, float] | None = None,
    side: Mapping[str, np.ndarray] | None = None,
) -> EvalResult:
    """Evaluate every strategy on each split of `settings.splits`.

    Args:
        interactions: the whole log (its item indices are the rows of `vectors`).
        vectors: content vectors per tower (none: baselines and CF only).
        settings: what to run.
        side: more EASE side information, name -> (n_items, d) features (e.g. one-hot genres),
            beside the content vectors.
        dataset: a name for the report.
        log: called with progress messages.
        bar: a progress bar for each ranking step (users ranked), e.g. one made with tqdm.
        facts: more about the data for the report (e.g. the content model), after the sizes.
        steps: seconds of the steps before the evaluation (loading, embedding): the timings list
            them first, then `evaluation`, then their `total`.

    Raises:
        InputError: vectors that do not match the items; a split that cannot be made.
        ConfigError: bad settings.
    """
    settings = settings or EvalSettings()
    say = log or _quiet
    for v in vectors:
        if v.n_items != interactions.n_items:
            raise InputError(
                f"content vectors {v.name} have {v.n_items} rows but the interactions index "
                f"{interactions.n_items} items"
            )
    for name, block in (side or {}).items():
        if np.shape(block)[0] != interactions.n_items:
            rows = np.shape(block)[0]
            raise InputError(f"side information {name!r} has {rows} rows for {interactions.n_items} items")
    began = time.perf_counter()
    results = []
    for kind in settings.splits:
        started = time.perf_counter()
        split = make_split(interactions, kind, settings)
        say(split.summary())
        results.append(_evaluate_split(split, vectors, settings, say, bar or no_bar, side=side or {}, started=started))
    timings = {**(steps or {}), "evaluation": time.perf_counter() - began}
    if steps is not None:
        timings["total"] = sum(timings.values())
    data = {
        "dataset": dataset,
        "users": interactions.n_users,
        "items": interactions.n_items,
        "interactions": len(interactions),
        "content": [v.name for v in vectors],
        "side_information": sorted([*(v.name for v in vectors), *(side or {})]),
        **(facts or {}),
    }
    return EvalResult(tuple(results), settings, data, timings)


__all__ = [
    "Bar",
    "DEFAULT_SCHEMES",
    "DEFAULT_WEIGHT_GRID",
    "SCHEMES",
    "SPLITS",
    "Comparison",
    "EvalResult",
    "EvalSettings",
    "Log",
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
    "no_bar",
    "rank",
    "run_eval",
    "timed",
    "tune_cf",
    "tune_fusion",
]
