"""Trained collaborative-filtering models, in numpy: factors (ALS, BPR) or item-item weights (EASE).

`CFModel`: scores are plain dot products `user_vector @ item_vector`, so the item factors can go
into a Dot-distance named vector and a user factor can be the query against it.

`EASEModel`: a user's score for item j is the sum over the items of their history of the weight
B[i, j]; item j's column of B is its sparse vector (indices: the model's item indices), and a
history is the sparse query with one index per item, so any history scores, including a session
the model never saw.

Both are unbounded: normalise before mixing with cosine similarities. Both know the users of
their training interactions (`is_cold` says so without raising: the query engine's cue to fall
back to content signals); asking for an unknown user's vector raises `NotFoundError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, NamedTuple

import numpy as np

from mmsearch.cf.config import ALSConfig, BPRConfig, EASEConfig
from mmsearch.cf.ids import IdMaps, read_only
from mmsearch.errors import ConfigError, ModelError, NotFoundError, listed
from mmsearch.ranking import top_k
from mmsearch.storage.base import SparseVector


class Recommendation(NamedTuple):
    """Ranked items, best first: raw item ids and their CF scores (float32)."""

    item_ids: list[str]
    scores: np.ndarray


# What to do about an id the model does not know, by kind.
_UNKNOWN = {
    "user": "users without training interactions are cold: check is_cold() and fall back to content signals",
    "item": "items without training interactions are reachable through content signals only",
}


class _Trained(IdMaps):
    """What every trained model shares: its config, id maps and training interactions (CSR structure)."""

    config: ALSConfig | BPRConfig | EASEConfig
    seen_indptr: np.ndarray
    seen_indices: np.ndarray

    @property
    def algorithm(self) -> str:
        return self.config.algorithm

    def has_user(self, user_id: str) -> bool:
        return user_id in self.user_index

    def _check_seen(self) -> None:
        indptr, indices = self.seen_indptr, self.seen_indices
        if (
            len(indptr) != len(self.user_ids) + 1
            or indptr[0] != 0
            or indptr[-1] != len(indices)
            or np.any(np.diff(indptr) < 0)
            or (len(indices) and (indices.min() < 0 or indices.max() >= len(self.item_ids)))
        ):
            raise ModelError(f"{self.algorithm} model's training interactions do not fit its user and item ids")
        if len(set(self.user_ids)) != len(self.user_ids) or len(set(self.item_ids)) != len(self.item_ids):
            raise ModelError(f"{self.algorithm} model has a repeated user or item id")

    def _row(self, kind: Literal["user", "item"], raw_id: str) -> int:
        """The row of a user or an item id.

        Raises:
            NotFoundError: the model does not know the id (the message says what to do instead).
        """
        ids, index = (self.user_ids, self.user_index) if kind == "user" else (self.item_ids, self.item_index)
        try:
            return index[raw_id]
        except KeyError:
            raise NotFoundError(
                f"{kind} {raw_id!r} is unknown to the {self.algorithm} model, which knows "
                f"{len(ids)} {kind}s ({listed(ids, 5)}); {_UNKNOWN[kind]}"
            ) from None

    def _seen(self, row: int) -> np.ndarray:
        """Item rows the user at row `row` interacted with in training."""
        return self.seen_indices[self.seen_indptr[row] : self.seen_indptr[row + 1]]

    def interaction_count(self, user_id: str) -> int:
        """Training interactions of `user_id` (0 for a user the model does not know)."""
        row = self.user_index.get(user_id)
        return 0 if row is None else int(self.seen_indptr[row + 1] - self.seen_indptr[row])

    def is_cold(self, user_id: str, min_interactions: int = 1) -> bool:
        """Whether the model should not speak for `user_id`: unknown, or fewer than `min_interactions`.

        Never raises for an unknown user; that is the cold case the caller falls back from.

        Raises:
            ConfigError: `min_interactions` below 1.
        """
        if min_interactions < 1:
            raise ConfigError(f"min_interactions must be at least 1, got {min_interactions}")
        return self.interaction_count(user_id) < min_interactions

    def seen_items(self, user_id: str) -> list[str]:
        """Item ids `user_id` interacted with in training.

        Raises:
            NotFoundError: unknown user.
        """
        return [self.item_ids[j] for j in self._seen(self._row("user", user_id))]


@dataclass(frozen=True, eq=False)
class CFModel(_Trained):
    """User and item factors of one trained model, with the interactions it was trained on.

    Attributes:
        config: the training settings.
        user_ids: raw id of each user row of `user_factors`.
        item_ids: raw id of each item row of `item_factors`.
        user_factors: float32 (n_users, dim).
        item_factors: float32 (n_items, dim).
        seen_indptr, seen_indices: the training interactions as CSR structure (user u saw the
            item indices `seen_indices[seen_indptr[u]:seen_indptr[u + 1]]`).
        info: JSON-able facts about the training run (library version, seconds, sizes).
    """

    config: ALSConfig | BPRConfig
    user_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    user_factors: np.ndarray
    item_factors: np.ndarray
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "user_ids", tuple(self.user_ids))
        object.__setattr__(self, "item_ids", tuple(self.item_ids))
        for name, dtype in (
            ("user_factors", np.float32),
            ("item_factors", np.float32),
            ("seen_indptr", np.int64),
            ("seen_indices", np.int32),
        ):
            object.__setattr__(self, name, read_only(getattr(self, name), dtype))
        users, items = self.user_factors, self.item_factors
        if users.ndim != 2 or items.ndim != 2 or users.shape[1] != items.shape[1]:
            raise ModelError(f"CF factor shapes differ: users {users.shape}, items {items.shape}")
        if users.shape[0] != len(self.user_ids) or items.shape[0] != len(self.item_ids):
            raise ModelError(
                f"CF model has {users.shape[0]} user and {items.shape[0]} item factors for "
                f"{len(self.user_ids)} user and {len(self.item_ids)} item ids"
            )
        self._check_seen()

    @property
    def dim(self) -> int:
        """Vector length (`factors`, or `factors + 1` for BPR's bias dimension)."""
        return int(self.item_factors.shape[1])

    # ----------------------------------------------------------------- vectors and scores

    def user_vector(self, user_id: str) -> np.ndarray:
        """The user's factor vector (float32, `dim`).

        Raises:
            NotFoundError: unknown user.
        """
        return self.user_factors[self._row("user", user_id)]

    def item_vector(self, item_id: str) -> np.ndarray:
        """The item's factor vector (float32, `dim`).

        Raises:
            NotFoundError: unknown item.
        """
        return self.item_factors[self._row("item", item_id)]

    def all_scores(self, user_id: str) -> np.ndarray:
        """The user's score for every model item (float32, `n_items`, in `item_ids` order).

        Raises:
            NotFoundError: unknown user.
        """
        return self.item_factors @ self.user_vector(user_id)

    def score(self, user_id: str, item_ids: Sequence[str]) -> np.ndarray:
        """The user's scores for `item_ids` (float32); NaN for items the model does not know.

        Unknown items are a missing signal, not an error: fusion should renormalise the other
        signals' weights for them rather than rank them as if CF scored them zero.

        Raises:
            NotFoundError: unknown user.
        """
        vector = self.user_vector(user_id)
        rows = self.item_positions(item_ids)
        out = np.full(len(rows), np.nan, dtype=np.float32)
        known = rows >= 0
        out[known] = self.item_factors[rows[known]] @ vector
        return out

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: Sequence[str] | None = None,
    ) -> Recommendation:
        """The user's `k` best items by CF score (ties: item order in `item_ids`).

        Args:
            user_id: a user the model knows.
            k: how many items at most.
            exclude_seen: leave out items the user interacted with in training.
            candidates: restrict to these item ids (e.g. the items a filter admits); ids the
                model does not know are ignored.

        Returns:
            Up to `k` item ids with their scores, best first (fewer if fewer items qualify).

        Raises:
            NotFoundError: unknown user.
            ConfigError: `k` is not a positive integer.
        """
        scores = self.all_scores(user_id).astype(np.float32)
        if candidates is not None:
            allowed = np.zeros(self.n_items, dtype=bool)
            rows = self.item_positions(candidates)
            allowed[rows[rows >= 0]] = True
            scores = np.where(allowed, scores, -np.inf)
        if exclude_seen:
            scores[self._seen(self.user_index[user_id])] = -np.inf
        best = top_k(scores, k)
        return Recommendation([self.item_ids[j] for j in best], scores[best])


