"""Backend-neutral payload filters; `mmsearch.storage.translate` turns them into each engine's types.

Example:
    Filter(must=(Match("color", "red"), Range("price", lte=20)), must_not=(HasItemId(("sku-1",)),))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

from mmsearch.errors import InvalidFilterError

MatchValue = str | int | bool


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidFilterError(f"filter key {key!r} must be a non-empty payload field name")


def _check_match_value(key: str, value: object) -> None:
    if not isinstance(value, (str, int, bool)):
        raise InvalidFilterError(
            f"filter on {key!r}: value {value!r} is a {type(value).__name__}; exact matches take str, int or "
            f"bool (use Range for floats)"
        )


@dataclass(frozen=True)
class Match:
    """The payload field equals `value` (or, for a list field, contains it)."""

    key: str
    value: MatchValue

    def __post_init__(self) -> None:
        _check_key(self.key)
        _check_match_value(self.key, self.value)


@dataclass(frozen=True)
class MatchAny:
    """The payload field equals one of `values`."""

    key: str
    values: tuple[MatchValue, ...]

    def __post_init__(self) -> None:
        _check_key(self.key)
        if isinstance(self.values, (str, bytes)) or not isinstance(self.values, Sequence) or not self.values:
            raise InvalidFilterError(f"filter on {self.key!r}: values {self.values!r} must be a non-empty sequence")
        kinds = {type(v) for v in self.values}
        for v in self.values:
            _check_match_value(self.key, v)
        if not (kinds <= {str} or kinds <= {int}):
            raise InvalidFilterError(
                f"filter on {self.key!r}: values {self.values!r} mix types; MatchAny takes all str or all int"
            )
        object.__setattr__(self, "values", tuple(self.values))


@dataclass(frozen=True)
class Range:
    """The numeric payload field lies within the given bounds (any subset of gt/gte/lt/lte)."""

    key: str
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    def __post_init__(self) -> None:
        _check_key(self.key)
        bounds = {"gt": self.gt, "gte": self.gte, "lt": self.lt, "lte": self.lte}
        given = {k: v for k, v in bounds.items() if v is not None}
        if not given:
            raise InvalidFilterError(f"range on {self.key!r} has no bounds; give gt, gte, lt or lte")
        for k, v in given.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InvalidFilterError(f"range on {self.key!r}: {k}={v!r} must be a finite number")


@dataclass(frozen=True)
class HasItemId:
    """The item's id is one of `item_ids`."""

    item_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if isinstance(self.item_ids, str) or not isinstance(self.item_ids, Sequence) or not self.item_ids:
            raise InvalidFilterError(f"HasItemId takes a non-empty sequence of item ids, got {self.item_ids!r}")
        object.__setattr__(self, "item_ids", tuple(self.item_ids))


Condition = Union[Match, MatchAny, Range, HasItemId, "Filter"]


@dataclass(frozen=True)
class Filter:
    """All of `must`, at least one of `should` (when given), none of `must_not`. Filters nest."""

    must: tuple[Condition, ...] = ()
    should: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()

    def __post_init__(self) -> None:
        for part in ("must", "should", "must_not"):
            conds = getattr(self, part)
            if isinstance(conds, (Match, MatchAny, Range, HasItemId, Filter)):
                conds = (conds,)
            conds = tuple(conds)
            for c in conds:
                if not isinstance(c, (Match, MatchAny, Range, HasItemId, Filter)):
                    raise InvalidFilterError(
                        f"filter {part} holds {c!r}; conditions are Match, MatchAny, Range, HasItemId or Filter"
                    )
            object.__setattr__(self, part, conds)
        if not (self.must or self.should or self.must_not):
            raise InvalidFilterError("empty filter; give at least one condition, or pass filter=None")


def where(**fields: MatchValue) -> Filter:
    """Shorthand for a filter of exact matches: `where(color="red", in_stock=True)`."""
    return Filter(must=tuple(Match(k, v) for k, v in fields.items()))


def check_filter(flt: object, what: str = "") -> Filter | None:
    """`flt` itself when it is a `Filter` or None: the check every call taking a filter makes first.

    Args:
        flt: the value given as a filter.
        what: what it filters, to start the message with (e.g. "prefetch on 'clip.image':").

    Raises:
        InvalidFilterError: anything else (a dict, a string...); the message names its type.
    """
    if flt is not None and not isinstance(flt, Filter):
        raise InvalidFilterError(
            f"{what + ' ' if what else ''}filter {flt!r:.200} is a {type(flt).__name__}; pass a "
            f"mmsearch.storage.Filter (or where(...)) or None"
        )
    return flt
