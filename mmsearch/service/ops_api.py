"""`/healthz` (the process answers), `/readyz` (models loaded, store reachable), `/metrics` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from mmsearch.service.models import HealthOut, ReadyOut
from mmsearch.service.search_api import ERRORS, service
from mmsearch.service.service import dumps

router = APIRouter()


@router.get("/healthz", response_model=HealthOut, summary="Alive")
async def healthz() -> Response:
    return Response(dumps({"status": "ok"}), media_type="application/json")


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}}, summary="Ready to serve")
async def readyz(request: Request) -> Response:
    """200 when the models are loaded and the store answers; 503 (with the reason) when it does not."""
    svc = service(request)
    state = await svc.runner.run(svc.ready)
    return Response(dumps(state), status_code=200 if state["status"] == "ready" else 503, media_type="application/json")


@router.get(
    "/metrics",
    response_class=Response,
    responses={**ERRORS, 200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
    summary="Prometheus metrics",
)
async def metrics(request: Request) -> Response:
    """Request counts and latency per endpoint, encoder and store time, pending queries, items."""
    svc = service(request)
    return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)


__all__ = ["router"]
