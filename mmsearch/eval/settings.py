"""What an evaluation run does: `EvalSettings` (validated, immutable, JSON-able) and the fusion schemes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mmsearch.cf.config import DEFAULT_SIDE_WEIGHT, ALSConfig, AnyCFConfig, BPRConfig, CFConfig, EASEConfig
from mmsearch.errors import ConfigError, UnknownNameError, config_error
from mmsearch.eval.metrics import DEFAULT_KS, METRICS
from mmsearch.eval.splits import DEFAULT_FRACTIONS, check_fractions
from mmsearch.eval.strategies import DEFAULT_DEPTH, FusionSpec
from mmsearch.eval.tuning import DEFAULT_BUDGET_S
from mmsearch.query.fusion import Method, Normalization

SPLITS: tuple[str, ...] = ("random", "temporal", "cold-items")
# Scheme name -> the fusion method and, for the weighted sum, its normalisation.
SCHEME_PARTS: dict[str, tuple[Method, Normalization]] = {
    "wsum-minmax": ("wsum", "minmax"),
    "wsum-dbsf": ("wsum", "dbsf"),
    "wsum-none": ("wsum", "none"),
    "rrf": ("rrf", "minmax"),
    "dbsf": ("dbsf", "minmax"),
}
SCHEMES: tuple[str, ...] = tuple(SCHEME_PARTS)
DEFAULT_SCHEMES: tuple[str, ...] = ("wsum-minmax", "wsum-dbsf", "rrf")
DEFAULT_WEIGHT_GRID: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))

PositiveInt = Annotated[int, Field(strict=True, ge=1)]
# A fusion pool depth: each leg's best `depth` candidates; None pools every candidate.
Depth = Annotated[int, Field(ge=1)] | None


def default_cf_configs() -> tuple[ALSConfig, BPRConfig, EASEConfig]:
    """ALS, BPR and EASE with the library's defaults: what `mmsearch cf fit` trains without options."""
    return ALSConfig(), BPRConfig(), EASEConfig()


def fusion_spec(scheme: str, weights: Sequence[float], depth: int | None = DEFAULT_DEPTH) -> FusionSpec:
    """A `FusionSpec` from a scheme name (`wsum-minmax`, `wsum-dbsf`, `wsum-none`, `rrf`, `dbsf`).

    Raises:
        UnknownNameError: unknown scheme.
        ConfigError: bad weights.
    """
    if scheme not in SCHEME_PARTS:
        raise UnknownNameError("fusion scheme", scheme, SCHEMES)
    method, normalization = SCHEME_PARTS[scheme]
    return FusionSpec(tuple(weights), method, normalization, depth=depth)


def cf_name(config: AnyCFConfig) -> str:
    """A CF strategy's row name: its algorithm, `ease-side` for EASE with side information."""
    return "ease-side" if isinstance(config, EASEConfig) and config.side else config.algorithm


def metric_names(ks: Sequence[int]) -> list[str]:
    """Every `metric@k` an evaluation at cut-offs `ks` reports (coverage included)."""
    return [f"{m}@{k}" for k in ks for m in METRICS]


def _known_schemes(schemes: tuple[str, ...]) -> tuple[str, ...]:
    for scheme in schemes:
        if scheme not in SCHEME_PARTS:
            raise UnknownNameError("fusion scheme", scheme, SCHEMES)
    return schemes


