"""Recommendation strategies under evaluation: baselines, content signals, CF, and their fusion.

Every strategy scores users against the whole catalogue: `scores(users, candidates)` returns a
float64 matrix (len(users), n_items), higher is better, NaN where the strategy has no score (an
item without the modality, an item or user CF never saw, an item that is no candidate). NaN is
never ranked (`mmsearch.ranking.top_k_rows`). Users and items are the indices of the interaction
table the strategies were built from; everything is learnt from the training part only.

Content strategies follow the five techniques of Arias, Lillo and Sanhueza's CLIP study of Yelp
(see `content_strategies`). A user's profile is the mean of the vectors of the items they
interacted with in training (the first `max_profile_items`, as the engine reads them),
re-normalised, as `mmsearch.query.signals.profile_queries` builds it for queries; scores are
cosine similarities. Whether a model's two towers can be crossed is the engine's rule too
(`mmsearch.query.signals.shares_space`).

CF strategies score with the model the engine serves: ALS and BPR factors (`cf`), EASE's pruned
sparse columns (`ease`, the sum over the user's training history of the weights, exactly the
sparse dot product Qdrant computes; items sharing no index with the history score 0 but are not
retrieved, as Qdrant's sparse search does not return them).

Hybrids run the query engine's own functions (`mmsearch.query.fusion`): per user, the candidate
set is `pool` (the union of each weighted leg's `candidate_depth` best items, the engine's
`SearchSettings.candidates`), the legs are fused by `fuse_candidates` (normalised over the
candidates, weights as the engine sends them, an item a leg cannot score fused over the others).
So the ranking is the one `Searcher.recommend` returns for the same weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from mmsearch.errors import ConfigError, InputError, UnknownNameError
from mmsearch.eval.content import ItemVectors
from mmsearch.query import fusion
from mmsearch.query.signals import DEFAULT_MAX_PROFILE_ITEMS, shares_space

if TYPE_CHECKING:
    import scipy.sparse

    from mmsearch.cf import CFModel, EASEModel
    from mmsearch.cf.interactions import Interactions

# Candidates fetched per signal before fusion: the query engine's default (SearchSettings.candidates).
DEFAULT_DEPTH = fusion.DEFAULT_CANDIDATES
CONTENT_TECHNIQUES: dict[str, str] = {
    "image": "items and users as the mean of image embeddings (study technique 1)",
    "text": "items and users as the mean of text embeddings (study technique 2)",
    "text-image": "users' mean text embedding against item images (study technique 3)",
    "image-text": "users' mean image embedding against item texts (study technique 4)",
    "mixed": "items and users as the mean of their text and image embeddings (study technique 5)",
}


@runtime_checkable
class Strategy(Protocol):
    """Scores users against every item.

    Its name, kind and description are read-only: the frozen dataclasses below implement them as
    fields, a test double as plain attributes.
    """

    @property
    def name(self) -> str:
        """Unique in a run (a table row, a fusion leg)."""
        ...

    @property
    def kind(self) -> str:
        """`baseline`, `content`, `cf` or `hybrid`."""
        ...

    @property
    def description(self) -> str:
        """What it does, in a few words, for the report."""
        ...

    def scores(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """(len(users), n_items) float64 scores; NaN where there is no score or `candidates` is False."""
        ...


@runtime_checkable
class Retrievable(Protocol):
    """A strategy whose search returns only some of the items it scores (a sparse leg)."""

    def retrievable(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """bool (len(users), n_items): the items a nearest-neighbour search on this leg can return."""
        ...


def _masked(scores: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    if candidates.shape != scores.shape:
        raise InputError(f"candidate mask {candidates.shape} does not match the score matrix {scores.shape}")
    return np.where(candidates, scores, np.nan)


def _users(users: np.ndarray, n_users: int) -> np.ndarray:
    users = np.asarray(users, dtype=np.int64).reshape(-1)
    if users.size and (users.min() < 0 or users.max() >= n_users):
        bad = int(users[(users < 0) | (users >= n_users)][0])
        raise InputError(f"user index {bad} is outside [0, {n_users})")
    return users


# ----------------------------------------------------------------------- baselines


@dataclass(frozen=True)
class RandomStrategy:
    """Uniform random scores; each user's draw depends only on (seed, user), not on batching."""

    n_items: int
    n_users: int
    seed: int = 0
    name: str = "random"
    kind: str = "baseline"
    description: str = "uniformly random order"

    def scores(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        users = _users(users, self.n_users)
        out = np.empty((len(users), self.n_items), dtype=np.float64)
        for row, user in enumerate(users):
            out[row] = np.random.default_rng((self.seed, int(user))).random(self.n_items)
        return _masked(out, candidates)


@dataclass(frozen=True, eq=False)
class PopularStrategy:
    """Items by the number of training users who interacted with them; NaN for items none did."""

    counts: np.ndarray
    n_users: int
    name: str = "popular"
    kind: str = "baseline"
    description: str = "most interacted-with items in training"

    @classmethod
    def from_train(cls, train: Interactions) -> PopularStrategy:
        return cls(train.item_counts().astype(np.float64), train.n_users)

    def scores(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        users = _users(users, self.n_users)
        row = np.where(self.counts > 0, self.counts, np.nan)
        return _masked(np.broadcast_to(row, (len(users), len(row))), candidates)


# ----------------------------------------------------------------------- content


@dataclass(frozen=True, eq=False)
class VectorStrategy:
    """Cosine of a user vector and an item vector (a content technique).

    Attributes:
        user_vectors: float32 (n_users, dim), unit rows; NaN rows for users without a profile.
        item_vectors: float32 (n_items, dim), unit rows; `item_present` False where missing.
    """

    name: str
    user_vectors: np.ndarray
    item_vectors: np.ndarray
    item_present: np.ndarray
    description: str = ""
    kind: str = "content"

    def scores(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        users = _users(users, self.user_vectors.shape[0])
        profiles = self.user_vectors[users].astype(np.float64)
        has_profile = np.isfinite(profiles).all(axis=1)
        out = np.full((len(users), self.item_vectors.shape[0]), np.nan)
        out[has_profile] = profiles[has_profile] @ self.item_vectors.T.astype(np.float64)
        out[:, ~self.item_present] = np.nan
        return _masked(out, candidates)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; rows that are zero or not finite become NaN."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    ok = np.isfinite(norms) & (norms > 0)
    return np.where(ok, matrix / np.where(ok, norms, 1.0), np.nan).astype(np.float32)


def user_profiles(train: Interactions, vectors: ItemVectors, max_items: int = DEFAULT_MAX_PROFILE_ITEMS) -> np.ndarray:
    """Each user's mean vector over the training items that have the modality, re-normalised.

    Every interacted item counts once, whatever its weight (the study's plain mean); as in the
    query engine, only a user's first `max_items` training items (in item order) feed it.

    Returns:
        float32 (n_users, dim); NaN rows for users with no such item.

    Raises:
        InputError: `vectors` does not have one row per item of `train`.
    """
    if vectors.n_items != train.n_items:
        raise InputError(f"{vectors.name} has {vectors.n_items} item rows, the interactions {train.n_items} items")
    import scipy.sparse

    binary = train.to_csr().astype(np.float64)
    binary.data[:] = 1.0  # one count per (user, item) pair, whatever its weight
    position = np.arange(binary.nnz) - np.repeat(binary.indptr[:-1], np.diff(binary.indptr))
    binary.data[position >= max_items] = 0.0
    binary = binary @ scipy.sparse.diags(vectors.present.astype(np.float64))
    sums = np.asarray(binary @ vectors.vectors.astype(np.float64))
    return _unit_rows(sums)


def _mixed_items(text: ItemVectors, image: ItemVectors) -> tuple[np.ndarray, np.ndarray]:
    """Items as the mean of their (unit) text and image vectors, re-normalised; one alone if only one."""
    unit = _unit_rows(text.vectors.astype(np.float64) + image.vectors.astype(np.float64))  # absent rows are 0
    present = np.isfinite(unit).all(axis=1)
    return np.where(present[:, None], unit, 0.0).astype(np.float32), present


def _mixed_users(text_profiles: np.ndarray, image_profiles: np.ndarray) -> np.ndarray:
    """Users as the mean of their text and image profiles (either alone when the other is missing)."""
    summed = np.nan_to_num(text_profiles.astype(np.float64)) + np.nan_to_num(image_profiles.astype(np.float64))
    return _unit_rows(summed)


def content_strategies(train: Interactions, vectors: Sequence[ItemVectors]) -> list[VectorStrategy]:
    """The content techniques the vectors allow, with profiles learnt from `train`.

    Per tower `<model>.<modality>`: users and items in that tower's vectors (techniques 1 and 2).
    For a model with both an image and a text tower (one shared space, as in CLIP) also:
    `<model>.text-image` (user text profile against item images, technique 3), `<model>.image-text`
    (technique 4) and `<model>.mixed` (items and users as the mean of text and image, technique 5).

    Raises:
        InputError: vectors with the wrong number of rows.
        ConfigError: two `ItemVectors` with one name.
    """
    names = [v.name for v in vectors]
    if len(set(names)) != len(names):
        raise ConfigError(f"content vectors {names} repeat a name")
    profiles = {v.name: user_profiles(train, v) for v in vectors}
    out: list[VectorStrategy] = []
    for v in vectors:
        out.append(VectorStrategy(v.name, profiles[v.name], v.vectors, v.present, CONTENT_TECHNIQUES[v.modality]))
    by_model: dict[str, dict[str, ItemVectors]] = {}
    for v in vectors:
        by_model.setdefault(v.model, {})[v.modality] = v
    for model, towers in by_model.items():
        if set(towers) != {"image", "text"}:
            continue
        text, image = towers["text"], towers["image"]
        if not shares_space(text.family) or text.dim != image.dim:
            continue  # not one space (the engine's rule): crossing would be meaningless
        out.append(
            VectorStrategy(
                f"{model}.text-image",
                profiles[text.name],
                image.vectors,
                image.present,
                CONTENT_TECHNIQUES["text-image"],
            )
        )
        out.append(
            VectorStrategy(
                f"{model}.image-text",
                profiles[image.name],
                text.vectors,
                text.present,
                CONTENT_TECHNIQUES["image-text"],
            )
        )
        items, present = _mixed_items(text, image)
        users = _mixed_users(profiles[text.name], profiles[image.name])
        out.append(VectorStrategy(f"{model}.mixed", users, items, present, CONTENT_TECHNIQUES["mixed"]))
    return out


# ----------------------------------------------------------------------- collaborative filtering


@dataclass(frozen=True, eq=False)
class CFStrategy:
    """A CF model's dot products, mapped onto the interaction table's indices.

    Attributes:
        model: the trained model.
        user_rows: per user index, the model's user row (-1: the model never saw the user).
        item_rows: per item index, the model's item row (-1: cold item, NaN score).
    """

    model: CFModel
    user_rows: np.ndarray
    item_rows: np.ndarray
    name: str = ""
    kind: str = "cf"
    description: str = ""

    @classmethod
    def from_model(
        cls, model: CFModel, user_ids: Sequence[str], item_ids: Sequence[str], name: str | None = None
    ) -> CFStrategy:
        """Map `model` onto an interaction table's user and item ids."""
        user_rows = model.user_positions(user_ids)
        item_rows = model.item_positions(item_ids)
        return cls(model, user_rows, item_rows, name or model.algorithm, description=describe_model(model.config))

    def scores(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        users = _users(users, len(self.user_rows))
        rows = self.user_rows[users]
        known_items = self.item_rows >= 0
        out = np.full((len(users), len(self.item_rows)), np.nan)
        known = rows >= 0
        if known.any() and known_items.any():
            block = self.model.user_factors[rows[known]].astype(np.float64) @ self.model.item_factors[
                self.item_rows[known_items]
            ].T.astype(np.float64)
            sub = np.full((int(known.sum()), len(self.item_rows)), np.nan)
            sub[:, known_items] = block
            out[known] = sub
        return _masked(out, candidates)


@dataclass(frozen=True, eq=False)
class EASEStrategy:
    """EASE scores exactly as the engine serves them: each user's training history against the pruned columns.

    Attributes:
        model: the trained model (its columns are the items' sparse vectors).
        history: users x model items (CSR): each table user's training history with the values
            the model queries with (empty for a user the model does not know).
        item_rows: per table item, its model item index (-1: the model has no weights for it).
    """

    model: EASEModel
    history: scipy.sparse.csr_matrix
    item_rows: np.ndarray
    name: str = "ease"
    kind: str = "cf"
    description: str = ""

    @classmethod
    def from_model(cls, model: EASEModel, train: Interactions, name: str | None = None) -> EASEStrategy:
        """Map `model` onto an interaction table's users and items (histories from the model's own)."""
        import scipy.sparse

        n_model_users = model.n_users
        seen = scipy.sparse.csr_matrix(
            (model.seen_values.astype(np.float64), model.seen_indices, model.seen_indptr),
            shape=(n_model_users, model.n_items),
        )
        rows = model.user_positions(train.user_ids)
        known = np.flatnonzero(rows >= 0)
        select = scipy.sparse.csr_matrix(
            (np.ones(len(known)), (known, rows[known])), shape=(train.n_users, n_model_users)
        )
        history = (select @ seen).tocsr()
        items = model.item_positions(train.item_ids)
        has = np.diff(model.weight_indptr) > 0
        item_rows = np.where((items >= 0) & has[np.maximum(items, 0)], items, -1)
        return cls(model, history, item_rows, name or "ease", description=describe_model(model.config))

    def _mapped(self, block: np.ndarray, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        out = np.full((len(users), len(self.item_rows)), np.nan)
        known = self.item_rows >= 0
        out[:, known] = block[:, self.item_rows[known]]
        return _masked(out, candidates)

    def scores(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        users = _users(users, self.history.shape[0])
        block = (self.history[users] @ self.model.weights).toarray()
        return self._mapped(np.asarray(block, dtype=np.float64), users, candidates)

    def retrievable(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Items sharing an index with the user's history: the ones Qdrant's sparse search returns."""
        users = _users(users, self.history.shape[0])
        touched = self.history[users].copy()
        touched.data[:] = 1.0
        pattern = self.model.weights.copy()
        pattern.data[:] = 1.0
        block = np.asarray((touched @ pattern).toarray(), dtype=np.float64)
        return np.isfinite(self._mapped(np.where(block > 0, 1.0, np.nan), users, candidates))


def describe_model(config: object) -> str:
    """A CF model's settings in a few words, for the report."""
    from mmsearch.cf import ALSConfig, BPRConfig, EASEConfig

    if isinstance(config, ALSConfig):
        return (
            f"implicit ALS, {config.factors} factors, regularization {config.regularization:g}, alpha "
            f"{config.alpha:g}, {config.weighting} confidence, {config.iterations} iterations"
        )
    if isinstance(config, BPRConfig):
        return (
            f"BPR, {config.factors} factors, learning rate {config.learning_rate:g}, regularization "
            f"{config.regularization:g}, {config.iterations} iterations"
        )
    if isinstance(config, EASEConfig):
        side = ", ".join(f"{k} weight {v:g}" for k, v in sorted(config.side.items()))
        return (
            f"EASE ({config.solver} solver), lambda {config.regularization:g}, {config.neighbors} weights per item"
            + (f", side information: {side}" if side else "")
        )
    return type(config).__name__


# ----------------------------------------------------------------------- fusion


@dataclass(frozen=True)
class FusionSpec:
    """How a hybrid fuses its legs: the query engine's settings for one query (see `mmsearch.query.fusion`).

    Attributes:
        weights: one per leg, >= 0, at least one positive (relative; a leg of weight 0 takes no part).
        method: `wsum` (normalised weighted sum), `rrf` (weighted reciprocal rank fusion) or
            `dbsf` (weighted sum of distribution-normalised scores).
        normalization: for `wsum`: `minmax`, `dbsf` or `none`.
        rrf_k: the RRF constant.
        depth: the engine's `SearchSettings.candidates` (each leg's best items pooled); None pools
            every candidate (the engine with `candidates` at least the catalogue size).
    """

    weights: tuple[float, ...]
    method: fusion.Method = "wsum"
    normalization: fusion.Normalization = "minmax"
    rrf_k: int = fusion.DEFAULT_RRF_K
    depth: int | None = DEFAULT_DEPTH

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if self.method not in fusion.METHODS:
            raise UnknownNameError("fusion method", self.method, fusion.METHODS)
        if self.normalization not in fusion.NORMALIZATIONS:
            raise UnknownNameError("normalization", self.normalization, fusion.NORMALIZATIONS)
        w = np.asarray(self.weights, dtype=np.float64)
        if w.size == 0 or not np.isfinite(w).all() or (w < 0).any() or not (w > 0).any():
            raise ConfigError(f"fusion weights {list(self.weights)} must be finite, >= 0, with one above 0")
        if isinstance(self.rrf_k, bool) or not isinstance(self.rrf_k, int) or self.rrf_k < 1:
            raise ConfigError(f"RRF k={self.rrf_k!r} must be a positive integer")
        if self.depth is not None and (
            isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1
        ):
            raise ConfigError(f"fusion depth {self.depth!r} must be a positive integer or None")

    @property
    def scheme(self) -> str:
        """`wsum-minmax`, `wsum-dbsf`, `wsum-none`, `rrf` or `dbsf`."""
        return f"wsum-{self.normalization}" if self.method == "wsum" else self.method

    def label(self, legs: Sequence[str]) -> str:
        """e.g. `wsum-minmax pool=50 als=0.7 minilm.text=0.3` (`pool=all` without a depth)."""
        weights = " ".join(f"{n}={w:g}" for n, w in zip(legs, self.weights, strict=True))
        return f"{self.scheme} pool={self.depth or 'all'} {weights}"

    def to_dict(self, legs: Sequence[str]) -> dict[str, object]:
        return {
            "weights": dict(zip(legs, self.weights, strict=True)),
            "method": self.method,
            "normalization": self.normalization if self.method == "wsum" else None,
            "rrf_k": self.rrf_k if self.method == "rrf" else None,
            "depth": self.depth,
        }


def engine_ranking_scores(
    leg_scores: Sequence[np.ndarray],
    candidates: np.ndarray,
    spec: FusionSpec,
    *,
    retrievable: Sequence[np.ndarray | None] | None = None,
    limit: int = 1,
) -> np.ndarray:
    """Each user's fused scores as the query engine makes them, with the engine's own functions.

    Per user: the legs of positive weight; the candidate set `fusion.pool` (each leg's
    `fusion.candidate_depth(spec.depth, limit)` best items among the user's candidates, a sparse
    leg's among those it can retrieve); `fusion.fuse_candidates` over it.

    Args:
        leg_scores: one (n_users, n_items) matrix per leg, NaN where the leg has no score.
        candidates: bool (n_users, n_items): the items each user's ranking may hold (the
            engine's filter: the user's known items left out).
        spec: weights (one per leg), method, depth.
        retrievable: per leg, None or a bool (n_users, n_items) mask of the items its search returns.
        limit: the ranking's length (the engine's `limit`), which the depth is at least.

    Returns:
        (n_users, n_items) fused scores; NaN outside the candidate set.

    Raises:
        ConfigError: a weight count different from the leg count, or mismatched shapes.
    """
    return engine_rankings(leg_scores, candidates, [spec], retrievable=retrievable, limit=limit)[0]


def engine_rankings(
    leg_scores: Sequence[np.ndarray],
    candidates: np.ndarray,
    specs: Sequence[FusionSpec],
    *,
    retrievable: Sequence[np.ndarray | None] | None = None,
    limit: int = 1,
) -> list[np.ndarray]:
    """`engine_ranking_scores` for several fusions of the same legs (a tuning grid): each user's pools found once.

    Raises:
        ConfigError: a spec whose weight count differs from the leg count, or mismatched shapes.
    """
    n_legs = len(leg_scores)
    for spec in specs:
        if len(spec.weights) != n_legs:
            raise ConfigError(f"{len(spec.weights)} fusion weights for {n_legs} legs")
    stacked = np.stack([np.asarray(s, dtype=np.float64) for s in leg_scores], axis=2)
    if stacked.shape[:2] != candidates.shape:
        raise ConfigError(f"leg scores {stacked.shape[:2]} and candidates {candidates.shape} differ in shape")
    masks = list(retrievable) if retrievable is not None else [None] * n_legs
    reach = np.stack([candidates if m is None else m & candidates for m in masks], axis=2)
    outs = [np.full(candidates.shape, np.nan) for _ in specs]
    for row in range(candidates.shape[0]):
        pools: dict[tuple[tuple[int, ...], int | None], np.ndarray] = {}
        for spec, out in zip(specs, outs, strict=True):
            used = tuple(j for j, w in enumerate(spec.weights) if w > 0)  # the engine drops a leg of weight 0
            depth = None if spec.depth is None else fusion.candidate_depth(spec.depth, limit)
            key = (used, depth)
            if key not in pools:
                pools[key] = _user_pool(stacked[row][:, used], candidates[row], reach[row][:, used], depth)
            cols = pools[key]
            if cols.size:
                weights = [spec.weights[j] for j in used]
                m = stacked[row][np.ix_(cols, np.asarray(used, dtype=np.int64))]
                out[row, cols] = fusion.fuse_candidates(
                    m, weights, spec.method, normalization=spec.normalization, k=spec.rrf_k
                ).scores
    return outs


def _user_pool(scores: np.ndarray, candidates: np.ndarray, reach: np.ndarray, depth: int | None) -> np.ndarray:
    """One user's candidate set: every candidate some leg scores, cut by `fusion.pool` to each leg's best `depth`."""
    cols = np.flatnonzero(candidates & np.isfinite(scores).any(axis=1))
    if depth is None or cols.size == 0:
        return cols
    return cols[fusion.pool(scores[cols], depth, retrievable=reach[cols])]


def retrievable_of(legs: Sequence[Strategy], users: np.ndarray, candidates: np.ndarray) -> list[np.ndarray | None]:
    """Each leg's retrievable mask (None for a dense leg, whose search returns every item it scores)."""
    return [leg.retrievable(users, candidates) if isinstance(leg, Retrievable) else None for leg in legs]


@dataclass(frozen=True, eq=False)
class HybridStrategy:
    """Several strategies fused per user, as the engine fuses a query's signals (see `engine_ranking_scores`)."""

    name: str
    legs: tuple[Strategy, ...]
    spec: FusionSpec
    kind: str = "hybrid"
    description: str = ""
    params: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.legs) != len(self.spec.weights):
            raise ConfigError(f"hybrid {self.name!r}: {len(self.spec.weights)} weights for {len(self.legs)} legs")
        if not self.description:
            object.__setattr__(self, "description", self.spec.label(self.leg_names))

    @property
    def leg_names(self) -> tuple[str, ...]:
        return tuple(leg.name for leg in self.legs)

    def scores(self, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        scores = [leg.scores(users, candidates) for leg in self.legs]
        reach = retrievable_of(self.legs, users, candidates)
        return engine_ranking_scores(scores, candidates, self.spec, retrievable=reach)


def hybrid_name(legs: Sequence[str]) -> str:
    """`hybrid:<leg>+<leg>...`."""
    return "hybrid:" + "+".join(legs)


__all__ = [
    "CONTENT_TECHNIQUES",
    "DEFAULT_DEPTH",
    "CFStrategy",
    "EASEStrategy",
    "FusionSpec",
    "HybridStrategy",
    "PopularStrategy",
    "RandomStrategy",
    "Retrievable",
    "Strategy",
    "VectorStrategy",
    "content_strategies",
    "describe_model",
    "engine_ranking_scores",
    "engine_rankings",
    "hybrid_name",
    "retrievable_of",
    "user_profiles",
]
