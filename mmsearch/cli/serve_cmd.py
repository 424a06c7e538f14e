"""`mmsearch serve`: the HTTP retrieval service over one collection (`mmsearch.service`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from mmsearch.cli.options import option_group
from mmsearch.cli.store_options import store_options
from mmsearch.service import defaults as D

if TYPE_CHECKING:
    from mmsearch.service.settings import ServiceSettings

# Options left at None take the library's value (`ServiceSettings`, `Limits`, `SearchSettings`).
_LIMITS = (
    "max_body_bytes",
    "max_image_pixels",
    "max_batch",
    "max_limit",
    "max_items",
    "timeout_s",
    "concurrency",
    "queue",
)

_SERVE_OPTIONS = option_group(
    click.option("--host", default=D.DEFAULT_HOST, show_default=True, help="Address to listen on."),
    click.option("--port", type=int, default=D.DEFAULT_PORT, show_default=True, help="Port to listen on."),
    click.option(
        "--workers",
        type=int,
        default=D.DEFAULT_WORKERS,
        show_default=True,
        help="Server processes; more than 1 needs the Qdrant server backend (Edge is one process, many threads).",
    ),
    click.option(
        "--api-keys-file",
        "keys_file",
        type=click.Path(dir_okay=False),
        default=None,
        envvar=D.KEYS_FILE_ENV,
        help=f"API keys, one 'read:KEY' or 'write:KEY' per line (also from {D.KEYS_ENV}). [env: {D.KEYS_FILE_ENV}]",
    ),
    click.option(
        "--insecure", is_flag=True, help="Serve on a non-loopback address without API keys (refused otherwise)."
    ),
    click.option(
        "--image-root",
        type=click.Path(file_okay=False),
        default=".",
        show_default=True,
        help="Folder that relative image paths (result photos, POST /items records) are resolved in.",
    ),
    click.option("--allow-urls", is_flag=True, help="Let queries and records name http(s) image URLs to fetch."),
    click.option(
        "--max-body-bytes", type=int, default=D.DEFAULT_MAX_BODY_BYTES, show_default=True, help="Request body cap."
    ),
    click.option(
        "--max-image-pixels",
        type=int,
        default=None,
        help="Query photo pixel cap [default: the config's [index] max_pixels, 64 MP].",
    ),
    click.option("--max-batch", type=int, default=D.DEFAULT_MAX_BATCH, show_default=True, help="Queries per batch."),
    click.option("--max-limit", type=int, default=D.DEFAULT_MAX_LIMIT, show_default=True, help="Largest limit."),
    click.option("--max-items", type=int, default=D.DEFAULT_MAX_ITEMS, show_default=True, help="Records per POST."),
    click.option(
        "--timeout",
        "timeout_s",
        type=float,
        default=D.DEFAULT_TIMEOUT_S,
        show_default=True,
        help="Seconds a search may take (waiting for a slot included); 504 after.",
    ),
    click.option("--concurrency", type=int, default=None, help="Searches at once [default: 4 x cores, at least 8]."),
    click.option("--queue", type=int, default=D.DEFAULT_QUEUE, show_default=True, help="Searches waiting; 503 beyond."),
    click.option("--candidates", type=int, default=None, help="Nearest neighbours per signal [default: the engine's]."),
    click.option("--maxsim", is_flag=True, help="Score content signals on the best matching photo/text (MaxSim)."),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Where the encoders run."),
    click.option(
        "--threads", type=int, default=D.DEFAULT_THREADS, show_default=True, help="onnxruntime threads per session."
    ),
    click.option(
        "--log-level",
        type=click.Choice(["critical", "error", "warning", "info", "debug"]),
        default="info",
        show_default=True,
        help="Log level of the server and its access log.",
    ),
)


def service_settings(opts: Mapping[str, Any]) -> ServiceSettings:
    """The `ServiceSettings` of the command's options.

    Raises:
        ConfigError: a value the settings refuse (named).
    """
    from pathlib import Path

    from pydantic import ValidationError

    from mmsearch.errors import config_error
    from mmsearch.query.engine import SearchSettings
    from mmsearch.service.settings import Limits, ServiceSettings

    try:
        candidates = {"candidates": opts["candidates"]} if opts["candidates"] is not None else {}
        search = SearchSettings(maxsim=opts["maxsim"], **candidates)
        limits = Limits(allow_urls=opts["allow_urls"], **{k: opts[k] for k in _LIMITS if opts[k] is not None})
        return ServiceSettings(
            config=opts["config_path"],
            store_path=opts["store_path"],
            collection=opts["collection"],
            models=tuple(Path(m) for m in opts["models"]),
            cf_path=opts["cf_path"],
            host=opts["host"],
            port=opts["port"],
            workers=opts["workers"],
            insecure=opts["insecure"],
            keys_file=opts["keys_file"],
            image_root=opts["image_root"],
            device=opts["device"],
            threads=opts["threads"],
            search=search,
            limits=limits,
            log_level=opts["log_level"],
        )
    except ValidationError as e:
        raise config_error(e, "option") from e


@click.command()
@store_options
@_SERVE_OPTIONS
def serve(**opts: Any) -> None:
    """Serve a collection over HTTP: search, recommend, upsert and delete items, a search page at /.

    The models load once and the store opens once; requests run on many threads. Writes (POST
    /items, DELETE /items/ID) need a write key, the rest a read key, when keys are set in
    MMSEARCH_API_KEYS ('read:KEY1,write:KEY2') or --api-keys-file. A non-loopback --host needs
    keys (or --insecure). The API is described at /docs; Prometheus metrics are at /metrics.

    \b
    Example:
      mmsearch serve -c mmsearch.toml
      MMSEARCH_API_KEYS="read:$(openssl rand -hex 16),write:$(openssl rand -hex 16)" \\
        mmsearch serve -c mmsearch.toml --host 0.0.0.0 --port 8000
      curl -s localhost:8000/search -H 'Content-Type: application/json' -d '{"text": "red ball", "limit": 3}'
    """
    from mmsearch.service import require_web_stack

    require_web_stack()
    from mmsearch.service.server import serve as run

    run(service_settings(opts))


__all__ = ["serve", "service_settings"]
