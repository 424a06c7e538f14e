"""The OpenAPI schema fuzzed with schemathesis, in process against the ASGI app: no request gets a 5xx.

Each operation gets a bounded number of generated requests, valid ones and invalid ones (each
schemathesis generation mode), derandomized so a run is reproducible; every response must be a
non-5xx that conforms to the schema the app publishes (status codes, content types, bodies), and
invalid requests must be refused with a 4xx.
"""

from __future__ import annotations

import copy

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed: pip install schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402 - after the importorskip
from schemathesis.generation.modes import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from mmsearch.service import Service, ServiceSettings, create_app  # noqa: E402
from mmsearch.service.keys import KeyRing  # noqa: E402
from tests.service_support import workspace  # noqa: E402

EXAMPLES_PER_OPERATION = 30


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_clip_dir, minilm_dir):
    ws = workspace(tmp_path_factory, tiny_clip_dir, minilm_dir, "service-fuzz")
    with Service.open(ServiceSettings(config=ws / "mmsearch.toml", image_root=ws)) as svc:
        yield create_app(svc, keys=KeyRing())


@pytest.fixture(scope="module")
def api_schema(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    bound_filter_nesting(schema.raw_schema)
    return schema


def bound_filter_nesting(raw: dict) -> None:
    """Let generated filters nest two levels deep, not without end.

    A filter is a condition of a filter, and schemathesis builds its strategies from a recursive
    schema recursively: past Python's stack limit now and then (hypothesis sets that limit itself,
    so raising it does not help), a RecursionError inside the tool that says nothing of the app.
    """
    schemas = raw["components"]["schemas"]
    nested = {"$ref": "#/components/schemas/FilterSpec"}
    leaf = copy.deepcopy(schemas["FilterSpec"])
    for part in leaf["properties"].values():
        part["items"]["oneOf"] = [c for c in part["items"]["oneOf"] if c != nested]
    schemas["FilterSpecLeaf"] = leaf
    for part in schemas["FilterSpec"]["properties"].values():
        options = part["items"]["oneOf"]
        assert nested in options, options  # the schema this bounds is still the recursive one
        options[options.index(nested)] = {"$ref": "#/components/schemas/FilterSpecLeaf"}


# Every operation the app publishes (a test checks that this list is complete), and whether it has
# inputs a request can get wrong (schemathesis cannot make an invalid request without one).
OPERATIONS = [
    ("POST", "/search", True),
    ("POST", "/recommend", True),
    ("GET", "/signals", False),
    ("GET", "/items/{item_id}", False),  # any string is an id: a missing one is a 404, tested
    ("DELETE", "/items/{item_id}", False),
    ("POST", "/items", True),
    ("GET", "/images/{item_id}", True),
    ("GET", "/healthz", False),
    ("GET", "/readyz", False),
    ("GET", "/metrics", False),
]
CASES = [(m, p, GenerationMode.POSITIVE) for m, p, _ in OPERATIONS] + [
    (m, p, GenerationMode.NEGATIVE) for m, p, invalid in OPERATIONS if invalid
]


def test_every_operation_is_fuzzed(api_schema):
    published = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert published == {(m, p) for m, p, _ in OPERATIONS}


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode}" for m, p, mode in CASES])
def test_no_request_gets_a_server_error(api_schema, method, path, mode):
    operation = api_schema[path][method]
    seen: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        response = case.call()
        seen.append(response.status_code)
        assert response.status_code < 500, (case.method, case.path, case.body, response.text)
        # Schema-valid requests may still be refused (422): an empty query, a weight for a signal
        # the collection lacks, a limit over the server's cap are values no JSON schema can tell.
        # Invalid ones must be refused (negative_data_rejection, one of the checks kept).
        case.validate_response(response, excluded_checks=[positive_data_acceptance])

    check()
    assert seen  # hypothesis ran examples
    if mode == GenerationMode.NEGATIVE:
        assert all(400 <= status < 500 for status in seen), sorted(set(seen))
