"""Every answer reaches its client, also one given without reading the request body.

A 415, 405, 404, a 400 for a bad query or a 503 of the memory budget answer before the
body is read. A server that then closes the connection with the rest of the body unread
sends a reset, which can destroy the answer on its way: nginx, still writing the body,
answers 503 instead; a client facing gunicorn sees a broken pipe (gunicorn reads only a
little of an unread body before it closes). :func:`read_to_the_end` wraps the WSGI app
so that, once an answer is written, the rest of its body is read and dropped (at most the
body limit, each read waiting at most :data:`READ_TIMEOUT_S`): the connection then ends
cleanly, or is kept alive, whatever the route or hook that answered.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wsgi import ClosingIterator

log = logging.getLogger("gateway")
READ_TIMEOUT_S = 10.0
"""A client silent this long while its unread body is dropped is left (nginx's timeout)."""
_PIECE_BYTES = 64 * 1024

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def read_to_the_end(app: WsgiApp, limit: int) -> WsgiApp:
    """``app``, reading what its answers leave of each request body (``limit`` bytes at most)."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return ClosingIterator(app(environ, start_response), lambda: _drop_rest(environ, limit))

    return wsgi


def _drop_rest(environ: dict[str, Any], limit: int) -> None:
    """Read and drop the rest of the request body, up to ``limit`` bytes."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return
    sock = environ.get("gunicorn.socket")
    timeout = sock.gettimeout() if isinstance(sock, socket.socket) else None
    if isinstance(sock, socket.socket):
        sock.settimeout(READ_TIMEOUT_S)
    dropped = 0
    try:
        while dropped <= limit:
            piece = stream.read(_PIECE_BYTES)
            if not piece:
                break
            dropped += len(piece)
    except Exception as exc:  # a broken or silent client: the server closes
        log.debug("left the rest of a request body unread: %r", exc)
    finally:
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):  # the client is gone
                sock.settimeout(timeout)
