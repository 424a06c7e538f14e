"""Payload filters written as short expressions, as the command line takes them.

    color=red            exact match (numbers and true/false are typed: rank=3, price=5.4, in_stock=true)
    color=red,blue       any of several values
    color!=red           not equal (also with several values)
    price<20  price<=20  price>5  price>=5   numeric ranges

    {"should": [...]}    a filter in Qdrant's JSON form (for `should`, nesting, `is_empty`)

Several expressions must all hold. A value that must stay text although it looks like a number is
quoted: `sku="0042"`. A JSON filter is read by the library's one reader of Qdrant's filter shape
(`mmsearch.storage.qdrant_filter.from_qdrant`), as a dict given to `Searcher.search` is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from mmsearch.errors import InvalidFilterError
from mmsearch.storage import Filter, Match, MatchAny, Range
from mmsearch.storage.qdrant_filter import from_qdrant

_EXPR = re.compile(r"^\s*([A-Za-z_][\w.\-\[\]]*)\s*(<=|>=|!=|=|<|>)\s*(.*?)\s*$")
_INT = re.compile(r"^-?(0|[1-9][0-9]{0,17})$")
_FLOAT = re.compile(r"^-?(0|[1-9][0-9]*)\.[0-9]+$")
_RANGE_OPS = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


def _value(text: str, expr: str) -> str | int | float | bool:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if not text:
        raise InvalidFilterError(f"filter {expr!r} has no value after the operator")
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parse_filter_expr(expr: str) -> tuple[str, Match | MatchAny | Range]:
    """One expression: `must` or `must_not`, and its condition.

    Raises:
        InvalidFilterError: not `field<op>value`, or a range bound that is not a number.
    """
    m = _EXPR.match(expr) if isinstance(expr, str) else None
    if m is None:
        raise InvalidFilterError(
            f"filter {expr!r} is not field=value, field!=value, a range like price<20 (ops: = != < <= > >=) "
            'or a JSON filter in Qdrant\'s form ({"must": [...]})'
        )
    key, op, raw = m.groups()
    if op in _RANGE_OPS:
        try:
            bound = float(raw)
        except ValueError as e:
            raise InvalidFilterError(f"filter {expr!r}: {raw!r} is not a number; ranges take numbers") from e
        return "must", Range(key, **{_RANGE_OPS[op]: bound})
    parts = [p.strip() for p in raw.split(",")] if "," in raw and raw[:1] not in "\"'" else [raw]
    values = [_value(p, expr) for p in parts]
    cond: Match | MatchAny = Match(key, values[0]) if len(values) == 1 else MatchAny(key, tuple(values))
    return ("must_not" if op == "!=" else "must"), cond


def parse_filters(exprs: Iterable[str]) -> Filter | None:
    """All expressions combined (they must all hold); None when there are none.

    Raises:
        InvalidFilterError: a malformed expression (named in the message).
    """
    must: list[Match | MatchAny | Range | Filter] = []
    must_not: list[Match | MatchAny | Range] = []
    for expr in exprs:
        if isinstance(expr, str) and expr.lstrip().startswith("{"):
            must.append(_json_filter(expr))
            continue
        part, cond = parse_filter_expr(expr)
        (must if part == "must" else must_not).append(cond)
    if len(must) == 1 and isinstance(must[0], Filter) and not must_not:
        return must[0]
    if not must and not must_not:
        return None
    return Filter(must=tuple(must), must_not=tuple(must_not))


def _json_filter(expr: str) -> Filter:
    try:
        data = json.loads(expr)
    except json.JSONDecodeError as e:
        raise InvalidFilterError(f"filter {expr!r:.200} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise InvalidFilterError(f'filter {expr!r:.200} is JSON but not an object like {{"must": [...]}}')
    return from_qdrant(data)


__all__ = ["parse_filter_expr", "parse_filters"]
