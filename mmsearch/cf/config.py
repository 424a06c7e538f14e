"""Training settings for the collaborative-filtering models (validated, immutable, JSON-able)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from mmsearch.errors import ConfigError, UnknownNameError, config_error

ALGORITHMS: tuple[str, ...] = ("als", "bpr", "ease")
SOLVERS: tuple[str, ...] = ("sparse", "exact")
Weighting = Literal["linear", "log1p", "binary"]


class _CFBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    factors: int = Field(64, ge=1, le=4096, description="latent dimensions")
    regularization: float = Field(0.01, ge=0.0, description="L2 penalty on the factors")
    seed: int = Field(0, ge=0, description="random seed of the factor initialisation (and BPR sampling)")


class ALSConfig(_CFBase):
    """Implicit-feedback ALS (Hu, Koren and Volinsky 2008) through `implicit`.

    Each interaction weight w becomes the confidence `alpha * f(w)`, with f the `weighting`:
    `linear` (w itself), `log1p` (log(1 + w), damping heavy users and repeated plays) or
    `binary` (1 for any interaction). ALS is deterministic for a given seed at any thread count.

    The defaults (regularization 50, alpha 10, binary confidence) were chosen on the validation
    part of MovieLens-100k's random split (test nDCG@10 0.33 against 0.22 for implicit's own
    0.01 / 1 / ratings as confidence); the penalty grows with the data's scale, so tune it
    (`mmsearch cf fit --tune`) on logs much smaller or larger.
    One thread is the default: implicit's OpenMP loops wait on each other at every half-step, and
    on a busy machine a second thread that is not scheduled makes a fit many times slower (a
    36 x 36 fit took 2 s with two threads next to other work and 0.02 s with one). Raise it on
    an idle multi-core machine for large logs.
    """

    algorithm: Literal["als"] = "als"
    regularization: float = Field(50.0, ge=0.0, description="L2 penalty on the factors")
    iterations: int = Field(15, ge=1, le=10_000)
    alpha: float = Field(10.0, gt=0.0, description="scale of the confidence given to observed interactions")
    weighting: Weighting = "binary"
    num_threads: int = Field(1, ge=0, description="0 = every core")


class BPRConfig(_CFBase):
    """Bayesian Personalised Ranking (Rendle et al. 2009) through `implicit`.

    BPR reads interactions as binary (weights are ignored). Its SGD is Hogwild-parallel, so a run
    is only reproducible with `num_threads=1`, the default. The model's vectors have `factors + 1`
    dimensions: implicit appends an item bias, matched by a constant 1 in every user vector.
    The defaults (learning rate 0.005, regularization 0.0001) were chosen on MovieLens-100k's
    validation part (test nDCG@10 0.26 against 0.20 for 0.01 / 0.01).
    """

    algorithm: Literal["bpr"] = "bpr"
    regularization: float = Field(0.0001, ge=0.0, description="L2 penalty on the factors")
    iterations: int = Field(100, ge=1, le=100_000)
    learning_rate: float = Field(0.005, gt=0.0)
    verify_negative_samples: bool = True
    num_threads: int = Field(1, ge=0, description="0 = every core (faster, not reproducible)")


class EASEConfig(BaseModel):
    """EASE (Steck 2019): a linear item-to-item model, served from Qdrant sparse vectors.

    A user's score for item j is the sum, over the items i in their history, of the weight
    B[i, j]; B minimises ||X - XB||^2 + regularization * ||B||^2 with a zero diagonal. Item j's
    column of B, cut to its `neighbors` largest weights, is item j's sparse vector `ease`, and a
    history is the query, so any history scores, including one the model never saw.

    `solver`: `sparse` (default) solves each item's column on its `neighbors` nearest items (by
    cosine of the co-occurrence counts, plus content neighbours with side information): EASE's
    own closed form restricted to them, items x neighbors^3 time, memory that grows with the
    co-occurrences; `exact` inverts the items x items Gram matrix (items^3 time, items^2 memory)
    and keeps each column's `neighbors` largest weights by magnitude.

    Side information (`side`): feature blocks F (stored item vectors, one-hot categories) join
    the Gram matrix as `side[name]^2 * F F^T` (rows scaled to unit length), so an item without
    interactions gets weights from its content neighbours: cold items get EASE scores.

    Attributes:
        regularization: the L2 penalty lambda.
        neighbors: weights kept per item (the size of its sparse vector), and the sparse solver's
            neighbourhood.
        solver: `sparse` or `exact`.
        side: side-information source -> its weight (>= 0) in the Gram matrix.
        weighting: how interaction weights enter X (and a stored history's query): `binary` (1
            for any interaction), `linear` or `log1p`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    algorithm: Literal["ease"] = "ease"
    regularization: float = Field(300.0, gt=0.0, description="L2 penalty lambda")
    neighbors: int = Field(256, ge=1, le=65_536, description="weights kept per item")
    solver: Literal["sparse", "exact"] = "sparse"
    side: dict[str, float] = Field(default_factory=dict, description="side-information source -> weight")
    weighting: Weighting = "binary"

    @field_validator("side")
    @classmethod
    def _side_weights(cls, side: dict[str, float]) -> dict[str, float]:
        for name, weight in side.items():
            if not name or weight < 0:
                raise ValueError(f"side-information weight {name!r}={weight!r} must name a source and be >= 0")
        return side


