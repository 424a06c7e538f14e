"""`GET /items/{id}`, `POST /items` (upsert catalog records), `DELETE /items/{id}`, `GET /images/{id}` (thumbnails)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from mmsearch.query.report import THUMB_PX
from mmsearch.service.models import DeleteOut, ItemOut, ItemsUpsert, UpsertOut
from mmsearch.service.search_api import ERRORS, service
from mmsearch.service.service import dumps

router = APIRouter()


@router.get("/items/{item_id:path}", response_model=ItemOut, responses=ERRORS, summary="One item")
async def get_item(item_id: str, request: Request) -> Response:
    """The item's stored payload and the names of the vectors it has."""
    svc = service(request)
    return Response(dumps(await svc.runner.run(svc.get_item, item_id)), media_type="application/json")


@router.post("/items", response_model=UpsertOut, responses=ERRORS, summary="Add or replace items (write key)")
async def upsert_items(body: ItemsUpsert, request: Request) -> Response:
    """Embed and write catalog records as `mmsearch index` does: unchanged ones are skipped, bad ones
    come back in `errors` (the others are written). Writes run one at a time."""
    svc = service(request)
    return Response(dumps(await svc.runner.write(svc.upsert, body.items)), media_type="application/json")


@router.delete(
    "/items/{item_id:path}", response_model=DeleteOut, responses=ERRORS, summary="Delete an item (write key)"
)
async def delete_item(item_id: str, request: Request) -> Response:
    svc = service(request)
    return Response(dumps(await svc.runner.write(svc.delete, item_id)), media_type="application/json")


@router.get(
    "/images/{item_id:path}",
    responses={**ERRORS, 200: {"content": {"image/jpeg": {}}, "description": "a JPEG thumbnail"}, 307: {}},
    response_class=Response,
    summary="A thumbnail of an item's photo",
)
async def image(
    item_id: str,
    request: Request,
    n: int = Query(0, ge=0, description="which of the item's images, from 0"),
    px: int = Query(THUMB_PX, ge=16, le=1024, description="the thumbnail's longest side"),
) -> Response:
    """A JPEG thumbnail of a local photo (under the server's image root); a remote photo redirects to its URL."""
    svc = service(request)
    found = await svc.runner.run(svc.thumbnail, item_id, n, px)
    if isinstance(found, str):
        return RedirectResponse(found, status_code=307)
    return Response(found, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


__all__ = ["router"]
