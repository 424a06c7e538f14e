"""`POST /search` (JSON or multipart, one query or a batch), `POST /recommend`, `GET /signals`."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import Discriminator, Tag, TypeAdapter, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from mmsearch.service.errors import ErrorResponse, RequestError
from mmsearch.service.models import BatchOut, BatchSearch, RecommendRequest, SearchOut, SearchQuery, SignalsOut
from mmsearch.service.service import Service, dumps

router = APIRouter()

# A body holding `queries` is a batch; anything else one query. The tags are in BODY_TAGS.
SearchBody = Annotated[
    Annotated[SearchQuery, Tag("single_query")] | Annotated[BatchSearch, Tag("query_batch")],
    Discriminator(lambda v: "query_batch" if isinstance(v, dict) and "queries" in v else "single_query"),
]
_BODY: TypeAdapter[SearchQuery | BatchSearch] = TypeAdapter(SearchBody)
_QUERY: TypeAdapter[SearchQuery] = TypeAdapter(SearchQuery)
_MULTIPART_PARTS = ("image", "query")
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": what}
    for code, what in (
        (400, "a body that is not JSON or multipart at all"),
        (401, "no API key, or not a valid one"),
        (403, "the key lacks the scope"),
        (404, "an unknown item or user"),
        (413, "the body is over the size limit"),
        (422, "a value the service refuses; the field is named"),
        (503, "the service is busy, or the store cannot be reached"),
        (504, "the query took longer than the timeout"),
    )
}

# The body of POST /search, declared by hand: the route reads JSON or multipart itself.
SEARCH_BODY_DOC: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [{"$ref": "#/components/schemas/SearchQuery"}, {"$ref": "#/components/schemas/BatchSearch"}]
            }
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "image": {"type": "string", "format": "binary", "description": "the query photo"},
                    "query": {
                        "type": "string",
                        "description": "the rest of the query: a SearchQuery as JSON, without image_url "
                        "or image_base64",
                    },
                },
                "additionalProperties": False,
            }
        },
    },
}


def service(request: Request) -> Service:
    found: Service = request.app.state.service
    return found


def _validated(adapter: TypeAdapter[Any], data: Any, loc: tuple[str, ...] = ("body",)) -> Any:
    try:
        return adapter.validate_python(data)
    except ValidationError as e:
        raise RequestValidationError([{**f, "loc": (*loc, *f["loc"])} for f in e.errors(include_url=False)]) from e


def _json(raw: bytes, field: str | None = None) -> Any:
    where = f"part {field!r}" if field else "the request body"
    if not raw.strip():
        raise RequestError(422, f"{where} is empty: send a query as JSON", field=field)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(422, f"{where} is not valid JSON: {e}", field=field) from e


async def _multipart(request: Request) -> tuple[SearchQuery, bytes | None]:
    try:
        form = await request.form(max_files=4, max_fields=4)
    except MultiPartException as e:
        raise RequestError(400, f"the multipart body cannot be read: {e.message}", type="BadRequest") from e
    except HTTPException as e:  # Starlette's own wording of a malformed multipart body
        raise RequestError(400, f"the multipart body cannot be read: {e.detail}", type="BadRequest") from e
    unknown = sorted(set(form) - set(_MULTIPART_PARTS))
    if unknown:
        raise RequestError(422, f"unknown part(s) {unknown}; the parts are 'image' and 'query'", field=unknown[0])
    query = form.get("query")
    if isinstance(query, UploadFile):
        text: bytes | str = await query.read()
    else:
        text = query or "{}"
    raw = text.encode() if isinstance(text, str) else text
    parsed: SearchQuery = _validated(_QUERY, _json(raw, "query"), ("query",))
    if parsed.image_url is not None or parsed.image_base64 is not None:
        raise RequestError(422, "a multipart query sends its photo as the 'image' part only", field="query")
    image = form.get("image")
    if image is None:
        return parsed, None
    data = await image.read() if isinstance(image, UploadFile) else image.encode()
    return parsed, data


@router.post(
    "/search",
    response_model=SearchOut | BatchOut,
    responses=ERRORS,
    openapi_extra={"requestBody": SEARCH_BODY_DOC},
    summary="Search by text, image, item and/or user; or several queries at once",
)
async def search(request: Request) -> Response:
    """One query (`SearchQuery`) or a batch (`{"queries": [...]}`, answered in order, each on its own).

    The photo comes as a multipart part `image` (with the rest of the query as JSON in the part
    `query`), as `image_base64`, or as `image_url` (when the server allows URLs).
    """
    svc = service(request)
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media == "multipart/form-data":
        query, upload = await _multipart(request)
        out = await svc.runner.run(svc.search, query, upload)
    elif media in ("application/json", ""):
        body = _validated(_BODY, _json(await request.body()))
        out = await svc.runner.run(svc.batch if isinstance(body, BatchSearch) else svc.search, body)
    else:
        raise RequestError(
            415, f"media type {media!r}: send application/json or multipart/form-data", type="UnsupportedMediaType"
        )
    return Response(dumps(out), media_type="application/json")


@router.post("/recommend", response_model=SearchOut, responses=ERRORS, summary="Items for a user")
async def recommend(body: RecommendRequest, request: Request) -> Response:
    """CF fused with the user's content profile (content only for a cold user); their items left out."""
    svc = service(request)
    return Response(dumps(await svc.runner.run(svc.recommend, body)), media_type="application/json")


@router.get("/signals", response_model=SignalsOut, responses=ERRORS, summary="The collection's signals")
async def signals(request: Request) -> Response:
    """Every signal a query can weigh, with its aliases (the names `weights` takes)."""
    return Response(dumps(service(request).signals()), media_type="application/json")


__all__ = ["ERRORS", "router", "service"]
