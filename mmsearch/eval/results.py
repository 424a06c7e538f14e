"""What an evaluation run reports: a row per strategy, the tuning trials, paired comparisons, per split."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mmsearch.errors import UnknownNameError
from mmsearch.eval.settings import EvalSettings
from mmsearch.eval.tuning import ModelTuning


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
        model_tuning: CF strategy name -> its settings' search on validation (with `tune`).
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
    model_tuning: dict[str, ModelTuning] = field(default_factory=dict)

    def row(self, name: str) -> StrategyResult:
        """The row of strategy `name`.

        Raises:
            UnknownNameError: no such strategy.
        """
        for r in self.strategies:
            if r.name == name:
                return r
        raise UnknownNameError("strategy", name, [r.name for r in self.strategies])

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
            "model_tuning": {name: t.to_dict() for name, t in self.model_tuning.items()},
        }


@dataclass(frozen=True)
class EvalResult:
    """A whole run: one `SplitResult` per split, the settings, the data and the time taken."""

    splits: tuple[SplitResult, ...]
    settings: EvalSettings
    data: dict[str, Any]
    timings: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "settings": self.settings.model_dump(mode="json"),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "splits": [s.to_dict() for s in self.splits],
        }


__all__ = ["Comparison", "EvalResult", "SplitResult", "StrategyResult", "TuningTrial"]