# The weight of a side-information source named without one (`--side genres`): features are scaled
# to unit rows, so a^2 = 25 is worth the co-occurrences of an item 25 users share.
DEFAULT_SIDE_WEIGHT = 5.0


def parse_side(options: Sequence[str]) -> dict[str, float]:
    """Side-information sources from `name` or `name=weight` options (`--side minilm.text=5 --side genres`).

    A source given without a weight gets `DEFAULT_SIDE_WEIGHT`.

    Raises:
        ConfigError: an empty name, a weight that is not a number >= 0, or a source given twice.
    """
    out: dict[str, float] = {}
    for option in options:
        name, sep, value = option.partition("=")
        name = name.strip()
        if not name:
            raise ConfigError(f"--side {option!r} names no source; give a stored vector or a payload field")
        try:
            weight = float(value) if sep else DEFAULT_SIDE_WEIGHT
        except ValueError as e:
            raise ConfigError(f"--side {option!r}: {value.strip()!r} is not a number") from e
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"--side {option!r}: the weight must be a finite number >= 0")
        if name in out:
            raise ConfigError(f"side-information source {name!r} is given twice; give it once")
        out[name] = weight
    return out


CFConfig = Annotated[ALSConfig | BPRConfig | EASEConfig, Field(discriminator="algorithm")]
AnyCFConfig = ALSConfig | BPRConfig | EASEConfig
_ADAPTER: TypeAdapter[AnyCFConfig] = TypeAdapter(CFConfig)


def cf_config(algorithm: str = "als", **options: Any) -> AnyCFConfig:
    """Validated training settings for `algorithm` (`als`, `bpr` or `ease`).

    Raises:
        UnknownNameError: unknown algorithm.
        ConfigError: an unknown option or a value out of range (the message names it).
    """
    if algorithm not in ALGORITHMS:
        raise UnknownNameError("CF algorithm", algorithm, ALGORITHMS)
    return parse_cf_config({**options, "algorithm": algorithm})


def parse_cf_config(data: Mapping[str, Any]) -> AnyCFConfig:
    """Settings from a mapping with an `algorithm` key (the form `model_dump()` writes).

    Raises:
        UnknownNameError: missing or unknown algorithm.
        ConfigError: an unknown option or a value out of range.
    """
    algorithm = data.get("algorithm")
    if algorithm not in ALGORITHMS:
        raise UnknownNameError("CF algorithm", str(algorithm), ALGORITHMS)
    try:
        return _ADAPTER.validate_python(dict(data))
    except ValidationError as e:
        raise config_error(e, f"{algorithm} options") from e


__all__ = [
    "ALGORITHMS",
    "DEFAULT_SIDE_WEIGHT",
    "SOLVERS",
    "ALSConfig",
    "AnyCFConfig",
    "BPRConfig",
    "CFConfig",
    "EASEConfig",
    "Weighting",
    "cf_config",
    "parse_cf_config",
    "parse_side",
]
