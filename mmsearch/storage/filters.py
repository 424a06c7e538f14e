"""Backend-neutral payload filters; `mmsearch.storage.translate` turns them into each engine's types.

Every documented payload type filters the same on every backend: strings, integers and booleans
match exactly (`Match`, `MatchAny`), floats match exactly too (sent as a closed range: Qdrant has no
float equality) or by `Range`; `IsEmpty` holds when a field is missing, null or `[]`.

Qdrant's own filters are accepted wherever a `Filter` is: a `qdrant_client.models.Filter` or a
plain dict in Qdrant's JSON filter form (`{"must": [{"key": "color", "match": {"value": "red"}}]}`)
is converted by `check_filter` (`mmsearch.storage.qdrant_filter`), which names anything it cannot
express.

Example:
    Filter(must=(Match("color", "red"), Range("price", lte=20)), must_not=(HasItemId(("sku-1",)),))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

from mmsearch.errors import InvalidFilterError

MatchValue = str | int | bool | float


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidFilterError(f"filter key {key!r} must be a non-empty payload field name")


def _check_match_value(key: str, value: object) -> None:
    if not isinstance(value, (str, int, bool, float)):
        raise InvalidFilterError(
            f"filter on {key!r}: value {value!r} is a {type(value).__name__}; exact matches take str, int, "
            f"float or bool"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidFilterError(f"filter on {key!r}: value {value!r} must be a finite number")


def _value_kind(value: object) -> type:
    """bool, str or number: the kinds one `MatchAny` may not mix (an int and a float are both numbers)."""
    return bool if isinstance(value, bool) else str if isinstance(value, str) else float


@dataclass(frozen=True)
class Match:
    """The payload field equals `value` (or, for a list field, contains it).

    A float matches the stored number exactly (`Match("price", 5.4)`); ints match integers.
    """

    key: str
    value: MatchValue

    def __post_init__(self) -> None:
        _check_key(self.key)
        _check_match_value(self.key, self.value)


@dataclass(frozen=True)
class MatchAny:
    """The payload field equals one of `values` (all strings, all numbers or all booleans)."""

    key: str
    values: tuple[MatchValue, ...]

    def __post_init__(self) -> None:
        _check_key(self.key)
        if isinstance(self.values, (str, bytes)) or not isinstance(self.values, Sequence) or not self.values:
            raise InvalidFilterError(f"filter on {self.key!r}: values {self.values!r} must be a non-empty sequence")
        for v in self.values:
            _check_match_value(self.key, v)
        if len({_value_kind(v) for v in self.values}) > 1:
            raise InvalidFilterError(
                f"filter on {self.key!r}: values {self.values!r} mix types; MatchAny takes all strings, all "
                f"numbers or all booleans"
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


@dataclass(frozen=True)
class IsEmpty:
    """The payload field is missing, null or an empty list (negate it for "has a value")."""

    key: str

    def __post_init__(self) -> None:
        _check_key(self.key)


@dataclass(frozen=True)
class HoldsVector:
    """The item holds the stored vector `vector`: the store's own condition (`mmsearch.storage.maxsim`
    reads a multivector's rows where a point has them), not exported, as nothing checks the name."""

    vector: str

    def __post_init__(self) -> None:
        if not isinstance(self.vector, str) or not self.vector:
            raise InvalidFilterError(f"HoldsVector takes a stored vector name, got {self.vector!r}")


Condition = Union[Match, MatchAny, Range, HasItemId, IsEmpty, HoldsVector, "Filter"]
_CONDITIONS = (Match, MatchAny, Range, HasItemId, IsEmpty, HoldsVector)


@dataclass(frozen=True)
class Filter:
    """All of `must`, at least one of `should` (when given), none of `must_not`. Filters nest."""

    must: tuple[Condition, ...] = ()
    should: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()

    def __post_init__(self) -> None:
        for part in ("must", "should", "must_not"):
            conds = getattr(self, part)
            if isinstance(conds, (*_CONDITIONS, Filter)):
                conds = (conds,)
            conds = tuple(conds)
            for c in conds:
                if not isinstance(c, (*_CONDITIONS, Filter)):
                    raise InvalidFilterError(
                        f"filter {part} holds {c!r}; conditions are Match, MatchAny, Range, HasItemId, IsEmpty, "
                        f"HoldsVector or Filter"
                    )
            object.__setattr__(self, part, conds)
        if not (self.must or self.should or self.must_not):
            raise InvalidFilterError("empty filter; give at least one condition, or pass filter=None")


def where(**fields: MatchValue) -> Filter:
    """Shorthand for a filter of exact matches: `where(color="red", in_stock=True)`."""
    return Filter(must=tuple(Match(k, v) for k, v in fields.items()))


def payload_keys(flt: Filter | None) -> list[str]:
    """The payload fields a filter tests by value (`Match`, `MatchAny`, `Range`), nested filters included, in order."""
    keys: list[str] = []
    if flt is None:
        return keys
    for c in (*flt.must, *flt.should, *flt.must_not):
        if isinstance(c, Filter):
            keys += payload_keys(c)
        elif isinstance(c, (Match, MatchAny, Range)):
            keys.append(c.key)
    return list(dict.fromkeys(keys))


def check_filter(flt: object, what: str = "") -> Filter | None:
    """The filter every call taking one uses: a `Filter` or None as given, a Qdrant filter converted.

    Args:
        flt: the value given as a filter: a `Filter`, None, a `qdrant_client.models.Filter`, or a
            dict in Qdrant's JSON filter form.
        what: what it filters, to start the message with (e.g. "prefetch on 'clip.image':").

    Returns:
        The filter as a `Filter` (or None).

    Raises:
        InvalidFilterError: anything else (a string, a list...), naming its type; a Qdrant filter
            with a condition mmsearch cannot express, naming the condition.
    """
    if flt is None or isinstance(flt, Filter):
        return flt
    from mmsearch.storage.qdrant_filter import from_qdrant, is_qdrant_filter

    if is_qdrant_filter(flt):
        return from_qdrant(flt, what)
    raise InvalidFilterError(
        f"{what + ' ' if what else ''}filter {flt!r:.200} is a {type(flt).__name__}; pass a "
        f"mmsearch.storage.Filter (or where(...)), a qdrant_client.models.Filter, a dict in Qdrant's "
        f"filter form, or None"
    )
