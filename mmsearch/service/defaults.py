"""The service's defaults and environment variable names, as plain constants.

They live apart from the pydantic settings (`mmsearch.service.settings`) so that the command line
can show them in `mmsearch serve --help` without importing pydantic, numpy or the web stack.
"""

from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_WORKERS = 1
# A query photo sent as base64 grows by a third; 32 MiB leaves room for a 20 MB photo (the URL
# fetch cap) and a batch of queries, and bounds what one request can make the server hold.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_BATCH = 32
DEFAULT_MAX_LIMIT = 200
DEFAULT_MAX_ITEMS = 500
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_QUEUE = 64
# One onnxruntime thread per session: the service runs many queries at once, and one query is too
# small to split well (see `mmsearch.bench.query`).
DEFAULT_THREADS = 1

KEYS_ENV = "MMSEARCH_API_KEYS"
KEYS_FILE_ENV = "MMSEARCH_API_KEYS_FILE"
CONFIG_ENV = "MMSEARCH_CONFIG"
# How `mmsearch serve --workers N` hands its settings to each worker process (JSON; no keys in it).
SETTINGS_ENV = "MMSEARCH_SERVICE_SETTINGS"
