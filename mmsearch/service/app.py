"""`create_app`: the FastAPI app over one `Service`, with its middleware, error handlers and routes.

Middleware, outermost first: metrics (every request counted and timed), auth (the key's scope),
body size (413 before a body is read whole); then the routes. OpenAPI is at `/openapi.json`,
the interactive docs at `/docs`, the search page at `/`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from mmsearch.service import items_api, ops_api, page, search_api
from mmsearch.service.auth import DOCS_STATIC, AuthMiddleware
from mmsearch.service.defaults import SETTINGS_ENV
from mmsearch.service.errors import install_handlers
from mmsearch.service.keys import KeyRing
from mmsearch.service.limits import BodyLimit
from mmsearch.service.metrics import Metrics, MetricsMiddleware
from mmsearch.service.models import BatchSearch, SearchQuery
from mmsearch.service.service import Service
from mmsearch.service.settings import ServiceSettings
from mmsearch.version import __version__

DESCRIPTION = """Multimodal search and recommendation over one mmsearch collection.

Send `Authorization: Bearer <key>` when the server has API keys: a read key for searches and
look-ups, a write key for `POST /items` and `DELETE /items/{id}`. Every error is
`{"error": {"status", "type", "message", "field", "fields"}}`.
"""


def create_app(
    service: Service | None = None, settings: ServiceSettings | None = None, keys: KeyRing | None = None
) -> FastAPI:
    """The ASGI app.

    Args:
        service: an open service to serve; it stays open when the app shuts down (its owner
            closes it). None: the app opens one from `settings` at start-up and closes it at
            shutdown (how `mmsearch serve` runs it).
        settings: the settings when no `service` is given (else the service's own are used).
        keys: the API keys; None reads them from the environment and the settings' keys file.

    Raises:
        ConfigError: neither a service nor settings, or a malformed API key.
    """
    from mmsearch.errors import ConfigError

    s = service.settings if service is not None else settings
    if s is None:
        raise ConfigError("create_app needs an open Service or the ServiceSettings to open one")
    keys = keys if keys is not None else KeyRing.load(os.environ, s.keys_file)
    metrics = service.metrics if service is not None else Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service is not None:
            app.state.service = service
            yield
            return
        opened = Service.open(s, metrics)
        app.state.service = opened
        logging.getLogger("uvicorn.error").info("mmsearch: %s; %s", opened.describe(), keys.describe())
        try:
            yield
        finally:
            opened.close()

    app = _fastapi(title="mmsearch", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    if service is not None:
        app.state.service = service  # also without the lifespan (a TestClient used without `with`)
    install_handlers(app)
    for module in (search_api, items_api, ops_api, page):
        app.include_router(module.router)
    app.mount("/static", page.static_files(), name="static")
    app.add_middleware(BodyLimit, max_bytes=s.limits.max_body_bytes)
    app.add_middleware(AuthMiddleware, keys=keys)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _fastapi(**kwargs: Any) -> FastAPI:
    """A FastAPI app whose `/docs` and `/redoc` pages load their scripts from this server when the
    `fastapi-offline` package is installed (an offline machine then still has its docs), else from
    FastAPI's CDN."""
    try:
        from fastapi_offline import FastAPIOffline
    except ImportError:
        return FastAPI(**kwargs)
    return FastAPIOffline(static_url=DOCS_STATIC, **kwargs)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, plus the hand-declared body of `POST /search` and the bearer scheme."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    _, body = models_json_schema(
        [(SearchQuery, "validation"), (BatchSearch, "validation")], ref_template="#/components/schemas/{model}"
    )
    for name, definition in body.get("$defs", {}).items():
        components.setdefault("schemas", {}).setdefault(name, definition)
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    schema["security"] = [{"bearer": []}, {}]
    app.openapi_schema = schema
    return schema


def app_from_env() -> FastAPI:
    """The app of one `mmsearch serve --workers N` worker: the settings come as JSON in `MMSEARCH_SERVICE_SETTINGS`."""
    from mmsearch.errors import ConfigError

    raw = os.environ.get(SETTINGS_ENV)
    if not raw:
        raise ConfigError(f"{SETTINGS_ENV} is not set: start workers with `mmsearch serve --workers N`")
    return create_app(settings=ServiceSettings.model_validate(json.loads(raw)))


__all__ = ["app_from_env", "create_app"]
