"""A trained collaborative-filtering model: factors, id maps and training interactions, in numpy.

Scores are plain dot products `user_vector @ item_vector`, so the item factors can go into a
Dot-distance named vector and a user factor can be the query against it. Dot products are
unbounded: normalise them before mixing with cosine similarities.

The model knows only the users and items that had training interactions. Everything else is
cold: `is_cold` says so without raising (the query engine's cue to fall back to content signals),
`score` gives NaN for unknown items, and asking for an unknown user's vector raises
`NotFoundError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np

from mmsearch.cf.config import ALSConfig, BPRConfig
from mmsearch.cf.ids import IdMaps, read_only
from mmsearch.errors import ConfigError, ModelError, NotFoundError, listed
from mmsearch.ranking import top_k


class Recommendation(NamedTuple):
    """Ranked items, best first: raw item ids and their CF scores (float32)."""

    item_ids: list[str]
    scores: np.ndarray


# What to do about an id the model does not know, by kind.
_UNKNOWN = {
    "user": "users without training interactions are cold: check is_cold() and fall back to content signals",
    "item": "items without training interactions are reachable through content signals only",
}


@dataclass(frozen=True, eq=False)
class CFModel(IdMaps):
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
        indptr, indices = self.seen_indptr, self.seen_indices
        if (
            len(indptr) != len(self.user_ids) + 1
            or indptr[0] != 0
            or indptr[-1] != len(indices)
            or np.any(np.diff(indptr) < 0)
            or (len(indices) and (indices.min() < 0 or indices.max() >= len(self.item_ids)))
        ):
            raise ModelError("CF model's training interactions do not fit its user and item ids")
        if len(set(self.user_ids)) != len(self.user_ids) or len(set(self.item_ids)) != len(self.item_ids):
            raise ModelError("CF model has a repeated user or item id")

    # ----------------------------------------------------------------- shape and lookup

    @property
    def algorithm(self) -> str:
        return self.config.algorithm

    @property
    def dim(self) -> int:
        """Vector length (`factors`, or `factors + 1` for BPR's bias dimension)."""
        return int(self.item_factors.shape[1])

    def has_user(self, user_id: str) -> bool:
        return user_id in self.user_index

    def _row(self, kind: Literal["user", "item"], raw_id: str) -> int:
        """The factor row of a user or an item id.

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
        """Item rows the user at factor row `row` interacted with in training."""
        return self.seen_indices[self.seen_indptr[row] : self.seen_indptr[row + 1]]

    # ----------------------------------------------------------------- cold start

    def interaction_count(self, user_id: str) -> int:
        """Training interactions of `user_id` (0 for a user the model does not know)."""
        row = self.user_index.get(user_id)
        return 0 if row is None else int(self.seen_indptr[row + 1] - self.seen_indptr[row])

    def is_cold(self, user_id: str, min_interactions: int = 1) -> bool:
        """Whether CF should not speak for `user_id`: unknown, or fewer than `min_interactions`.

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


__all__ = ["CFModel", "Recommendation"]
