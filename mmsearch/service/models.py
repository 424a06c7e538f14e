"""The HTTP API's request and response models (pydantic): its contract, and its OpenAPI schema.

Request defaults are read off `Searcher.search` and `Searcher.recommend`, so the API and the
library cannot drift apart. A new engine input (a `history`, an `ease` signal) is one more field
on `SearchQuery` and one more argument in `mmsearch.service.service.search_arguments`.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from mmsearch.query.engine import FusionMethod, Searcher
from mmsearch.query.filter_json import FilterInput
from mmsearch.query.fusion import Normalization
from mmsearch.query.signals import SignalKind
from mmsearch.service.errors import ErrorBody

_SEARCH = inspect.signature(Searcher.search).parameters
_RECOMMEND = inspect.signature(Searcher.recommend).parameters


ItemId = Annotated[str, StringConstraints(min_length=1)]


def _default(params: Any, name: str) -> Any:
    return params[name].default


class QueryOptions(BaseModel):
    """What every query may set besides its inputs."""

    model_config = ConfigDict(extra="forbid")

    weights: dict[str, float] | None = Field(
        None,
        description="signal name or alias -> weight >= 0 (GET /signals lists them); only the signals named take "
        "part. Default: query content, user profile and CF share equally.",
        examples=[{"clip_image": 0.6, "bert": 0.4}],
    )
    fusion: FusionMethod = Field(_default(_SEARCH, "fusion"), description="wsum, rrf or dbsf")
    normalization: Normalization = Field(_default(_SEARCH, "normalization"), description="for wsum")
    filter: FilterInput | None = Field(
        None,
        description="payload filter: the command line's expressions (['color=red', 'price<20']) or Qdrant's "
        "JSON filter shape ({'must': [{'key': 'color', 'match': {'value': 'red'}}]})",
    )
    limit: int = Field(_default(_SEARCH, "limit"), ge=1, description="results wanted (at most the server's cap)")
    explain: bool = Field(_default(_SEARCH, "explain"), description="fill each result's per-signal breakdown")


class SearchQuery(QueryOptions):
    """One search: any combination of a text, an image, an item and a user."""

    text: str | None = Field(None, description="a query text, embedded by every text tower")
    image_url: str | None = Field(None, description="an http(s) image URL (only when the server allows URLs)")
    image_base64: str | None = Field(None, description="the image file's bytes, base64-encoded")
    item: str | None = Field(None, description="an item id: more like this item")
    user: str | None = Field(None, description="a user id: CF, EASE and the user's content profile")
    history: list[ItemId] | None = Field(
        None,
        description="item ids the user (or an anonymous session) interacted with: EASE and the content "
        "profile score them with no refit",
        examples=[["sku-003", "sku-008"]],
    )
    exclude_seen: bool = Field(
        _default(_SEARCH, "exclude_seen"), description="leave out the user's items (and the history's)"
    )

    @model_validator(mode="after")
    def _one_image(self) -> SearchQuery:
        if self.image_url is not None and self.image_base64 is not None:
            raise ValueError("give image_url or image_base64, not both")
        return self


class BatchSearch(BaseModel):
    """Several searches in one request, answered in order, each on its own."""

    model_config = ConfigDict(extra="forbid")

    queries: list[SearchQuery] = Field(min_length=1)


class RecommendRequest(QueryOptions):
    """Items for a user or a history: CF and EASE fused with the content profile (no CF when cold)."""

    user: str | None = Field(None, min_length=1, description="a user id")
    history: list[ItemId] | None = Field(
        None,
        description="item ids an anonymous session (or the user, beyond what the models saw) interacted with",
        examples=[["sku-003", "sku-008"]],
    )
    exclude_seen: bool = Field(
        _default(_RECOMMEND, "exclude_seen"), description="leave out the user's items (and the history's)"
    )

    @model_validator(mode="after")
    def _someone(self) -> RecommendRequest:
        if self.user is None and not self.history:
            raise ValueError("give a user, a history or both")
        return self


class SignalScoreOut(BaseModel):
    """One signal's part in one result's score (see `mmsearch.query.results.SignalScore`)."""

    raw: float | None
    normalized: float | None
    weight: float
    contribution: float


class HitOut(BaseModel):
    rank: int
    id: str
    score: float
    payload: dict[str, Any]
    signals: dict[str, SignalScoreOut] = Field(default_factory=dict)


class SignalUseOut(BaseModel):
    name: str
    vector: str
    weight: float
    inputs: list[str]


class SearchOut(BaseModel):
    """A ranked result list and how it was made (`mmsearch.query.results.SearchResponse.to_json`)."""

    fusion: str
    normalization: str | None
    engine: str
    candidates: int
    signals: list[SignalUseOut]
    notes: list[str]
    results: list[HitOut]
    took_ms: float


class QueryErrorOut(BaseModel):
    """A query of a batch that failed (see `mmsearch.service.errors.ErrorBody`)."""

    error: ErrorBody


class BatchOut(BaseModel):
    """One entry per query, in order: its results, or its error (the others are answered anyway)."""

    responses: list[SearchOut | QueryErrorOut]


class ItemsUpsert(BaseModel):
    """Catalog records, as `mmsearch index` reads them: `id`, `title`, `description`, `reviews`,
    `images` (paths under the server's image root, or http(s) URLs when it allows them), and any
    other field kept as payload."""

    model_config = ConfigDict(extra="forbid")

    items: list[dict[str, Any]] = Field(min_length=1, examples=[[{"id": "sku-900", "title": "A red lamp"}]])


class ItemErrorOut(BaseModel):
    """A record that was not written, as the indexing error log words it: its position in the
    request (`line`, from 1), id (when readable), kind and reason."""

    line: int | None
    id: str | None
    kind: str
    reason: str


class UpsertOut(BaseModel):
    """What `POST /items` did (`mmsearch.indexing.index.IndexSummary`), with the records refused."""

    received: int
    indexed: int
    new: int
    changed: int
    unchanged: int
    skipped: int
    failed: int
    errors: list[ItemErrorOut]
    stored: int
    seconds: float


class ItemOut(BaseModel):
    id: str
    payload: dict[str, Any]
    vectors: list[str] = Field(description="the stored vectors this item has")


class DeleteOut(BaseModel):
    id: str
    deleted: bool


class SignalOut(BaseModel):
    name: str
    kind: SignalKind
    vector: str
    model: str | None
    family: str | None
    modality: str | None
    distance: str
    aliases: list[str]


class SignalsOut(BaseModel):
    signals: list[SignalOut]


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready", "unavailable"]
    collection: str
    backend: str
    items: int | None
    models: list[str]
    cf: bool
    reason: str | None = None


__all__ = [
    "BatchOut",
    "BatchSearch",
    "DeleteOut",
    "HealthOut",
    "HitOut",
    "ItemErrorOut",
    "ItemOut",
    "ItemsUpsert",
    "QueryErrorOut",
    "QueryOptions",
    "ReadyOut",
    "RecommendRequest",
    "SearchOut",
    "SearchQuery",
    "SignalOut",
    "SignalsOut",
    "UpsertOut",
]
