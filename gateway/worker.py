"""gunicorn's ``gthread`` worker, answering its own HTTP-level refusals as JSON.

gunicorn refuses a malformed request (bad request line, header too large, broken chunk
framing) before the app sees it, in its worker's ``handle_error``. This worker overrides
that method: it answers the refusal's status, named by gunicorn's own exception (its
public ``gunicorn.http.errors``), with the contract's JSON error body instead of an HTML
page. Behind the nginx front such requests stop at nginx; this covers gunicorn facing
clients (``GATEWAY_EDGE=none``).
"""

from __future__ import annotations

import ssl
from http import HTTPStatus
from typing import Any

from gunicorn import util
from gunicorn.http import errors
from gunicorn.workers.gthread import ThreadWorker

from gateway.errors import UNREADABLE_AS_BAD_REQUEST, error_body

_STATUSES: tuple[tuple[type[BaseException], int], ...] = (
    (errors.LimitRequestLine, 414),
    (errors.LimitRequestHeaders, 431),
    (errors.ExpectationFailed, 417),
    (errors.ForbiddenProxyRequest, 403),
    (ssl.SSLError, 403),
    (errors.UnsupportedTransferCoding, 501),
    (errors.ConfigurationProblem, 500),
)
"""gunicorn's statuses other than 400 for the requests it refuses."""
_NOT_THE_CLIENTS = (errors.InvalidResponseHeader, errors.InvalidResponseHeaderName)
"""A header the app tried to send: the app's fault, answered 500 like gunicorn does."""


def refusal(exc: BaseException) -> tuple[int, str] | None:
    """The status and ``error`` text for a request gunicorn refused (None: not the client's)."""
    if isinstance(exc, _NOT_THE_CLIENTS) or not isinstance(
        exc, errors.ParseException | ssl.SSLError
    ):
        return None
    status = next((code for kind, code in _STATUSES if isinstance(exc, kind)), 400)
    message = f"{HTTPStatus(status).phrase}: {exc}"
    # the message names what gunicorn could not read; the client's to fix
    return (400 if status in UNREADABLE_AS_BAD_REQUEST else status), message


def answer(status: int, message: str) -> bytes:
    """A whole HTTP response, closing the connection, with the JSON error body."""
    body = error_body(message)
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class JsonErrorThreadWorker(ThreadWorker):
    """A ``gthread`` worker whose HTTP-level error answers are JSON."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:  # noqa: ARG002
        """Log the error as gunicorn does and answer it with the JSON error body."""
        refused = refusal(exc)
        if refused is None:
            self.log.exception("Error handling request", exc_info=exc)
            status, message = 500, "internal error"
        else:
            ip = addr[0] if addr else ""
            self.log.warning("Invalid request from ip=%s: %s", ip, exc)
            status, message = refused
        try:
            util.write_nonblock(client, answer(status, message))
        except OSError:
            self.log.debug("failed to send the error answer")
