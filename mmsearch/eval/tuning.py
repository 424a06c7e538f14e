"""Tuning a CF model's settings on validation: a coordinate search over a grid, within a time budget.

Each algorithm has a search space (`SPACES`: parameter -> values, in the order they are tried).
The search starts from the given settings (the defaults, good on data like MovieLens), then
changes one parameter at a time, keeping a value only when it raises the validation score
(ties keep the current one), pass after pass until a pass changes nothing or the budget is
spent. Every trial is recorded, so the report shows what was searched and what won.

Side-information weights are parameters too (`side:<source>`, EASE only), and `fixed` keeps
parameters out of the search (e.g. `factors`, which a store's `cf` vector fixes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmsearch.cf.config import AnyCFConfig, EASEConfig, parse_cf_config
from mmsearch.errors import ConfigError, UnknownNameError

SIDE_PREFIX = "side:"
MAX_PASSES = 3
SPACES: dict[str, dict[str, tuple[Any, ...]]] = {
    "als": {
        "regularization": (0.01, 1.0, 10.0, 20.0, 50.0, 100.0, 200.0),
        "alpha": (1.0, 5.0, 10.0, 20.0, 40.0),
        "weighting": ("binary", "log1p", "linear"),
        "factors": (32, 64, 128),
        "iterations": (15, 30),
    },
    "bpr": {
        "learning_rate": (0.005, 0.01, 0.05, 0.1),
        "regularization": (0.0001, 0.001, 0.01, 0.1),
        "factors": (32, 64, 128),
        "iterations": (100, 200, 400),
    },
    # 512 neighbours and more cost k^3 per item (30 s a fit on MovieLens) for no gain there.
    "ease": {
        "regularization": (50.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 2000.0),
        "neighbors": (64, 128, 256),
    },
}
SIDE_WEIGHTS: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0)
DEFAULT_BUDGET_S = 60.0


@dataclass(frozen=True)
class Trial:
    """One setting tried: the parameters that differ from the start, its validation score, its seconds."""

    params: dict[str, Any]
    value: float
    seconds: float


@dataclass(frozen=True)
class ModelTuning:
    """A model's search on validation.

    Attributes:
        name: the strategy (`als`, `ease`, `ease-side`, ...).
        metric: the validation metric maximised.
        searched: parameter -> the values the space holds for it.
        start: the settings the search started from (their score is the first trial).
        best: the winning settings' parameters (all of the space's).
        value: the winner's validation score.
        trials: every setting tried, in order.
        seconds: the search's wall time; `budget_s` its budget; `exhausted`: whether the budget
            stopped it before a pass changed nothing.
    """

    name: str
    metric: str
    searched: dict[str, list[Any]]
    start: dict[str, Any]
    best: dict[str, Any]
    value: float
    trials: list[Trial] = field(default_factory=list)
    seconds: float = 0.0
    budget_s: float = DEFAULT_BUDGET_S
    exhausted: bool = False
    note: str = ""

    def summary(self) -> str:
        if not self.trials:
            return f"{self.name}: not tuned ({self.note})"
        changed = {k: v for k, v in self.best.items() if self.start.get(k) != v}
        won = ", ".join(f"{k}={v}" for k, v in changed.items()) or "the starting settings"
        stop = "budget spent" if self.exhausted else "converged"
        return (
            f"{self.name}: {len(self.trials)} settings tried in {self.seconds:.0f} s ({stop}); best {won} "
            f"(validation {self.metric} {self.value:.4f}, from {self.trials[0].value:.4f})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "metric": self.metric,
            "searched": self.searched,
            "start": self.start,
            "best": self.best,
            "value": self.value,
            "seconds": round(self.seconds, 2),
            "budget_s": self.budget_s,
            "exhausted": self.exhausted,
            "note": self.note,
            "trials": [{"params": t.params, "value": t.value, "seconds": round(t.seconds, 2)} for t in self.trials],
        }


def search_space(config: AnyCFConfig, *, fixed: Sequence[str] = ()) -> dict[str, tuple[Any, ...]]:
    """The parameters searched for `config`'s algorithm (its side sources included), minus `fixed`.

    Raises:
        UnknownNameError: a fixed parameter the space does not hold.
    """
    space: dict[str, tuple[Any, ...]] = {}
    if isinstance(config, EASEConfig):  # side weights first: with side information they matter most
        space.update({SIDE_PREFIX + name: SIDE_WEIGHTS for name in sorted(config.side)})
    space.update(SPACES[config.algorithm])
    for name in fixed:
        if name not in space:
            raise UnknownNameError("tuned parameter", name, sorted(space))
        del space[name]
    return space


def get_param(config: AnyCFConfig, name: str) -> Any:
    """A parameter's value in `config` (`side:<source>` reads a side-information weight)."""
    if name.startswith(SIDE_PREFIX) and isinstance(config, EASEConfig):
        return config.side[name[len(SIDE_PREFIX) :]]
    return getattr(config, name)


