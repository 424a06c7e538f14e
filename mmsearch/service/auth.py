"""The auth middleware: which scope each request needs, and the 401/403 answers.

- public: the search page and its files, `/healthz`, `/readyz`, the API docs (`/docs`, `/redoc`,
  `/openapi.json` and the docs' scripts): they hold no data;
- `write`: `POST /items` and `DELETE /items/...`;
- `read`: everything else (search, recommend, items, signals, metrics), unknown paths included,
  so a typo'd path tells nothing to a client without a key.

With no keys configured every request passes (`mmsearch serve` allows that only on a loopback
address, or with `--insecure`).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from mmsearch.service.errors import ErrorBody, error_response
from mmsearch.service.keys import KeyRing
from mmsearch.service.keys import Scope as KeyScope

PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
DOCS_STATIC = "/docs-static"  # the API docs' own scripts (see `mmsearch.service.app`)
PUBLIC_PREFIXES = ("/static/", DOCS_STATIC + "/")
# (method, path or path prefix ending in "/") -> needs a write key.
WRITE_ROUTES = (("POST", "/items"), ("DELETE", "/items/"))
_CHALLENGE = 'Bearer realm="mmsearch"'


def required_scope(method: str, path: str) -> KeyScope | None:
    """The scope a request needs; None for public paths."""
    if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        return None
    for m, p in WRITE_ROUTES:
        if method == m and (path == p or (p.endswith("/") and path.startswith(p))):
            return "write"
    return "read"


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if kind.lower() == "bearer" and token.strip() else ""
    return None


class AuthMiddleware:
    """ASGI middleware: checks `Authorization: Bearer <key>` against the scope each request needs."""

    def __init__(self, app: ASGIApp, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        needed = required_scope(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if needed is None or not self.keys.enabled:
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        if token is None:
            body = ErrorBody(
                status=401,
                type="Unauthorized",
                message=f"this endpoint needs an API key with the {needed} scope: send Authorization: Bearer <key>",
            )
            await error_response(body, {"WWW-Authenticate": _CHALLENGE})(scope, receive, send)
            return
        key = self.keys.find(token)
        if key is None:
            body = ErrorBody(status=401, type="Unauthorized", message="the API key is not valid")
            challenge = _CHALLENGE + ', error="invalid_token"'
            await error_response(body, {"WWW-Authenticate": challenge})(scope, receive, send)
            return
        if not key.allows(needed):
            body = ErrorBody(
                status=403,
                type="Forbidden",
                message=f"this endpoint needs a {needed} key; the key given has the {key.scope} scope",
            )
            await error_response(body)(scope, receive, send)
            return
        await self.app(scope, receive, send)


__all__ = ["DOCS_STATIC", "PUBLIC_PATHS", "WRITE_ROUTES", "AuthMiddleware", "required_scope"]
