"""The HTTP API through FastAPI's TestClient: every endpoint, the library's answers, bad inputs, limits.

The service runs over the example catalog indexed with the tiny models (tests/service_support.py).
Every refused request must come back as a 4xx JSON error naming the field, never a 500.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mmsearch.errors import BackendError
from mmsearch.query.filters import parse_filters
from mmsearch.service import Service, ServiceSettings, create_app
from mmsearch.service.keys import KeyRing
from mmsearch.service.metrics import Metrics
from mmsearch.service.models import SearchOut, SearchQuery, UpsertOut
from tests.helpers import image_bytes
from tests.service_support import workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_clip_dir, minilm_dir):
    return workspace(tmp_path_factory, tiny_clip_dir, minilm_dir, "service-api")


@pytest.fixture(scope="module")
def service(ws):
    with Service.open(ServiceSettings(config=ws / "mmsearch.toml", image_root=ws)) as svc:
        yield svc


@pytest.fixture(scope="module")
def client(service):
    with TestClient(create_app(service, keys=KeyRing())) as c:
        yield c


def derived(service: Service, **limits) -> Service:
    """A service over the same store and models with other limits (closed with `runner.close()` only)."""
    settings = service.settings.model_copy(update={"limits": service.settings.limits.model_copy(update=limits)})
    return Service(settings, service.config, service.index, service.searcher, Metrics())


@pytest.fixture
def limited(service):
    made: list[Service] = []

    def make(**limits) -> TestClient:
        svc = derived(service, **limits)
        made.append(svc)
        return TestClient(create_app(svc, keys=KeyRing()))

    yield make
    for svc in made:
        svc.runner.close()


def photo_bytes(ws) -> bytes:
    return (ws / "photo.jpg").read_bytes()


def error_of(response, status: int, field: str | None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["status"] == status and error["message"]
    assert error["field"] == field, error
    if field is not None:
        assert field in [f["field"] for f in error["fields"]]
    return error


# ------------------------------------------------------------------ search


def test_text_search_answers_what_the_library_answers(service, client):
    body = {
        "text": "red ball",
        "user": "u1",
        "weights": {"clip_image": 0.4, "bert": 0.3, "cf": 0.3},
        "filter": ["price<20"],
        "limit": 5,
        "explain": True,
    }
    response = client.post("/search", json=body)
    assert response.status_code == 200, response.text
    got = SearchOut.model_validate(response.json())
    want = service.searcher.search(
        text="red ball",
        user="u1",
        weights=body["weights"],
        filter=parse_filters(["price<20"]),
        limit=5,
        explain=True,
    ).to_json()
    assert [r.id for r in got.results] == [r["id"] for r in want["results"]] and len(got.results) == 5
    assert [r.score for r in got.results] == pytest.approx([r["score"] for r in want["results"]])
    assert {s.name for s in got.signals} == {s["name"] for s in want["signals"]}
    first = got.results[0]
    assert set(first.signals) == {s.name for s in got.signals}
    assert sum(s.contribution for s in first.signals.values()) == pytest.approx(first.score, abs=1e-5)
    assert all(r.payload["price"] < 20 for r in got.results) and got.took_ms > 0


def test_a_photo_as_multipart_or_base64_ranks_as_the_library_does(service, client, ws):
    photo = photo_bytes(ws)
    want = [r.id for r in service.searcher.search(image=photo, limit=6)]
    upload = client.post("/search", files={"image": ("photo.jpg", photo, "image/jpeg")}, data={"query": '{"limit": 6}'})
    assert upload.status_code == 200, upload.text
    assert [r["id"] for r in upload.json()["results"]] == want
    inline = client.post("/search", json={"image_base64": base64.b64encode(photo).decode(), "limit": 6})
    assert [r["id"] for r in inline.json()["results"]] == want
    assert {s["name"] for s in inline.json()["signals"]} >= {"clip-tiny.image"}
    alone = client.post("/search", files={"image": ("photo.jpg", photo, "image/jpeg")})  # no query part
    assert alone.status_code == 200 and len(alone.json()["results"]) == 10  # the library's default limit


def test_item_search_leaves_the_item_out_and_exclude_seen_the_users_items(service, client):
    similar = client.post("/search", json={"item": "sku-001", "limit": 8}).json()
    assert "sku-001" not in [r["id"] for r in similar["results"]] and len(similar["results"]) == 8
    seen = set(service.searcher.cf_model.seen_items("u2"))
    mine = client.post("/search", json={"text": "notebook", "user": "u2", "exclude_seen": True, "limit": 30}).json()
    assert seen and not seen & {r["id"] for r in mine["results"]}


def test_recommend_fuses_cf_and_the_profile_and_leaves_seen_items_out(service, client):
    response = client.post("/recommend", json={"user": "u3", "limit": 6, "explain": True})
    assert response.status_code == 200, response.text
    data = response.json()
    names = {s["name"] for s in data["signals"]}
    assert "cf" in names and any(n.startswith("profile:") for n in names)
    assert not set(service.searcher.cf_model.seen_items("u3")) & {r["id"] for r in data["results"]}
    assert [r["id"] for r in data["results"]] == service.searcher.recommend("u3", limit=6).ids


def test_recommend_for_a_history_is_the_librarys_answer(service, client):
    history = ["sku-003", "sku-008"]
    response = client.post("/recommend", json={"history": history, "limit": 5, "explain": True})
    assert response.status_code == 200, response.text
    data = response.json()
    ids = [r["id"] for r in data["results"]]
    assert ids and not set(history) & set(ids)
    assert ids == service.searcher.recommend(history=history, limit=5).ids
    assert all("user" in s["inputs"] for s in data["signals"] if s["name"].startswith("profile:"))
    searched = client.post("/search", json={"text": "ball", "history": history, "limit": 5})
    assert searched.status_code == 200, searched.text
    assert [r["id"] for r in searched.json()["results"]] == service.searcher.search(
        text="ball", history=history, limit=5
    ).ids
    nobody = client.post("/recommend", json={"limit": 5})
    assert nobody.status_code == 422 and "a user, a history or both" in nobody.text
    blank = client.post("/recommend", json={"history": [""]})
    assert blank.status_code == 422 and blank.json()["error"]["field"] == "history.0", blank.text


def test_filters_as_expressions_or_json_are_the_same_filter(client):
    expressions = client.post("/search", json={"text": "ball", "filter": ["color=red,blue", "price<9"], "limit": 40})
    as_json = client.post(
        "/search",
        json={
            "text": "ball",
            "limit": 40,
            "filter": {
                "must": [{"key": "color", "match": {"any": ["red", "blue"]}}, {"key": "price", "range": {"lt": 9}}]
            },
        },
    )
    ids = [r["id"] for r in expressions.json()["results"]]
    assert ids and ids == [r["id"] for r in as_json.json()["results"]]
    assert all(
        r["payload"]["color"] in ("red", "blue") and r["payload"]["price"] < 9 for r in as_json.json()["results"]
    )
    nested = client.post(
        "/search",
        json={
            "text": "ball",
            "limit": 40,
            "filter": {
                "must_not": [{"is_empty": {"key": "color"}}, {"must": [{"key": "color", "match": {"value": "red"}}]}]
            },
        },
    )
    left = nested.json()["results"]
    assert nested.status_code == 200 and left, nested.text
    assert all(r["payload"].get("color") not in (None, "red") for r in left)
    # Qdrant's has_id takes point ids, so the service refuses it as the library does (a 4xx naming it)
    refused = client.post("/search", json={"text": "ball", "filter": {"must_not": [{"has_id": ids[:1]}]}})
    assert refused.status_code == 422 and refused.json()["error"]["field"].startswith("filter"), refused.text


def test_a_batch_answers_each_query_on_its_own(client):
    response = client.post(
        "/search",
        json={"queries": [{"text": "mug", "limit": 2}, {"item": "sku-999"}, {"user": "u1", "weights": {"nope": 1}}]},
    )
    assert response.status_code == 200, response.text
    first, missing, weights = response.json()["responses"]
    assert len(first["results"]) == 2
    assert missing["error"]["status"] == 404 and missing["error"]["field"] == "queries.1.item"
    assert weights["error"]["status"] == 422 and weights["error"]["field"] == "queries.2.weights"
    assert "unknown signal 'nope'" in weights["error"]["message"] and "clip-tiny.image" in weights["error"]["message"]


def test_signals_lists_the_collection_signals_with_aliases(service, client):
    data = client.get("/signals").json()["signals"]
    assert [s["name"] for s in data] == [s.name for s in service.searcher.signals]
    by_name = {s["name"]: s for s in data}
    assert "clip_image" in by_name["clip-tiny.image"]["aliases"] and by_name["cf"]["kind"] == "cf"


def test_request_defaults_are_the_library_defaults():
    import inspect

    from mmsearch.query.engine import Searcher

    params = inspect.signature(Searcher.search).parameters
    query = SearchQuery()
    for name in ("limit", "fusion", "normalization", "explain", "exclude_seen"):
        assert getattr(query, name) == params[name].default


# ------------------------------------------------------------------ bad inputs: 4xx naming the field


BAD_QUERIES = [
    ({"text": "x", "limit": 0}, 422, "limit", "greater than or equal to 1"),
    ({"text": "x", "limit": "ten"}, 422, "limit", "valid integer"),
    ({"text": "x", "colour": "red"}, 422, "colour", "Extra inputs"),
    ({"text": "   "}, 422, "text", "empty"),
    ({"text": "x", "fusion": "max"}, 422, "fusion", "wsum"),
    ({"text": "x", "weights": {"clip_image": -1}}, 422, "weights", "negative"),
    ({"text": "x", "weights": {"clip_image": 0}}, 422, "weights", "all weights are 0"),
    ({"text": "x", "weights": {"cf": 1}}, 422, "weights", "gets no input"),
    ({"text": "x", "filter": ["price<cheap"]}, 422, "filter", "not a number"),
    ({"text": "x", "filter": ["price"]}, 422, "filter", "field=value"),
    ({"text": "x", "filter": {"must": []}}, 422, "filter", "empty filter"),
    ({"text": "x", "filter": {"must": [{"key": "c"}]}}, 422, "filter.must.0", "exactly one of 'match' or 'range'"),
    ({"text": "x", "filter": {"must": [{"key": "p", "range": {}}]}}, 422, "filter", "no bounds"),
    (
        {"text": "x", "filter": {"must": [{"key": "c", "match": {"value": {"nested": 1}}}]}},
        422,
        "filter.must.0.match.value",
        "valid string",
    ),
    ({"image_base64": "not base64!"}, 422, "image_base64", "not valid base64"),
    ({"image_base64": base64.b64encode(b"not an image").decode()}, 422, "image_base64", "not an image"),
    ({"image_url": "http://127.0.0.1:9/x.jpg"}, 422, "image_url", "--allow-urls"),
    ({"image_url": "http://x/a.jpg", "image_base64": "AAAA"}, 422, None, "not both"),
    ({"item": "sku-999"}, 404, "item", "not in collection"),
    ({"user": "nobody"}, 404, "user", "unknown"),
    ({}, 422, None, "empty query"),
    ({"queries": []}, 422, "queries", "at least 1"),
    ({"queries": [{"text": "x", "limit": -1}]}, 422, "queries.0.limit", "greater than or equal to 1"),
    ([1, 2], 422, None, "valid dictionary"),
]


@pytest.mark.parametrize(
    ("body", "status", "field", "needle"), BAD_QUERIES, ids=[str(i) for i in range(len(BAD_QUERIES))]
)
def test_a_bad_query_is_a_4xx_naming_the_field(client, body, status, field, needle):
    error = error_of(client.post("/search", json=body), status, field)
    assert needle in error["message"]


@pytest.mark.parametrize(
    ("kwargs", "status", "field", "needle"),
    [
        ({"content": b"{nope", "headers": {"content-type": "application/json"}}, 422, None, "not valid JSON"),
        ({"content": b"", "headers": {"content-type": "application/json"}}, 422, None, "empty"),
        ({"content": b"text=x", "headers": {"content-type": "text/plain"}}, 415, None, "media type"),
        (
            {"content": b"--e5\r\n-44--e5--\r\n", "headers": {"content-type": "multipart/form-data; boundary=e5"}},
            400,
            None,
            "multipart body cannot be read",
        ),
        ({"files": {"image": ("a.png", b"x")}, "data": {"query": "{nope"}}, 422, "query", "not valid JSON"),
        ({"files": {"image": ("a.png", b"x")}, "data": {"query": '{"limit": 0}'}}, 422, "limit", "greater than"),
        ({"files": {"photo": ("a.png", b"x")}}, 422, "photo", "unknown part"),
        (
            {"files": {"image": ("a.png", b"x")}, "data": {"query": '{"image_url": "http://x/y"}'}},
            422,
            "query",
            "'image' part",
        ),
        ({"files": {"image": ("a.png", b"")}}, 422, "image", "empty"),
        ({"files": {"image": ("a.png", b"GIF89a-not-really")}}, 422, "image", "not an image"),
    ],
)
def test_a_bad_body_is_a_4xx_never_a_500(client, kwargs, status, field, needle):
    error = error_of(client.post("/search", **kwargs), status, field)
    assert needle in error["message"]


def test_unknown_routes_and_methods_are_json_errors(client):
    assert error_of(client.get("/nope"), 404, None)["type"] == "HTTPException"
    assert "not allowed" in error_of(client.get("/search"), 405, None)["message"]
    assert error_of(client.post("/recommend", json={"user": ""}), 422, "user")


# ------------------------------------------------------------------ limits


def test_limit_over_the_cap_is_refused(limited):
    client = limited(max_limit=5)
    assert client.post("/search", json={"text": "ball", "limit": 5}).status_code == 200
    assert "--max-limit" in error_of(client.post("/search", json={"text": "ball", "limit": 6}), 422, "limit")["message"]
    assert error_of(client.post("/recommend", json={"user": "u1", "limit": 6}), 422, "limit")


def test_batch_size_is_capped(limited):
    client = limited(max_batch=2)
    ok = client.post("/search", json={"queries": [{"text": "a"}, {"text": "b"}]})
    assert ok.status_code == 200 and len(ok.json()["responses"]) == 2
    error = error_of(client.post("/search", json={"queries": [{"text": "a"}] * 3}), 422, "queries")
    assert "--max-batch" in error["message"]


def test_image_pixels_are_capped_before_decoding(limited, ws):
    client = limited(max_image_pixels=64 * 48 - 1)
    photo = image_bytes(width=64, height=48)
    error = error_of(client.post("/search", files={"image": ("p.png", photo, "image/png")}), 422, "image")
    assert "decompression-bomb" in error["message"] and "3,071" in error["message"]
    inline = client.post("/search", json={"image_base64": base64.b64encode(photo).decode()})
    assert error_of(inline, 422, "image_base64")
    small = limited(max_image_pixels=64 * 48)
    assert small.post("/search", files={"image": ("p.png", photo, "image/png")}).status_code == 200


def test_bodies_over_the_size_limit_get_413_before_they_are_read(limited):
    client = limited(max_body_bytes=4096)
    big = {"text": "x" * 5000}
    assert error_of(client.post("/search", json=big), 413, None)["type"] == "PayloadTooLarge"

    def chunks():  # no Content-Length: counted while reading
        for _ in range(10):
            yield b" " * 1000

    streamed = client.post("/search", content=chunks(), headers={"content-type": "application/json"})
    assert error_of(streamed, 413, None)
    assert client.post("/search", json={"text": "x" * 100}).status_code == 200


def test_a_query_over_the_timeout_gets_504(limited, service, monkeypatch):
    client = limited(timeout_s=0.2)
    real = service.searcher.search

    def slow(**kwargs):
        time.sleep(0.6)
        return real(**kwargs)

    monkeypatch.setattr(service.searcher, "search", slow)
    error = error_of(client.post("/search", json={"text": "ball"}), 504, None)
    assert error["type"] == "Timeout" and "0.2 s" in error["message"]


def test_a_full_queue_gets_503_with_retry_after(limited, service, monkeypatch):
    client = limited(concurrency=1, queue=0, timeout_s=10)
    release = threading.Event()
    started = threading.Event()
    real = service.searcher.search

    def blocked(**kwargs):
        started.set()
        release.wait(10)
        return real(**kwargs)

    monkeypatch.setattr(service.searcher, "search", blocked)
    first: dict = {}
    thread = threading.Thread(target=lambda: first.update(r=client.post("/search", json={"text": "ball"})))
    thread.start()
    assert started.wait(10)
    busy = client.post("/search", json={"text": "ball"})
    release.set()
    thread.join(10)
    assert error_of(busy, 503, None)["type"] == "Overloaded" and busy.headers["retry-after"] == "1"
    assert first["r"].status_code == 200


def test_the_runner_drops_a_query_still_waiting_at_its_deadline():
    import asyncio

    from mmsearch.service.limits import QueryRunner, QueryTimeoutError

    runner = QueryRunner(concurrency=1, queue=5, timeout_s=0.2)
    ran: list[str] = []
    gate = threading.Event()

    async def main() -> None:
        hold = asyncio.ensure_future(runner.run(lambda: gate.wait(2) and ran.append("first")))
        await asyncio.sleep(0.05)
        with pytest.raises(QueryTimeoutError):
            await runner.run(lambda: ran.append("second"))  # waits behind the first, past its deadline
        gate.set()
        with pytest.raises(QueryTimeoutError):
            await hold  # its own deadline passed too; it still finishes in its thread

    asyncio.run(main())
    runner.close()
    assert ran == ["first"] and runner.pending == 0


# ------------------------------------------------------------------ items


def test_upsert_indexes_like_mmsearch_index_and_reports_each_refused_record(client, service, ws):
    before = service.index.store.count()
    records = [
        {"id": "new-1", "title": "A violet reading lamp", "images": ["images/lamp-blue.png"], "price": 30.0},
        {"title": "no id"},
        {"id": "outside", "title": "x", "images": ["../../etc/passwd"]},
        {"id": "absolute", "title": "x", "images": ["/etc/hostname"]},
        {"id": "remote", "title": "x", "images": ["http://127.0.0.1:9/a.jpg"]},
        {"id": "missing", "title": "x", "images": ["images/none.png"]},
        {"id": "new-1", "title": "the same id again"},
        {"id": "new/2", "title": "An id with a slash"},
    ]
    response = client.post("/items", json={"items": records})
    assert response.status_code == 200, response.text
    out = UpsertOut.model_validate(response.json())
    assert (out.received, out.indexed, out.new, out.skipped) == (8, 2, 2, 6)
    assert [(e.line, e.id, e.kind) for e in out.errors] == [
        (2, None, "id"),
        (3, "outside", "image"),
        (4, "absolute", "image"),
        (5, "remote", "fetch"),
        (6, "missing", "image"),
        (7, "new-1", "duplicate"),
    ]
    assert "outside the server's image root" in out.errors[1].reason and "--allow-urls" in out.errors[3].reason
    assert out.stored == before + 2 == service.index.store.count()
    item = client.get("/items/new-1").json()
    assert item["payload"]["title"] == "A violet reading lamp" and "clip-tiny.image" in item["vectors"]
    assert client.get("/items/new/2").json()["id"] == "new/2"
    again = client.post("/items", json={"items": records[:1]}).json()
    assert (again["unchanged"], again["indexed"]) == (1, 0)
    found = client.post("/search", json={"text": "A violet reading lamp", "weights": {"bert": 1}, "limit": 1}).json()
    assert [r["id"] for r in found["results"]] == ["new-1"]
    assert client.delete("/items/new-1").json() == {"id": "new-1", "deleted": True}
    assert client.delete("/items/new/2").status_code == 200
    assert error_of(client.delete("/items/new-1"), 404, "item_id")
    assert error_of(client.get("/items/new-1"), 404, "item_id")
    assert service.index.store.count() == before


def test_upsert_limits_and_bad_bodies(limited, client):
    small = limited(max_items=2)
    error = error_of(
        small.post("/items", json={"items": [{"id": str(i), "title": "t"} for i in range(3)]}), 422, "items"
    )
    assert "--max-items" in error["message"]
    assert error_of(client.post("/items", json={"items": []}), 422, "items")
    assert error_of(client.post("/items", json={"records": []}), 422, "items")
    assert error_of(client.post("/items", json={"items": [1]}), 422, "items.0")


def test_get_item_returns_the_payload_and_vector_names(client):
    data = client.get("/items/sku-001").json()
    assert data["payload"]["title"] == "Red ball" and data["payload"]["images"] == ["images/ball-red.png"]
    assert {"clip-tiny.image", "clip-tiny.text", "cf"} <= set(data["vectors"])


def test_thumbnails_of_local_photos(client):
    response = client.get("/images/sku-002", params={"n": 1, "px": 64})
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "JPEG" and max(image.size) == 64
    assert error_of(client.get("/images/sku-002", params={"n": 2}), 404, "n")
    assert error_of(client.get("/images/sku-037"), 404, "n")  # a gift card: no photo
    assert error_of(client.get("/images/sku-999"), 404, "item_id")
    assert error_of(client.get("/images/sku-002", params={"px": 5}), 422, "px")


# ------------------------------------------------------------------ operations


def test_health_readiness_and_metrics(client, service, monkeypatch):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["items"] == service.index.store.count() and ready["cf"] is True
    assert ready["models"] == sorted(service.searcher.models)
    client.post("/search", json={"text": "a red mug", "limit": 3})
    client.get("/items/sku-003")
    text = client.get("/metrics").text
    assert 'mmsearch_http_requests_total{method="POST",route="/search",status="200"}' in text
    assert 'route="/items/{item_id:path}"' in text and "sku-003" not in text
    assert 'mmsearch_encoder_duration_seconds_count{modality="text",model="clip-tiny"}' in text
    assert 'mmsearch_store_duration_seconds_count{operation="query"}' in text
    assert f"mmsearch_collection_items {float(service.index.store.count())}" in text

    def down(*args, **kwargs):
        raise BackendError("qdrant count failed: connection refused")

    monkeypatch.setattr(service.index.store, "count", down)
    unready = client.get("/readyz")
    assert unready.status_code == 503 and "connection refused" in unready.json()["reason"]


def test_a_bug_is_a_500_without_a_traceback(service, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service.searcher, "search", broken)
    with TestClient(create_app(service, keys=KeyRing()), raise_server_exceptions=False) as client:
        response = client.post("/search", json={"text": "ball"})
    error = error_of(response, 500, None)
    assert error["type"] == "InternalError" and "secret" not in response.text and "Traceback" not in response.text
    assert "secret internals" in caplog.text  # logged on the server


def test_every_library_error_has_a_status():
    import mmsearch.errors as errors
    from mmsearch.service.errors import status_of

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    request_errors = {
        errors.InputError: 422,
        errors.ConfigError: 422,
        errors.NotFoundError: 404,
        errors.ItemNotFoundError: 404,
        errors.InvalidFilterError: 422,
        errors.BackendError: 503,
        errors.UnknownNameError: 422,
    }
    for cls in subclasses(errors.MmsearchError):
        status = status_of(cls.__new__(cls))
        assert 400 <= status < 600, cls
        if cls in request_errors:
            assert status == request_errors[cls], cls


def test_the_openapi_schema_describes_both_search_bodies_and_the_bearer_scheme(client):
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/search"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    assert {"SearchQuery", "BatchSearch", "FilterSpec", "SearchOut", "ErrorResponse"} <= set(
        schema["components"]["schemas"]
    )
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert {"/recommend", "/items", "/items/{item_id}", "/signals", "/healthz", "/readyz", "/metrics"} <= set(
        schema["paths"]
    )
    assert client.get("/docs").status_code == 200


def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="text"' in page.text and "/static/app.js" in page.text and "http" not in page.text.split("<body>")[0]
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert error_of(client.get("/static/nope.js"), 404, None)
    assert json.loads(client.get("/readyz").text)["status"] == "ready"
