"""Every error a request can meet, as one JSON shape with one status, decided here and nowhere else.

    {"error": {"status": 422, "type": "ValidationError", "message": "limit: Input should be ...",
               "field": "limit", "fields": [{"field": "limit", "message": "..."}]}}

- a body that does not fit the request models: 422, each fault with its field (400 when it is
  not JSON or multipart at all, 415 for another media type);
- a library error (`MmsearchError`): the status of its class in `STATUS` (an unknown user or item
  404, a value it refuses 422, a store that cannot be reached 503), the field it concerns when known;
- the service's own refusals (`RequestError`: auth 401/403, body size 413, load 503, timeout 504);
- anything else is a bug: 500 with no detail in the body (the traceback goes to the log).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from mmsearch.errors import (
    BatchError,
    DependencyError,
    ExportError,
    ImageDecodeError,
    InvalidFilterError,
    ItemNotFoundError,
    MmsearchError,
    ModelError,
    NotFoundError,
    StorageError,
    TextInputError,
    UnknownNameError,
)
from mmsearch.query.filter_json import UNION_TAGS

log = logging.getLogger(__name__)

# Most specific first: the first class an error is an instance of gives its status.
STATUS: tuple[tuple[type[MmsearchError], int], ...] = (
    (NotFoundError, 404),  # an unknown user or item id (ItemNotFoundError included)
    (InvalidFilterError, 422),  # a StorageError, but the request's own fault
    (BatchError, 422),
    (StorageError, 503),  # the store failed or cannot be reached: worth a retry
    (ModelError, 500),  # the models were checked at start-up: this would be a bug
    (ExportError, 500),
    (DependencyError, 500),
    (MmsearchError, 422),  # InputError, ConfigError...: a value of the request
)

# The field a library error concerns when nothing more precise was said (see `blame`).
_FIELD_OF: tuple[tuple[type[MmsearchError], str], ...] = (
    (TextInputError, "text"),
    (ImageDecodeError, "image"),
    (ItemNotFoundError, "item"),
    (NotFoundError, "user"),
    (InvalidFilterError, "filter"),
)
_UNKNOWN_NAME_FIELD = {"signal": "weights", "fusion method": "fusion", "normalization": "normalization"}
_LOCATIONS = ("body", "query", "path", "header", "cookie")
# The tags of `search_api.SearchBody`'s union, which name no field either.
BODY_TAGS = frozenset({"single_query", "query_batch"})
# pydantic names a union's member in an error's location ('str', 'list[str]', 'function-after[...]').
_VALID = "Input should be a valid "
_UNION_MEMBER = re.compile(r"^(str|int|float|bool|none|[\w-]+\[.*\])$")


class FieldMessage(BaseModel):
    """One fault: the field (dotted path into the request, `queries.2.text`) and what is wrong."""

    field: str | None
    message: str


class ErrorBody(BaseModel):
    """What went wrong.

    Attributes:
        status: the HTTP status.
        type: the error's class (`ValidationError`, `NotFoundError`, `Unauthorized`...).
        message: one sentence naming the bad value and the valid choices.
        field: the request field at fault (the first one), when there is one.
        fields: every fault, with its field.
    """

    status: int
    type: str
    message: str
    field: str | None = None
    fields: list[FieldMessage] = []


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorBody


class RequestError(Exception):
    """A request the service itself refuses (not the library): auth, size, load, an unknown id.

    Args:
        status: the HTTP status.
        message: what is wrong.
        field: the request field at fault.
        type: the error's name in the body.
        headers: response headers (`WWW-Authenticate`, `Retry-After`).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        field: str | None = None,
        type: str = "ValidationError",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.type = status, message, field, type
        self.headers = dict(headers or {})


class BlamedError(Exception):
    """A library error raised while handling one field of the request (see `blame`)."""

    def __init__(self, error: MmsearchError, field: str) -> None:
        super().__init__(str(error))
        self.error, self.field = error, field


@contextlib.contextmanager
def blame(field: str) -> Iterator[None]:
    """Name `field` in the error response of any `MmsearchError` raised inside."""
    try:
        yield
    except MmsearchError as e:
        raise BlamedError(e, field) from e


def status_of(error: MmsearchError) -> int:
    """The HTTP status of a library error (`STATUS`)."""
    return next(status for cls, status in STATUS if isinstance(error, cls))