class EvalSettings(BaseModel):
    """What an evaluation run does.

    Attributes:
        ks: metric cut-offs (kept sorted, without repeats).
        splits: any of `random` (rows shuffled 80/10/10), `temporal` (each user's latest
            interaction to test, the one before to validation) and `cold-items` (items held out
            whole, 80/10/10).
        seed: seeds the splits, the random baseline, the user sample and the bootstrap (CF
            models carry their own seeds in `cf`).
        fractions: train, validation, test fractions of the random and cold-items splits.
        cf: the CF models to train (`ALSConfig`, `BPRConfig`, `EASEConfig`), one per algorithm
            (and one EASE with `side`, the `ease-side` row).
        side_information: also evaluate `ease-side`: each EASE config without side information,
            with the content vectors (and the run's other side information) in its Gram matrix.
        side_weight: each side source's starting weight in `ease-side`.
        tune: search every model's settings on validation (`mmsearch.eval.tuning`, within
            `tune_budget_s` per model), then the hybrids' fusion (`weight_grid` x `schemes` x
            `tune_depths`); otherwise fit the settings given and fuse with `cf_weight` and `scheme`.
        tune_budget_s: seconds of search per model (a trial that starts in time finishes).
        cf_weight: weight of the CF leg without tuning (the content leg gets 1 - cf_weight).
        scheme: fusion scheme without tuning.
        weight_grid: CF-leg weights tried when tuning (the content leg gets 1 - w).
        schemes: fusion schemes tried when tuning.
        tune_metric: the validation metric that picks the hybrid's content leg and fusion.
        fusion_depth: without tuning: each leg's best candidates pooled before fusion, the query
            engine's `SearchSettings.candidates` (50 by default); None fuses over all candidates.
        tune_depths: pool depths tried when tuning (None: all candidates, which the engine
            reproduces with `candidates` >= the catalogue size).
        max_users: evaluate at most this many users per part (a seeded sample); None for all.
        chunk_users: users scored at a time (bounds memory: chunk x items floats per strategy).

    Raises:
        ConfigError: a field that does not validate (the message names it and its value);
            `UnknownNameError` for an unknown split, fusion scheme or tune metric.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    ks: tuple[PositiveInt, ...] = Field(DEFAULT_KS, min_length=1)
    splits: tuple[str, ...] = Field(("random",), min_length=1)
    seed: int = Field(0, ge=0)
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    cf: tuple[CFConfig, ...] = Field(default_factory=default_cf_configs)
    side_information: bool = True
    side_weight: float = Field(DEFAULT_SIDE_WEIGHT, ge=0.0)
    tune: bool = False
    tune_budget_s: float = Field(DEFAULT_BUDGET_S, gt=0.0)
    cf_weight: float = Field(0.5, ge=0.0, le=1.0)
    scheme: str = "wsum-minmax"
    weight_grid: tuple[float, ...] = Field(DEFAULT_WEIGHT_GRID, min_length=1)
    schemes: tuple[str, ...] = Field(DEFAULT_SCHEMES, min_length=1)
    tune_metric: str = "ndcg@10"
    fusion_depth: Depth = DEFAULT_DEPTH
    tune_depths: tuple[Depth, ...] = Field((DEFAULT_DEPTH,), min_length=1)
    max_users: int | None = Field(None, ge=1)
    chunk_users: int = Field(256, ge=1)

    if not TYPE_CHECKING:  # mypy checks calls against the fields (the pydantic plugin's __init__)

        def __init__(self, **data: Any) -> None:
            try:
                super().__init__(**data)
            except ValidationError as e:
                raise config_error(e, "eval settings") from e

    @field_validator("ks")
    @classmethod
    def _sorted_ks(cls, ks: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(sorted(set(ks)))

    @field_validator("splits")
    @classmethod
    def _known_splits(cls, splits: tuple[str, ...]) -> tuple[str, ...]:
        for kind in splits:
            if kind not in SPLITS:
                raise UnknownNameError("split", kind, SPLITS)
        return splits

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, fractions: tuple[float, float, float]) -> tuple[float, float, float]:
        return check_fractions(fractions)

    @field_validator("cf")
    @classmethod
    def _one_model_per_algorithm(cls, cf: tuple[AnyCFConfig, ...]) -> tuple[AnyCFConfig, ...]:
        names = [cf_name(c) for c in cf]
        if len(set(names)) != len(names):
            raise ConfigError(f"CF models {names} repeat an algorithm; train each algorithm once")
        return cf

    @field_validator("scheme")
    @classmethod
    def _known_scheme(cls, scheme: str) -> str:
        return _known_schemes((scheme,))[0]

    @field_validator("schemes")
    @classmethod
    def _known_tuning_schemes(cls, schemes: tuple[str, ...]) -> tuple[str, ...]:
        return _known_schemes(schemes)

    @field_validator("weight_grid")
    @classmethod
    def _cf_weights(cls, grid: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0.0 <= w <= 1.0 for w in grid):
            raise ConfigError(f"weight grid {list(grid)!r} must hold CF weights in [0, 1]")
        return grid

    @model_validator(mode="after")
    def _known_tune_metric(self) -> EvalSettings:
        # Coverage has no per-user value and describes the recommender, so it cannot choose.
        known = [m for m in metric_names(self.ks) if not m.startswith("coverage")]
        if self.tune_metric not in known:
            raise UnknownNameError("tune metric", self.tune_metric, known)
        return self


__all__ = [
    "DEFAULT_SCHEMES",
    "DEFAULT_WEIGHT_GRID",
    "SCHEMES",
    "SCHEME_PARTS",
    "SPLITS",
    "EvalSettings",
    "cf_name",
    "default_cf_configs",
    "fusion_spec",
    "metric_names",
]
