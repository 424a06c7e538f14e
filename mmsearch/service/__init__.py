"""`mmsearch serve`: the HTTP retrieval service, an ASGI app over one collection.

- `settings`: `ServiceSettings` and its `Limits` (pydantic); `defaults` the plain constants.
- `service`: `Service`, the open collection: store, models loaded once, `Searcher` and `Index`.
- `app`: `create_app`, the FastAPI app; `search_api`, `items_api`, `ops_api` its routes;
  `models` the request and response models; `page` the search page (`static/`).
- `keys` (API keys and scopes), `limits` (body size, concurrency, timeouts), `metrics`
  (Prometheus) and `errors` (every error as a JSON body naming the field): the middleware.
- `server`: `serve(settings)`, uvicorn with the exposure and worker checks.

Example:
    from fastapi.testclient import TestClient
    from mmsearch.service import Service, ServiceSettings, create_app

    with Service.open(ServiceSettings(config="mmsearch.toml")) as service:
        client = TestClient(create_app(service))
        print(client.post("/search", json={"text": "red ball", "limit": 3}).json())

Importing this package loads nothing heavy; each name imports its module on first use.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False

_LAZY = {
    "Service": "mmsearch.service.service",
    "ServiceSettings": "mmsearch.service.settings",
    "Limits": "mmsearch.service.settings",
    "create_app": "mmsearch.service.app",
    "serve": "mmsearch.service.server",
}

if TYPE_CHECKING:
    from mmsearch.service.app import create_app
    from mmsearch.service.server import serve
    from mmsearch.service.service import Service
    from mmsearch.service.settings import Limits, ServiceSettings

__all__ = ["WEB_STACK", "Limits", "Service", "ServiceSettings", "create_app", "require_web_stack", "serve"]


# The web stack the service runs on: import name -> pip package.
WEB_STACK = {
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "multipart": "python-multipart",
    "prometheus_client": "prometheus-client",
}


def require_web_stack() -> None:
    """Raise `DependencyError` naming the pip packages of the web stack that are missing."""
    import importlib.util

    from mmsearch.errors import DependencyError

    missing = [package for module, package in WEB_STACK.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise DependencyError(
            f"the HTTP service needs {', '.join(missing)}: pip install 'mmsearch[serve]' (or {' '.join(missing)})"
        )


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mmsearch.service' has no attribute {name!r}")
    if name not in ("ServiceSettings", "Limits"):
        require_web_stack()
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
