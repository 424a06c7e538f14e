"""CF fit benchmark: EASE exact and sparse against ALS (the baseline) on synthetic power-law logs.

The log (`power_law_log`): item popularity Zipf-distributed (exponent `zipf`), items in topics of
about 100, each user drawn to three topics (four interactions in five from them, the rest from
the whole catalogue), activity log-normal around `per_user`. It has the long tail of real logs
and item-item structure a model can learn, so nDCG means something.

Per catalogue size: the log is split 90/10 at random; ALS (the library defaults, the baseline
every ratio is taken against), EASE sparse and, up to `exact_max_items`, EASE exact are fitted on
the 90%; each one's fit time, peak memory (`mmsearch.bench.memory.peak_memory`) and test nDCG@10
(a seeded sample of users, ranking every item they have not interacted with) are reported, plus
popularity's nDCG.

Run: `mmsearch bench cf --items 10000 --items 100000` (default 10,000, 50,000 and 100,000 items).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mmsearch.bench.memory import anon_rss, peak_memory
from mmsearch.cf import ALSConfig, EASEConfig, fit
from mmsearch.cf.interactions import Interactions
from mmsearch.eval.metrics import evaluate
from mmsearch.eval.runner import candidate_mask, eval_users, rank
from mmsearch.eval.splits import Split, random_split
from mmsearch.eval.strategies import CFStrategy, EASEStrategy, PopularStrategy, Strategy

_log = logging.getLogger(__name__)
_TOPIC = 100  # items per topic, on average


class CFBenchConfig(BaseModel):
    """What to measure.

    Attributes:
        items: catalogue sizes, one log each.
        users_per_item: users = items x this.
        per_user: mean interactions per user (log-normal).
        zipf: the popularity exponent.
        exact_max_items: exact EASE only up to this many items (it holds 4 n^2 bytes).
        neighbors, regularization: EASE's settings (both solvers).
        eval_users: test users sampled for nDCG@10.
        seed: random seed of the logs, the split and the user sample.
    """

    model_config = ConfigDict(extra="forbid")

    items: tuple[int, ...] = Field((10_000, 50_000, 100_000), min_length=1)
    users_per_item: float = Field(1.0, gt=0)
    per_user: float = Field(30.0, ge=2)
    zipf: float = Field(0.9, ge=0)
    exact_max_items: int = Field(50_000, ge=0)
    neighbors: int = Field(EASEConfig().neighbors, ge=1)
    regularization: float = Field(EASEConfig().regularization, gt=0)
    eval_users: int = Field(2_000, ge=1)
    seed: int = 0


@dataclass(frozen=True)
class FitRow:
    """One model on one log: fit seconds, peak memory (MiB) above the start, test nDCG@10, weights kept."""

    model: str
    items: int
    interactions: int
    seconds: float
    peak_mib: float
    ndcg10: float
    nnz: int = 0


@dataclass(frozen=True)
class CFBenchResult:
    """Every row, and how memory was measured."""

    config: CFBenchConfig
    rows: list[FitRow] = field(default_factory=list)
    memory: str = "rss"

    def to_json(self) -> dict[str, Any]:
        return {"config": self.config.model_dump(), "memory": self.memory, "rows": [asdict(r) for r in self.rows]}


def power_law_log(n_items: int, n_users: int, per_user: float, zipf: float, seed: int) -> Interactions:
    """A synthetic interaction log with a popularity long tail and topic structure (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n_topics = max(1, n_items // _TOPIC)
    topic = rng.integers(0, n_topics, n_items)
    popularity = 1.0 / np.arange(1, n_items + 1) ** zipf
    rng.shuffle(popularity)
    order = np.argsort(topic, kind="stable")  # items grouped by topic
    mass = popularity[order]
    cum = np.cumsum(mass)
    bounds = np.searchsorted(topic[order], np.arange(n_topics + 1))
    start = np.concatenate([[0.0], cum])[bounds[:-1]]
    topic_mass = np.concatenate([[0.0], cum])[bounds[1:]] - start
    counts = np.maximum(1, rng.lognormal(np.log(per_user), 0.8, n_users).astype(np.int64))
    users = np.repeat(np.arange(n_users), counts)
    favourites = rng.choice(n_topics, size=(n_users, 3), p=topic_mass / topic_mass.sum())
    own = favourites[users, rng.integers(0, 3, len(users))]
    anywhere = rng.choice(n_topics, size=len(users), p=topic_mass / topic_mass.sum())
    chosen = np.where(rng.random(len(users)) < 0.8, own, anywhere)
    at = start[chosen] + rng.random(len(users)) * topic_mass[chosen]
    items = order[np.minimum(np.searchsorted(cum, at, side="right"), n_items - 1)]
    return Interactions.from_arrays(
        np.char.add("u", users.astype(str)), np.char.add("i", items.astype(str)), duplicates="max"
    )


def _ndcg(split: Split, strategy: Strategy, users: np.ndarray) -> float:
    ranked, _ = rank(users, lambda u: candidate_mask(split, "test", u, cold_only=False), 10, [strategy])
    relevant = split.test.to_csr()[users]
    return evaluate(ranked[strategy.name], relevant, ks=(10,), n_items=split.train.n_items).values["ndcg@10"]


def _fit(name: str, train: Interactions, config: ALSConfig | EASEConfig) -> Strategy:
    if isinstance(config, EASEConfig):
        return EASEStrategy.from_model(fit(train, config)[0], train, name)
    return CFStrategy.from_model(fit(train, config)[0], train.user_ids, train.item_ids, name)


def _measure(
    name: str, split: Split, users: np.ndarray, config: ALSConfig | EASEConfig, log: Callable[[str], None]
) -> FitRow:
    log(f"  fitting {name} on {len(split.train)} interactions of {split.train.n_items} items")
    began = time.perf_counter()
    with peak_memory() as peak:
        strategy = _fit(name, split.train, config)
    seconds = time.perf_counter() - began
    ndcg = _ndcg(split, strategy, users)
    nnz = strategy.model.nnz if isinstance(strategy, EASEStrategy) else 0
    row = FitRow(name, split.train.n_items, len(split.train), round(seconds, 2), round(peak[0], 1), round(ndcg, 4), nnz)
    log(f"  {name}: {row.seconds:.1f} s, {row.peak_mib:.0f} MiB, nDCG@10 {row.ndcg10:.4f}")
    return row


def _one_size(n: int, config: CFBenchConfig, log: Callable[[str], None]) -> list[FitRow]:
    log(f"{n} items: generating the log")
    table = power_law_log(n, int(n * config.users_per_item), config.per_user, config.zipf, config.seed)
    split = random_split(table, (0.9, 0.0, 0.1), seed=config.seed)
    users = eval_users(split.test, config.eval_users, config.seed)
    ease = EASEConfig(neighbors=config.neighbors, regularization=config.regularization)
    models: dict[str, ALSConfig | EASEConfig] = {"als": ALSConfig(), "ease sparse": ease}
    if n <= config.exact_max_items:
        models["ease exact"] = ease.model_copy(update={"solver": "exact"})
    rows = [_measure(name, split, users, model, log) for name, model in models.items()]
    train = split.train
    popular = PopularStrategy.from_train(train)
    rows.append(FitRow("popular", train.n_items, len(train), 0.0, 0.0, round(_ndcg(split, popular, users), 4)))
    return rows


def run(config: CFBenchConfig | None = None, log: Callable[[str], None] = _log.info) -> CFBenchResult:
    """Generate each log, fit the models, measure them (see the module docstring)."""
    config = config or CFBenchConfig()
    rows = [row for n in config.items for row in _one_size(n, config, log)]
    return CFBenchResult(config, rows, "rss" if anon_rss() is not None else "tracemalloc")


def format_result(result: CFBenchResult) -> str:
    """A markdown table: per size and model, fit time (and its ratio to ALS), peak memory, nDCG@10."""
    header = (
        "| items | interactions | model | fit s | fit / ALS | peak MiB | test nDCG@10 | weights kept |\n"
        "|---:|---:|---|---:|---:|---:|---:|---:|"
    )
    lines = [header]
    als = {r.items: r.seconds for r in result.rows if r.model == "als"}
    for r in result.rows:
        ratio = f"{r.seconds / als[r.items]:.1f}x" if r.model != "popular" and als.get(r.items) else "-"
        seconds = f"{r.seconds:.1f}" if r.model != "popular" else "-"
        peak = f"{r.peak_mib:.0f}" if r.model != "popular" else "-"
        nnz = f"{r.nnz:,}" if r.nnz else "-"
        lines.append(
            f"| {r.items:,} | {r.interactions:,} | {r.model} | {seconds} | {ratio} | {peak} | {r.ndcg10:.4f} | {nnz} |"
        )
    note = "resident and anonymous memory above the start" if result.memory == "rss" else "numpy's traced peak"
    return "\n".join(lines) + f"\n\npeak memory: {note}; ALS: the library defaults, the baseline of each size."


__all__ = ["CFBenchConfig", "CFBenchResult", "FitRow", "format_result", "power_law_log", "run"]
