"""Payload filters written as JSON, in Qdrant's own filter shape, for programs (the HTTP service).

    {"must": [{"key": "color", "match": {"value": "red"}},
              {"key": "color", "match": {"any": ["red", "blue"]}},
              {"key": "price", "range": {"gte": 5, "lt": 20}}],
     "must_not": [{"is_empty": {"key": "images"}}],
     "should": [{"must": [...]}]}

A condition is a field condition (`key` with `match` or `range`), `is_empty`, or a nested filter.
These models are the schema (what the OpenAPI document shows and a request is validated
against); the conversion is the library's one reader of Qdrant's filter shape,
`mmsearch.storage.qdrant_filter.from_qdrant` (what `check_filter` calls for a dict), so a dict
passed to `Searcher.search` and a request's JSON filter mean the same. `FilterInput` also takes
the command line's expressions as a list of strings (`["color=red", "price<20"]`, see
`mmsearch.query.filters`).
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

from mmsearch.query.filters import parse_filters
from mmsearch.storage import Filter
from mmsearch.storage.qdrant_filter import from_qdrant

Number = StrictInt | StrictFloat


class MatchSpec(BaseModel):
    """An exact match: `value` (the field equals it, or a list field holds it) or `any` of several."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: StrictStr | StrictInt | StrictFloat | StrictBool | None = None
    any: list[StrictStr] | list[StrictInt] | list[StrictFloat] | list[StrictBool] | None = Field(None, min_length=1)

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


class IsEmptyKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1)


class IsEmptyCondition(BaseModel):
    """The field is absent, null or an empty list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    is_empty: IsEmptyKey


# The tags of the two unions: pydantic puts them in an error's location, where they name no field.
UNION_TAGS = frozenset({"field_condition", "is_empty_condition", "nested_filter", "filter_expressions", "filter_json"})


def _condition_kind(value: Any) -> str:
    if isinstance(value, FieldCondition) or (isinstance(value, dict) and "key" in value):
        return "field_condition"
    if isinstance(value, IsEmptyCondition) or (isinstance(value, dict) and "is_empty" in value):
        return "is_empty_condition"
    return "nested_filter"


ConditionSpec = Annotated[
    Annotated[FieldCondition, Tag("field_condition")]
    | Annotated[IsEmptyCondition, Tag("is_empty_condition")]
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
            InvalidFilterError: an empty filter, or a condition the store refuses (e.g. a range
                without bounds, a bound that is not finite).
        """
        return from_qdrant(self.model_dump(exclude_none=True, exclude_defaults=True))


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
    "IsEmptyCondition",
    "MatchSpec",
    "RangeSpec",
    "UNION_TAGS",
    "filter_from_input",
]
