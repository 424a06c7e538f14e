"""API keys and scopes: who may read (search, recommend, look items up) and who may write (upsert, delete).

Keys come from the `MMSEARCH_API_KEYS` environment variable and/or a file, as `scope:key`
entries: `read:...` or `write:...` (a write key may also read). In the variable they are
separated by commas or white space; in the file they are one per line, with `#` comments.

    MMSEARCH_API_KEYS="read:3q2-Xa9..., write:Zk1-pP0..."

A client sends `Authorization: Bearer <key>`. Only SHA-256 digests of the keys are kept; a key
given is hashed and compared with every digest in constant time (`hmac.compare_digest`, no early
exit), so neither the comparison nor the loop tells how close a guess was. Keys are never logged:
messages name a key by where it came from (`MMSEARCH_API_KEYS entry 2`, `keys.txt line 3`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mmsearch.errors import ConfigError
from mmsearch.service.defaults import KEYS_ENV

Scope = Literal["read", "write"]
SCOPES: tuple[Scope, ...] = ("read", "write")
MIN_KEY_CHARS = 16
_SEPARATORS = re.compile(r"[\s,]+")
_MAKE_ONE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


@dataclass(frozen=True)
class ApiKey:
    """One key, as a digest.

    Attributes:
        scope: `read` or `write` (which includes read).
        digest: SHA-256 of the key.
        source: where it was read (for messages; never the key itself).
    """

    scope: Scope
    digest: bytes
    source: str

    def allows(self, scope: Scope) -> bool:
        return self.scope == "write" or scope == "read"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def parse_key(entry: str, source: str) -> ApiKey:
    """One `scope:key` entry.

    Raises:
        ConfigError: no scope, an unknown scope, or a key under `MIN_KEY_CHARS` characters; the
            message names the entry by `source`, never by its key.
    """
    scope, sep, key = entry.partition(":")
    if not sep or scope not in SCOPES:
        shown = scope if sep and len(scope) <= 16 else "none"
        raise ConfigError(
            f"{source} must look like read:KEY or write:KEY (scope given: {shown}); make a key with {_MAKE_ONE}"
        )
    if len(key) < MIN_KEY_CHARS:
        raise ConfigError(
            f"{source}: the {scope} key has {len(key)} characters; use at least {MIN_KEY_CHARS}, e.g. {_MAKE_ONE}"
        )
    return ApiKey("write" if scope == "write" else "read", _digest(key), source)


class KeyRing:
    """The keys a service accepts; empty means no authentication.

    Args:
        keys: the accepted keys.
    """

    def __init__(self, keys: Sequence[ApiKey] = ()) -> None:
        self.keys = tuple(keys)

    @classmethod
    def load(cls, environ: Mapping[str, str], file: str | Path | None = None) -> KeyRing:
        """The keys of `environ[MMSEARCH_API_KEYS]` and of `file`.

        Raises:
            ConfigError: a malformed entry, or an unreadable file.
        """
        keys = [
            parse_key(entry, f"{KEYS_ENV} entry {n}")
            for n, entry in enumerate((e for e in _SEPARATORS.split(environ.get(KEYS_ENV, "")) if e), 1)
        ]
        if file is not None:
            path = Path(file)
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as e:
                raise ConfigError(f"cannot read the API keys file {str(path)!r}: {e.strerror or e}") from e
            for n, line in enumerate(lines, 1):
                text = line.split("#", 1)[0].strip()
                if text:
                    keys.append(parse_key(text, f"{path.name} line {n}"))
        return cls(keys)

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def find(self, token: str) -> ApiKey | None:
        """The key equal to `token`, compared in constant time against every key; None if none is."""
        given = _digest(token)
        found: ApiKey | None = None
        for key in self.keys:
            if hmac.compare_digest(given, key.digest):
                found = key
        return found

    def describe(self) -> str:
        """How many keys of each scope, for the start-up line."""
        if not self.keys:
            return "no API keys"
        counts = {s: sum(k.scope == s for k in self.keys) for s in SCOPES}
        return ", ".join(f"{n} {s} key{'s' if n != 1 else ''}" for s, n in counts.items() if n)


__all__ = ["MIN_KEY_CHARS", "SCOPES", "ApiKey", "KeyRing", "Scope", "parse_key"]