@dataclass(frozen=True)
class History:
    """A history as EASE reads it: the model's item indices and their values, and the ids it does not know.

    Attributes:
        vector: indices (the model's item indices, ascending) and values (the weighting applied).
        unknown: ids of the history the model has no index for (items without training interactions).
    """

    vector: SparseVector
    unknown: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.vector)


@dataclass(frozen=True, eq=False)
class EASEModel(_Trained):
    """EASE item-item weights, one sparse column per item, with the interactions they were learnt from.

    Attributes:
        config: the training settings.
        user_ids: the training users (their history is `seen_*`).
        item_ids: raw id of each model item index (the indices of every sparse vector).
        weight_indptr, weight_indices, weight_values: the weights as CSC structure: item j's
            column (its sparse vector `ease`) holds `weight_values[weight_indptr[j]:weight_indptr[j + 1]]`
            at the source items `weight_indices[...]`. An item with an empty column has no vector.
        seen_indptr, seen_indices, seen_values: the training interactions as CSR, with the
            values a stored history queries with (the config's weighting applied).
        info: JSON-able facts about the training run.
    """

    config: EASEConfig
    user_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    weight_indptr: np.ndarray
    weight_indices: np.ndarray
    weight_values: np.ndarray
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    seen_values: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "user_ids", tuple(self.user_ids))
        object.__setattr__(self, "item_ids", tuple(self.item_ids))
        for name, dtype in _EASE_ARRAYS.items():
            object.__setattr__(self, name, read_only(getattr(self, name), dtype))
        n = len(self.item_ids)
        indptr, indices = self.weight_indptr, self.weight_indices
        if (
            len(indptr) != n + 1
            or indptr[0] != 0
            or indptr[-1] != len(indices)
            or len(self.weight_values) != len(indices)
            or np.any(np.diff(indptr) < 0)
            or (len(indices) and (indices.min() < 0 or indices.max() >= n))
        ):
            raise ModelError("EASE model's weights do not fit its item ids")
        if len(self.seen_values) != len(self.seen_indices):
            raise ModelError("EASE model's training interactions have a value count unlike their item count")
        self._check_seen()

    @property
    def dim(self) -> int:
        """Indices a sparse vector of this model may hold (its item count)."""
        return len(self.item_ids)

    @property
    def nnz(self) -> int:
        """Weights kept, all items together."""
        return len(self.weight_values)

    def _column(self, row: int) -> slice:
        return slice(int(self.weight_indptr[row]), int(self.weight_indptr[row + 1]))

    def has_vector(self, item_id: str) -> bool:
        """Whether the item has weights (an item the model does not know, or with an empty column, has none)."""
        row = self.item_index.get(item_id)
        return row is not None and self.weight_indptr[row + 1] > self.weight_indptr[row]

    def item_vector(self, item_id: str) -> SparseVector:
        """Item j's column of the weights: source item indices and weights, its sparse vector `ease`.

        Raises:
            NotFoundError: unknown item.
        """
        part = self._column(self._row("item", item_id))
        return SparseVector(self.weight_indices[part].astype(np.uint32), self.weight_values[part])

    def history(self, item_ids: Sequence[str]) -> History:
        """A history of item ids (an anonymous session's clicks, say) as the query: 1 per known item.

        An id given twice counts once; ids the model does not know are listed in `unknown`.
        """
        rows = self.item_positions(list(dict.fromkeys(item_ids)))
        unknown = tuple(i for i, r in zip(dict.fromkeys(item_ids), rows, strict=True) if r < 0)
        known = np.unique(rows[rows >= 0]).astype(np.uint32)
        return History(SparseVector(known, np.ones(len(known), dtype=np.float32)), unknown)

    def user_history(self, user_id: str) -> History:
        """The user's training history as the query, with the values it was trained on.

        Raises:
            NotFoundError: unknown user.
        """
        row = self._row("user", user_id)
        part = slice(int(self.seen_indptr[row]), int(self.seen_indptr[row + 1]))
        indices = self.seen_indices[part].astype(np.uint32)
        order = np.argsort(indices, kind="stable")
        return History(SparseVector(indices[order], self.seen_values[part][order]))

    def scores(self, history: History | SparseVector) -> np.ndarray:
        """Every item's EASE score for a history (float64, `n_items`): the engine's sparse dot products.

        NaN for items without weights (they have no vector in the store, so no score).
        """
        vector = history.vector if isinstance(history, History) else history
        import scipy.sparse

        n = self.n_items
        query = scipy.sparse.csr_matrix(
            (np.asarray(vector.values, np.float64), np.asarray(vector.indices), [0, len(vector)]), shape=(1, n)
        )
        out = np.asarray((query @ self.weights).todense(), dtype=np.float64).reshape(-1)
        out[np.diff(self.weight_indptr) == 0] = np.nan
        return out

    @cached_property
    def weights(self) -> Any:
        """The items x items weights as a scipy CSC matrix (column j: item j's sparse vector)."""
        import scipy.sparse

        n = self.n_items
        return scipy.sparse.csc_matrix(
            (self.weight_values.astype(np.float64), self.weight_indices, self.weight_indptr), shape=(n, n)
        )

    def recommend(self, user_id: str, k: int = 10, *, exclude_seen: bool = True) -> Recommendation:
        """The user's `k` best items by EASE score (ties: item order in `item_ids`).

        Raises:
            NotFoundError: unknown user.
        """
        scores = np.nan_to_num(self.scores(self.user_history(user_id)), nan=-np.inf).astype(np.float32)
        if exclude_seen:
            scores[self._seen(self.user_index[user_id])] = -np.inf
        best = [j for j in top_k(scores, k) if np.isfinite(scores[j])]
        return Recommendation([self.item_ids[j] for j in best], scores[best])


_EASE_ARRAYS: dict[str, type] = {
    "weight_indptr": np.int64,
    "weight_indices": np.int32,
    "weight_values": np.float32,
    "seen_indptr": np.int64,
    "seen_indices": np.int32,
    "seen_values": np.float32,
}
TrainedModel = CFModel | EASEModel

__all__ = ["CFModel", "EASEModel", "History", "Recommendation", "TrainedModel"]
