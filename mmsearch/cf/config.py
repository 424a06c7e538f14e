"""Training settings for the collaborative-filtering models (validated, immutable, JSON-able)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from mmsearch.errors import UnknownNameError, config_error

ALGORITHMS: tuple[str, ...] = ("als", "bpr")


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
    One thread is the default: implicit's OpenMP loops wait on each other at every half-step, and
    on a busy machine a second thread that is not scheduled makes a fit many times slower (a
    36 x 36 fit took 2 s with two threads next to other work and 0.02 s with one). Raise it on
    an idle multi-core machine for large logs.
    """

    algorithm: Literal["als"] = "als"
    iterations: int = Field(15, ge=1, le=10_000)
    alpha: float = Field(1.0, gt=0.0, description="scale of the confidence given to observed interactions")
    weighting: Literal["linear", "log1p", "binary"] = "linear"
    num_threads: int = Field(1, ge=0, description="0 = every core")


class BPRConfig(_CFBase):
    """Bayesian Personalised Ranking (Rendle et al. 2009) through `implicit`.

    BPR reads interactions as binary (weights are ignored). Its SGD is Hogwild-parallel, so a run
    is only reproducible with `num_threads=1`, the default. The model's vectors have `factors + 1`
    dimensions: implicit appends an item bias, matched by a constant 1 in every user vector.
    """

    algorithm: Literal["bpr"] = "bpr"
    iterations: int = Field(100, ge=1, le=100_000)
    learning_rate: float = Field(0.01, gt=0.0)
    verify_negative_samples: bool = True
    num_threads: int = Field(1, ge=0, description="0 = every core (faster, not reproducible)")


CFConfig = Annotated[ALSConfig | BPRConfig, Field(discriminator="algorithm")]
_ADAPTER: TypeAdapter[ALSConfig | BPRConfig] = TypeAdapter(CFConfig)


def cf_config(algorithm: str = "als", **options: Any) -> ALSConfig | BPRConfig:
    """Validated training settings for `algorithm` (`als` or `bpr`).

    Raises:
        UnknownNameError: unknown algorithm.
        ConfigError: an unknown option or a value out of range (the message names it).
    """
    if algorithm not in ALGORITHMS:
        raise UnknownNameError("CF algorithm", algorithm, ALGORITHMS)
    return parse_cf_config({**options, "algorithm": algorithm})


def parse_cf_config(data: Mapping[str, Any]) -> ALSConfig | BPRConfig:
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


__all__ = ["ALGORITHMS", "ALSConfig", "BPRConfig", "CFConfig", "cf_config", "parse_cf_config"]
