"""Collaborative filtering: ALS and BPR trained with `implicit`, EASE with numpy and scipy.

Typical use::

    from mmsearch.cf import cf_config, fit, save_model, load_model
    model, report = fit(train, cf_config("als", factors=64))
    if not model.is_cold(user, min_interactions=5):
        ids, scores = model.recommend(user, k=10)
    ease, _ = fit(train, cf_config("ease"))  # item-item weights, served as Qdrant sparse vectors
    scores = ease.scores(ease.history(["item-1", "item-7"]))  # any history, no refit

Only ALS and BPR need `implicit` (imported on first call); a loaded model is plain numpy.
"""

from mmsearch.cf.config import (
    ALGORITHMS,
    ALSConfig,
    AnyCFConfig,
    BPRConfig,
    CFConfig,
    EASEConfig,
    cf_config,
    parse_cf_config,
)
from mmsearch.cf.model import CFModel, EASEModel, History, Recommendation, TrainedModel
from mmsearch.cf.persist import load_model, save_model
from mmsearch.cf.train import FitReport, fit

__all__ = [
    "ALGORITHMS",
    "ALSConfig",
    "AnyCFConfig",
    "BPRConfig",
    "CFConfig",
    "CFModel",
    "EASEConfig",
    "EASEModel",
    "History",
    "FitReport",
    "Recommendation",
    "TrainedModel",
    "cf_config",
    "fit",
    "load_model",
    "parse_cf_config",
    "save_model",
]
