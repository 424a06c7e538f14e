"""The OpenAPI schema fuzzed with schemathesis, in process against the ASGI app: no request gets a 5xx.

Each operation gets a bounded number of generated requests (valid and invalid ones), derandomized
so a run is reproducible; every response must be a non-5xx that conforms to the schema the app
publishes (status codes, content types, bodies), and invalid requests must be refused.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed: pip install schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402 - after the importorskip
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from mmsearch.service import Service, ServiceSettings, create_app  # noqa: E402
from mmsearch.service.keys import KeyRing  # noqa: E402
from tests.service_support import workspace  # noqa: E402

EXAMPLES_PER_OPERATION = 40


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_clip_dir, minilm_dir):
    ws = workspace(tmp_path_factory, tiny_clip_dir, minilm_dir, "service-fuzz")
    with Service.open(ServiceSettings(config=ws / "mmsearch.toml", image_root=ws)) as svc:
        yield create_app(svc, keys=KeyRing())


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


# Every operation the app publishes (a test checks that this list is complete).
OPERATIONS = [
    ("POST", "/search"),
    ("POST", "/recommend"),
    ("GET", "/signals"),
    ("GET", "/items/{item_id}"),
    ("DELETE", "/items/{item_id}"),
    ("POST", "/items"),
    ("GET", "/images/{item_id}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
]


def test_every_operation_is_fuzzed(api_schema):
    published = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert published == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_request_gets_a_server_error(api_schema, method, path):
    operation = api_schema[path][method]
    seen: list[int] = []

    @given(case=operation.as_strategy())
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
        case.validate_response(response, excluded_checks=[positive_data_acceptance])

    check()
    assert seen  # hypothesis ran examples
