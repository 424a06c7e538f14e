"""Payload filters written as JSON, in Qdrant's own filter shape, for programs (the HTTP service).

    {"must": [{"key": "color", "match": {"value": "red"}},
              {"key": "color", "match": {"any": ["red", "blue"]}},
              {"key": "price", "range": {"gte": 5, "lt": 20}}],
     "must_not": [{"has_id": ["sku-001"]}],
     "should": [{"must": [...]}]}

A condition is a field condition (`key` with `match` or `range`), `has_id`, or a nested filter.
`FilterInput` also takes the command line's expressions as a list of strings (`["color=red",
"price<20"]`, see `mmsearch.query.filters`), so a request can use either language; both become
the same `mmsearch.storage.Filter`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    model_validator,
)

from mmsearch.errors import InvalidFilterError
from mmsearch.query.filters import parse_filters
from mmsearch.storage import Filter, HasItemId, Match, MatchAny, Range
from mmsearch.storage.filters import Condition

Number = StrictInt | StrictFloat


class MatchSpec(BaseModel):
    """An exact match: `value` (the field equals it, or a list field holds it) or `any` of several."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: StrictStr | StrictInt | StrictBool | None = None
    any: list[StrictStr] | list[StrictInt] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> MatchSpec:
        if (self.value is None) == (self.any is None):
            raise ValueError("a match takes exactly one of 'value' or 'any'")
        return self


class RangeSpec(BaseModel):
    """Numeric bounds: any of `gt`, `gte`, `lt`, `lte`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gt: Number | None = None
    gte: Number | None = None
    lt: Number | None = None
    lte: Number | None = None


class FieldCondition(BaseModel):
    """A condition on one payload field: `match` or `range`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1)
    match: MatchSpec | None = None
    range: RangeSpec | None = None

    @model_validator(mode="after")
    def _one(self) -> FieldCondition:
        if (self.match is None) == (self.range is None):
            raise ValueError(f"the condition on {self.key!r} takes exactly one of 'match' or 'range'")
        return self

    def condition(self) -> Match | MatchAny | Range:
        """The store's condition.

        Raises:
            InvalidFilterError: a range without bounds, or a bound that is not finite.
        """
        m = self.match
        if self.range is not None:
            return Range(self.key, **self.range.model_dump())
        if m is not None and m.any is not None:
            return MatchAny(self.key, tuple(m.any))
        if m is not None and m.value is not None:
            return Match(self.key, m.value)
        raise InvalidFilterError(f"the condition on {self.key!r} takes exactly one of 'match' or 'range'")


class HasIdCondition(BaseModel):
    """The item's id is one of these."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    has_id: list[StrictStr] = Field(min_length=1)


# The tags of the two unions: pydantic puts them in an error's location, where they name no field.
UNION_TAGS = frozenset({"field_condition", "has_id_condition", "nested_filter", "filter_expressions", "filter_json"})


def _condition_kind(value: Any) -> str:
    if isinstance(value, FieldCondition) or (isinstance(value, dict) and "key" in value):
        return "field_condition"
    if isinstance(value, HasIdCondition) or (isinstance(value, dict) and "has_id" in value):
        return "has_id_condition"
    return "nested_filter"


ConditionSpec = Annotated[
    Annotated[FieldCondition, Tag("field_condition")]
    | Annotated[HasIdCondition, Tag("has_id_condition")]
    | Annotated["FilterSpec", Tag("nested_filter")],
    Discriminator(_condition_kind),
]


class FilterSpec(BaseModel):
    """All of `must`, at least one of `should` (when given), none of `must_not`; filters nest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    must: list[ConditionSpec] = Field(default_factory=list)
    should: list[ConditionSpec] = Field(default_factory=list)
    must_not: list[ConditionSpec] = Field(default_factory=list)

    def to_filter(self) -> Filter:
        """The store's `Filter`.

        Raises:
            InvalidFilterError: an empty filter, or a condition the store refuses (e.g. a range on
                a non-finite bound).
        """
        return Filter(
            must=tuple(_condition(c) for c in self.must),
            should=tuple(_condition(c) for c in self.should),
            must_not=tuple(_condition(c) for c in self.must_not),
        )


def _condition(spec: FieldCondition | HasIdCondition | FilterSpec) -> Condition:
    if isinstance(spec, FieldCondition):
        return spec.condition()
    if isinstance(spec, HasIdCondition):
        return HasItemId(tuple(spec.has_id))
    return spec.to_filter()


FilterSpec.model_rebuild()


def _input_kind(value: Any) -> str:
    return "filter_expressions" if isinstance(value, (list, tuple)) else "filter_json"


FilterInput = Annotated[
    Annotated[list[StrictStr], Tag("filter_expressions")] | Annotated[FilterSpec, Tag("filter_json")],
    Discriminator(_input_kind),
]
"""A filter as the command line's expressions (a list of strings) or as a JSON `FilterSpec`."""


def filter_from_input(value: list[str] | FilterSpec | None) -> Filter | None:
    """The store's `Filter` for a `FilterInput`; None for None or an empty list of expressions.

    Raises:
        InvalidFilterError: a malformed expression or condition (named in the message).
    """
    if value is None:
        return None
    if isinstance(value, FilterSpec):
        return value.to_filter()
    return parse_filters(value)


__all__ = [
    "FieldCondition",
    "FilterInput",
    "FilterSpec",
    "HasIdCondition",
    "MatchSpec",
    "RangeSpec",
    "UNION_TAGS",
    "filter_from_input",
]
