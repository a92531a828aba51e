"""The buffering front of the gateway: its nginx configuration, rendered from the settings.

gunicorn's ``gthread`` workers give a connection a thread while its request is read, so
a handful of clients that send headers or bodies slowly (or nothing at all) would hold
every thread. nginx reads each request in full, with timeouts, on an event loop that
holds thousands of idle connections for a few KiB each, and only then hands it to
gunicorn over a private unix socket. Its own refusals (malformed HTTP, a bad chunk
size, a body or header over the limits, a slow client, gunicorn unreachable) are
answered with the contract's JSON error body, never its HTML pages.

The configuration is the template ``deploy/nginx/gateway.conf.template``, whose
``@{name}`` placeholders this module fills. ``python -m gateway.edge TEMPLATE
RUNTIME_DIR`` writes ``RUNTIME_DIR/nginx.conf`` for ``bin/start-gateway``; every path
nginx writes to lies under ``RUNTIME_DIR`` (a read-only root filesystem is fine).
"""

from __future__ import annotations

import os
import string
import sys
from collections.abc import Sequence
from pathlib import Path

from gateway.config import Config, SettingsError, settings
from gateway.errors import UNREADABLE_AS_BAD_REQUEST, error_body, too_large

SOCKET_NAME = "gunicorn.sock"
CONFIG_NAME = "nginx.conf"
CLIENT_TIMEOUT_S = 10
"""A client silent this long while sending a request (headers or body) is dropped."""
KEEPALIVE_TIMEOUT_S = 75
"""Idle keep-alive connections are kept longer than common load balancers' idle timeout."""

_ERRORS: dict[int, str] = {
    400: "malformed HTTP request",
    408: f"request not received within {CLIENT_TIMEOUT_S} s",
    405: "method not allowed",
    414: "request line too long",
    494: "request headers too large",
    501: "transfer coding not supported: send the body with Content-Length or chunked only",
    505: "HTTP version not supported: use HTTP/1.1",
    500: "gateway could not buffer the request (busy), retry later",
    502: "gateway workers unavailable",
    503: "gateway workers unavailable",
    504: "gateway workers did not answer in time",
}
"""nginx's own refusals and the ``error`` text of their JSON body (494: headers too large;
413 is :func:`gateway.errors.too_large`'s, for the configured limit)."""
_RETRY = frozenset({500, 502, 503, 504})
"""Transient: answered 503 with Retry-After (500 is nginx's own, e.g. its buffers full)."""


class _Template(string.Template):
    """``@{name}`` placeholders: ``$`` is nginx's own variables'."""

    delimiter = "@"


def _error_locations(config: Config) -> str:
    """``error_page`` directives and the internal locations answering each as JSON."""
    lines = []
    messages = {**_ERRORS, 413: too_large(config.max_body_bytes).message}
    for status, message in messages.items():
        body = error_body(message).decode()
        # 494 is nginx's internal code for "headers too large"; clients see 431.
        answer = 431 if status == 494 else 503 if status in _RETRY else status
        answer = 400 if answer in UNREADABLE_AS_BAD_REQUEST else answer
        retry = (
            f"add_header Retry-After {config.retry_after_s} always; " if status in _RETRY else ""
        )
        lines.append(f"        error_page {status} = /_edge/{status};")
        lines.append(
            f"        location = /_edge/{status} {{ internal; default_type application/json; "
            f"{retry}return {answer} '{body}'; }}"
        )
    return "\n".join(lines)


def render(template: str, runtime_dir: Path, config: Config) -> str:
    """The nginx configuration ``template`` for ``config``."""
    host, port = config.host, config.port
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    access = "/dev/stdout" if config.access_log else "off"
    # Started as root (local runs), nginx would drop its workers to "nobody", who cannot
    # reach a socket in a private runtime directory; gunicorn runs as root then anyway.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return _Template(template).substitute(
        user=user,
        run=runtime_dir,
        access_log=access,
        client_timeout_s=CLIENT_TIMEOUT_S,
        keepalive_timeout_s=KEEPALIVE_TIMEOUT_S,
        max_body_bytes=config.max_body_bytes,
        socket=SOCKET_NAME,
        listen=listen,
        upstream_timeout_s=int(max(config.deadline_s, config.explain_deadline_s)) + 5,
        error_pages=_error_locations(config),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Render TEMPLATE into ``RUNTIME_DIR/nginx.conf`` from the environment; the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 2:
        print("usage: python -m gateway.edge TEMPLATE RUNTIME_DIR", file=sys.stderr)
        return 2
    try:
        config = settings()
    except SettingsError as error:
        print(f"gateway: {error}", file=sys.stderr)
        return 2
    template, runtime_dir = Path(args[0]).read_text(), Path(args[1]).resolve()
    runtime_dir.mkdir(parents=True, exist_ok=True)
    (runtime_dir / CONFIG_NAME).write_text(render(template, runtime_dir, config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
