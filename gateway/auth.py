"""API keys: who may call the gateway.

The keys are given as a file of their SHA-256 hashes (``GATEWAY_API_KEYS_FILE``), one
per line as hex, optionally followed by anything (a name, or the ``-`` that
``printf %s "$KEY" | sha256sum`` writes); blank lines and ``#`` comments are skipped.
The keys themselves are never on disk, in a setting or in a log. A client presents its
key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; the key's hash is
compared with every stored hash in constant time. Keys are random tokens (e.g.
``openssl rand -hex 32``), so a plain SHA-256 is enough: there is nothing to guess.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from gateway.errors import ApiError, detail

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
"""Routes answered without a key (the orchestrator's probes)."""
REALM = "scoring-service"

_HASH = re.compile(r"[0-9a-fA-F]{64}")


class KeyFileError(ValueError):
    """The keys file is missing, unreadable, empty or holds a line that is not a hash."""


def hash_key(key: str) -> str:
    """The hex SHA-256 of a key as it arrives in a header (its Latin-1 bytes, as WSGI has them)."""
    return hashlib.sha256(key.encode("latin-1")).hexdigest()


class KeyRing:
    """The accepted keys, held only as their SHA-256 digests."""

    def __init__(self, hex_hashes: Iterable[str]) -> None:
        """Keep the digests of ``hex_hashes`` (at least one)."""
        self._digests = tuple(bytes.fromhex(h) for h in hex_hashes)
        if not self._digests:
            raise KeyFileError("no API key hashes given")

    @classmethod
    def load(cls, path: str | Path) -> KeyRing:
        """Read a keys file (see the module docstring).

        Raises:
            KeyFileError: it cannot be read, holds no hash, or a line is not one.

        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"cannot read API keys file {path}: {exc}") from None
        hashes = []
        for number, line in enumerate(text.splitlines(), 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            if not _HASH.fullmatch(fields[0]):
                raise KeyFileError(
                    f"{path} line {number}: expected a SHA-256 hash (64 hex digits), not a key"
                )
            hashes.append(fields[0])
        if not hashes:
            raise KeyFileError(f"API keys file {path} holds no key hash")
        return cls(hashes)

    def admits(self, key: str) -> bool:
        """Whether ``key`` is one of the keys, compared with every hash (constant time)."""
        digest = hashlib.sha256(key.encode("latin-1")).digest()
        found = False
        for stored in self._digests:
            found |= hmac.compare_digest(digest, stored)
        return found


Header = Callable[[str], "str | None"]
"""A request's header by name (case-insensitive), None when absent."""


def presented_key(header: Header) -> str | None:
    """The key a request carries (``Authorization: Bearer`` first, then ``X-API-Key``)."""
    scheme, _, token = (header("Authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = (header("X-API-Key") or "").strip()
    return key or None


def challenge(invalid: bool) -> str:
    """The ``WWW-Authenticate`` header of a 401 (RFC 6750)."""
    if invalid:
        return f'Bearer realm="{REALM}", error="invalid_token"'
    return f'Bearer realm="{REALM}"'


def refusal(keys: KeyRing, path: str, header: Header, metrics_open: bool) -> str | None:
    """Why a request to ``path`` must be refused (``missing``/``invalid`` key), or None."""
    if path in OPEN_PATHS or (metrics_open and path == "/metrics"):
        return None
    key = presented_key(header)
    if key is None:
        return "missing"
    return None if keys.admits(key) else "invalid"


def unauthorized(reason: str) -> ApiError:
    """The 401 answered for a ``missing`` or ``invalid`` key (the key is never echoed)."""
    return ApiError(
        401,
        f"{reason} API key: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
        [detail(None, None, None, f"{reason} API key")],
        {"WWW-Authenticate": challenge(invalid=reason == "invalid")},
    )