def with_param(config: AnyCFConfig, name: str, value: Any) -> AnyCFConfig:
    """`config` with one parameter changed (validated again).

    Raises:
        ConfigError: the value does not validate.
    """
    data = config.model_dump()
    if name.startswith(SIDE_PREFIX):
        data["side"] = {**data["side"], name[len(SIDE_PREFIX) :]: value}
    else:
        data[name] = value
    return parse_cf_config(data)


def tune_model(
    config: AnyCFConfig,
    score: Callable[[AnyCFConfig], float],
    *,
    name: str,
    metric: str,
    budget_s: float = DEFAULT_BUDGET_S,
    fixed: Sequence[str] = (),
    log: Callable[[str], None] | None = None,
) -> tuple[AnyCFConfig, ModelTuning]:
    """Coordinate search from `config`: the settings with the best `score` found within `budget_s`.

    Args:
        config: the starting settings (always scored first, whatever the budget).
        score: fits a model with the settings and returns its validation score (NaN counts as -1).
        name: the strategy's name, for the report.
        metric: the score's name, for the report.
        budget_s: no new trial starts once this many seconds have passed.
        fixed: parameters left as they are.
        log: called with one line per trial.

    Raises:
        ConfigError: a budget that is not positive.
    """
    if not budget_s > 0:
        raise ConfigError(f"tuning budget {budget_s!r} s must be positive")
    space = search_space(config, fixed=fixed)
    began = time.perf_counter()
    trials = _Trials(score, space, {p: get_param(config, p) for p in space}, name, metric, log)

    def spent() -> bool:
        return time.perf_counter() - began >= budget_s

    best, best_value, exhausted = _coordinate_search(config, space, trials, spent)
    report = ModelTuning(
        name=name,
        metric=metric,
        searched={p: list(v) for p, v in space.items()},
        start=trials.start,
        best={p: get_param(best, p) for p in space},
        value=best_value,
        trials=trials.done,
        seconds=time.perf_counter() - began,
        budget_s=budget_s,
        exhausted=exhausted,
    )
    return best, report


@dataclass(eq=False)
class _Trials:
    """The settings scored so far: each scored once, reported as its changes from the start."""

    score: Callable[[AnyCFConfig], float]
    space: Mapping[str, Sequence[Any]]
    start: dict[str, Any]
    name: str
    metric: str
    log: Callable[[str], None] | None
    done: list[Trial] = field(default_factory=list)
    seen: dict[str, float] = field(default_factory=dict)

    def run(self, candidate: AnyCFConfig) -> float:
        key = candidate.model_dump_json()
        if key in self.seen:  # a setting met again (its value was the start's): scored once
            return self.seen[key]
        t0 = time.perf_counter()
        value = float(self.score(candidate))
        params = {p: get_param(candidate, p) for p in self.space if get_param(candidate, p) != self.start[p]}
        self.done.append(Trial(params, value, time.perf_counter() - t0))
        if self.log:
            self.log(f"  {self.name} {params or 'start'}: {self.metric} {value:.4f} ({self.done[-1].seconds:.1f} s)")
        self.seen[key] = value if np.isfinite(value) else -1.0
        return self.seen[key]


def _coordinate_search(
    config: AnyCFConfig, space: Mapping[str, Sequence[Any]], trials: _Trials, spent: Callable[[], bool]
) -> tuple[AnyCFConfig, float, bool]:
    """One parameter at a time, pass after pass, a value kept when it scores higher; stops when a
    pass changes nothing or `spent()` says the budget is gone. Returns (best, its score, budget spent)."""
    best, best_value = config, trials.run(config)
    for _ in range(MAX_PASSES):
        improved = False
        for param, values in space.items():
            for value in values:
                candidate = with_param(best, param, value)
                if value == get_param(best, param) or candidate.model_dump_json() in trials.seen:
                    continue
                if spent():
                    return best, best_value, True
                got = trials.run(candidate)
                if got > best_value:
                    best, best_value, improved = candidate, got, True
        if not improved:
            break
    return best, best_value, False


def side_config(config: EASEConfig, sources: Mapping[str, float]) -> EASEConfig:
    """`config` with these side-information sources and weights."""
    return EASEConfig(**{**config.model_dump(), "side": dict(sources)})


__all__ = [
    "DEFAULT_BUDGET_S",
    "SIDE_PREFIX",
    "SIDE_WEIGHTS",
    "SPACES",
    "ModelTuning",
    "Trial",
    "get_param",
    "search_space",
    "side_config",
    "tune_model",
    "with_param",
]
