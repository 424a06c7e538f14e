"""The search page at `/`: static HTML, CSS and JavaScript shipped in the package (`static/`).

No build step and no CDN: the files are served as they are, and the page calls the same API a
program does (`GET /signals`, `POST /search`, `POST /recommend`, `GET /images/...`), with the
API key the user types (kept in the browser's localStorage) when the server asks for one.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"

router = APIRouter()


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


def static_files() -> StaticFiles:
    """The page's files, mounted at `/static`."""
    return StaticFiles(directory=STATIC)


__all__ = ["STATIC", "router", "static_files"]