def field_of(error: MmsearchError) -> str | None:
    """The request field a library error concerns, when its class says."""
    if isinstance(error, UnknownNameError):
        return _UNKNOWN_NAME_FIELD.get(error.kind)
    return next((field for cls, field in _FIELD_OF if isinstance(error, cls)), None)


def describe(error: Exception, prefix: str = "") -> ErrorBody:
    """The error body of an exception a request raised; `prefix` goes before its field (`queries.2.`)."""
    if isinstance(error, BlamedError):
        return _library_body(error.error, error.field, prefix)
    if isinstance(error, MmsearchError):
        return _library_body(error, field_of(error), prefix)
    if isinstance(error, RequestError):
        field = prefix + error.field if error.field else None
        return ErrorBody(
            status=error.status,
            type=error.type,
            message=error.message,
            field=field,
            fields=[FieldMessage(field=field, message=error.message)] if field else [],
        )
    if isinstance(error, RequestValidationError):
        return validation_body(error.errors(), prefix)
    log.error("internal error", exc_info=error)
    return ErrorBody(status=500, type="InternalError", message="internal error: it is logged on the server")


def _library_body(error: MmsearchError, field: str | None, prefix: str) -> ErrorBody:
    named = prefix + field if field else None
    return ErrorBody(
        status=status_of(error),
        type=type(error).__name__,
        message=str(error),
        field=named,
        fields=[FieldMessage(field=named, message=str(error))] if named else [],
    )


def _field_path(loc: Sequence[Any]) -> str | None:
    parts = list(loc[1:] if loc and loc[0] in _LOCATIONS else loc)
    tags = UNION_TAGS | BODY_TAGS
    kept = [p for p in parts if not (isinstance(p, str) and (p in tags or _UNION_MEMBER.match(p)))]
    return ".".join(str(p) for p in kept) or None


def _merge(messages: Sequence[str], got: str) -> str:
    """One field's messages as one: the members of a union ("a valid string or integer") together."""
    kinds = [m.removeprefix(_VALID) for m in messages if m.startswith(_VALID)]
    if len(kinds) == len(messages) > 1:
        text = _VALID + ", ".join(kinds[:-1]) + " or " + kinds[-1]
    else:
        text = " or ".join(messages)
    return text + got


def validation_body(faults: Sequence[Any], prefix: str = "") -> ErrorBody:
    """A 422 body from pydantic's (or FastAPI's) validation faults, one message per field."""
    merged: dict[str | None, list[str]] = {}
    given: dict[str | None, str] = {}
    for fault in faults:
        path = _field_path(fault.get("loc", ()))
        field = prefix + path if path else (prefix.rstrip(".") or None)
        msg = str(fault.get("msg", "invalid")).removeprefix("Value error, ")
        if fault.get("type") not in ("missing", "value_error", "extra_forbidden") and "input" in fault:
            given.setdefault(field, f" (got {fault['input']!r:.80})")
        if msg not in merged.setdefault(field, []):
            merged[field].append(msg)
    fields = [FieldMessage(field=f, message=_merge(m, given.get(f, ""))) for f, m in merged.items()]
    message = "; ".join(f"{f.field}: {f.message}" if f.field else f.message for f in fields)
    first = next((f.field for f in fields if f.field), None)
    return ErrorBody(status=422, type="ValidationError", message=message, field=first, fields=fields)


def error_response(body: ErrorBody, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorResponse(error=body).model_dump(mode="json"), status_code=body.status, headers=headers)


def _http_body(exc: HTTPException, request: Request) -> ErrorBody:
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path} (the API is listed at /docs)"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path} (the API is listed at /docs)"
    else:
        message = str(exc.detail)
    return ErrorBody(status=exc.status_code, type=type(exc).__name__, message=message)


def install_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every exception into an `ErrorResponse`."""

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, HTTPException):  # registered for HTTPException only
            return error_response(describe(exc))
        return error_response(_http_body(exc, request), exc.headers)

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        headers = exc.headers if isinstance(exc, RequestError) else None
        return error_response(describe(exc), headers)

    app.add_exception_handler(HTTPException, on_http)
    for cls in (RequestValidationError, MmsearchError, BlamedError, RequestError, Exception):
        app.add_exception_handler(cls, on_error)


__all__ = [
    "STATUS",
    "BlamedError",
    "ErrorBody",
    "ErrorResponse",
    "FieldMessage",
    "RequestError",
    "blame",
    "describe",
    "error_response",
    "field_of",
    "install_handlers",
    "status_of",
    "validation_body",
]
