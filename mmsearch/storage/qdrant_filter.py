"""Qdrant's own filters (a `qdrant_client.models.Filter`, or a dict in Qdrant's JSON form) as mmsearch `Filter`s.

The subset of Qdrant's filter language that mmsearch filters express the same on every backend:

    {"must": [...], "should": [...], "must_not": [...]}       a filter (each part a list or one condition)
    {"key": "color", "match": {"value": "red"}}              -> Match
    {"key": "color", "match": {"any": ["red", "blue"]}}      -> MatchAny
    {"key": "price", "range": {"gte": 5, "lt": 20}}          -> Range
    {"is_empty": {"key": "images"}}                          -> IsEmpty
    a nested {"must": ...} / {"should": ...} / {"must_not": ...}  -> a nested Filter

Anything else (`has_id`, which takes Qdrant point ids: use `HasItemId` with item ids; `match.except`,
`match.text`, geo, `values_count`, `nested`, `min_should`, datetime ranges...) is refused with an
`InvalidFilterError` naming it, never dropped.

qdrant_client is not imported: its models are pydantic models, read with `model_dump`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmsearch.errors import InvalidFilterError
from mmsearch.storage.filters import Condition, Filter, IsEmpty, Match, MatchAny, Range

_PARTS = ("must", "should", "must_not")
_RANGE_KEYS = {"gt", "gte", "lt", "lte"}
_SUPPORTED = "must/should/must_not, key + match.value, key + match.any, key + range, is_empty"


def is_qdrant_filter(obj: object) -> bool:
    """Whether `obj` is a dict or a qdrant_client model: something `from_qdrant` reads."""
    return isinstance(obj, Mapping) or (type(obj).__module__.startswith("qdrant_client") and hasattr(obj, "model_dump"))


def from_qdrant(obj: Any, what: str = "") -> Filter:
    """A Qdrant filter (a `qdrant_client.models.Filter` or a dict in Qdrant's JSON form) as a `Filter`.

    Args:
        obj: the Qdrant filter.
        what: what it filters, to start error messages with.

    Raises:
        InvalidFilterError: a part or condition mmsearch filters cannot express (named), or an
            empty filter.
    """
    data = obj if isinstance(obj, Mapping) else obj.model_dump(exclude_none=True, by_alias=True)
    try:
        return _filter(data)
    except InvalidFilterError as e:
        prefix = f"{what} " if what else ""
        raise InvalidFilterError(f"{prefix}Qdrant filter {data!r:.200}: {e}") from e


def _filter(data: Mapping[str, Any]) -> Filter:
    unknown = sorted(set(data) - set(_PARTS))
    if unknown:
        raise InvalidFilterError(f"unsupported filter part(s) {', '.join(unknown)}; supported: {_SUPPORTED}")
    parts: dict[str, tuple[Condition, ...]] = {}
    for part in _PARTS:
        given = data.get(part)
        if given is None:
            continue
        items = [given] if isinstance(given, Mapping) else list(given)
        parts[part] = tuple(_condition(c) for c in items)
    return Filter(**parts)


def _condition(c: Any) -> Condition:
    if not isinstance(c, Mapping):
        raise InvalidFilterError(f"condition {c!r:.100} is not an object")
    if set(c) & set(_PARTS):
        return _filter(c)
    if set(c) == {"is_empty"} and isinstance(c["is_empty"], Mapping) and set(c["is_empty"]) == {"key"}:
        return IsEmpty(c["is_empty"]["key"])
    if "key" in c:
        return _field_condition(c)
    raise InvalidFilterError(f"unsupported condition {c!r:.100}; supported: {_SUPPORTED}")


def _field_condition(c: Mapping[str, Any]) -> Condition:
    key, rest = c["key"], {k: v for k, v in c.items() if k != "key"}
    if set(rest) == {"match"} and isinstance(rest["match"], Mapping):
        match = rest["match"]
        if set(match) == {"value"}:
            return Match(key, match["value"])
        if set(match) == {"any"} and isinstance(match["any"], list):
            return MatchAny(key, tuple(match["any"]))
        raise InvalidFilterError(f"unsupported match {dict(match)!r:.100} on {key!r}; use value or any")
    if set(rest) == {"range"} and isinstance(rest["range"], Mapping) and set(rest["range"]) <= _RANGE_KEYS:
        return Range(key, **rest["range"])
    raise InvalidFilterError(f"unsupported condition on {key!r}: {sorted(rest)}; supported: {_SUPPORTED}")


__all__ = ["from_qdrant", "is_qdrant_filter"]
