"""Raw user and item ids in index order, and the maps back: what interaction tables and CF models share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property

import numpy as np
import numpy.typing as npt


def positions(index: Mapping[str, int], ids: Sequence[str]) -> np.ndarray:
    """The index of each of `ids` (int64), -1 for ids `index` does not hold."""
    return np.fromiter((index.get(i, -1) for i in ids), dtype=np.int64, count=len(ids))


def read_only(array: npt.ArrayLike, dtype: npt.DTypeLike) -> np.ndarray:
    """`array` as a contiguous read-only view of `dtype`, leaving the caller's array writable."""
    view: np.ndarray = np.ascontiguousarray(array, dtype=dtype).view()
    view.setflags(write=False)
    return view


class IdMaps:
    """Counts, reverse maps and lookups of `user_ids` and `item_ids` (raw ids, the index of each its position).

    A mixin for the frozen dataclasses that hold the two id tuples (`Interactions`, `CFModel`).
    """

    user_ids: tuple[str, ...]
    item_ids: tuple[str, ...]

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @cached_property
    def user_index(self) -> dict[str, int]:
        """Raw user id -> user index."""
        return {u: i for i, u in enumerate(self.user_ids)}

    @cached_property
    def item_index(self) -> dict[str, int]:
        """Raw item id -> item index."""
        return {u: i for i, u in enumerate(self.item_ids)}

    def user_positions(self, user_ids: Sequence[str]) -> np.ndarray:
        """The index of each user id (int64), -1 for users not in `user_ids`."""
        return positions(self.user_index, user_ids)

    def item_positions(self, item_ids: Sequence[str]) -> np.ndarray:
        """The index of each item id (int64), -1 for items not in `item_ids`."""
        return positions(self.item_index, item_ids)


__all__ = ["IdMaps", "positions", "read_only"]
