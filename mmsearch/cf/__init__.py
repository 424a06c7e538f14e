"""Collaborative filtering: ALS and BPR trained with `implicit`, served from numpy.

Typical use::

    from mmsearch.cf import cf_config, fit, save_model, load_model
    model, report = fit(train, cf_config("als", factors=64))
    if not model.is_cold(user, min_interactions=5):
        ids, scores = model.recommend(user, k=10)

Only `fit` needs `implicit` (imported on first call); a loaded model is plain numpy.
"""

from mmsearch.cf.config import ALGORITHMS, ALSConfig, BPRConfig, CFConfig, cf_config, parse_cf_config
from mmsearch.cf.model import CFModel, Recommendation
from mmsearch.cf.persist import load_model, save_model
from mmsearch.cf.train import FitReport, fit

__all__ = [
    "ALGORITHMS",
    "ALSConfig",
    "BPRConfig",
    "CFConfig",
    "CFModel",
    "FitReport",
    "Recommendation",
    "cf_config",
    "fit",
    "load_model",
    "parse_cf_config",
    "save_model",
]
