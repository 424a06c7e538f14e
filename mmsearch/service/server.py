"""`serve(settings)`: check what would be exposed, then run the app under uvicorn.

- Keys are read (and malformed ones refused) before any model loads.
- A non-loopback address without API keys is refused unless `insecure` is set: a search
  service open to the network with writes enabled is rarely what anyone means.
- Qdrant Edge and local mode are one process (the folder is locked): one worker, many threads.
  With the server backend, `workers` processes each load the models and share the Qdrant server.
"""

from __future__ import annotations

import logging
import os

from mmsearch.errors import ConfigError
from mmsearch.service.defaults import KEYS_ENV, SETTINGS_ENV
from mmsearch.service.keys import KeyRing
from mmsearch.service.service import service_config
from mmsearch.service.settings import ServiceSettings

log = logging.getLogger(__name__)


def check_exposure(settings: ServiceSettings, keys: KeyRing) -> None:
    """Refuse a non-loopback address without API keys, unless `insecure`.

    Raises:
        ConfigError: `host` is reachable from other machines, no key is configured, and
            `insecure` is off.
    """
    if keys.enabled or settings.loopback:
        return
    if not settings.insecure:
        raise ConfigError(
            f"refusing to serve on {settings.host} (reachable from other machines) without API keys: set "
            f"{KEYS_ENV} (e.g. 'read:KEY1,write:KEY2') or --api-keys-file, or pass --insecure to serve "
            f"without authentication"
        )
    log.warning("serving on %s without API keys (--insecure): anyone who reaches it can read and write", settings.host)


def serve(settings: ServiceSettings) -> None:
    """Run the service until interrupted (Ctrl-C or SIGTERM close the store cleanly).

    Raises:
        ConfigError: a bad config or key, an exposure refused (see `check_exposure`), or several
            workers on a one-process backend.
        ModelError, StorageError: the models or the store cannot be opened.
    """
    import uvicorn

    from mmsearch.service.app import create_app

    keys = KeyRing.load(os.environ, settings.keys_file)
    check_exposure(settings, keys)
    service_config(settings)  # the config's errors (and the workers check) before uvicorn starts
    log.info("mmsearch serve on http://%s:%d (%s)", settings.host, settings.port, keys.describe())
    if settings.workers == 1:
        app = create_app(settings=settings, keys=keys)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)
        return
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    uvicorn.run(
        "mmsearch.service.app:app_from_env",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
    )


__all__ = ["check_exposure", "serve"]
