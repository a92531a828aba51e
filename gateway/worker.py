"""gunicorn's ``gthread`` worker, answering its own HTTP-level refusals as JSON.

gunicorn refuses a malformed request (bad request line, header too large, broken chunk
framing) before the app sees it, with an HTML page. This worker sends the same status
with the contract's ``{"error": ..., "details": []}`` body instead. Behind the nginx front
such requests stop at nginx; this covers gunicorn facing clients (``GATEWAY_EDGE=none``).
"""

from __future__ import annotations

import html
import re
from typing import Any

import orjson
from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from gateway.errors import UNREADABLE_AS_BAD_REQUEST

_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3}) ([^\r]*)\r\n")
_MESSAGE = re.compile(rb"</h1>\s*(.*?)\s*</body>", re.DOTALL)


class _Capture:
    """Stands in for the client socket while gunicorn writes its HTML error."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0

    def sendall(self, data: bytes) -> None:
        self.data += data


def json_error(page: bytes) -> bytes | None:
    """Rewrite gunicorn's HTML error response with a JSON body (None if unrecognised)."""
    status = _STATUS.match(page)
    if status is None:
        return None
    code, reason = int(status.group(1)), status.group(2).decode("latin-1")
    found = _MESSAGE.search(page)
    message = html.unescape(found.group(1).decode("latin-1")) if found else ""
    body = orjson.dumps({"error": f"{reason}: {message}" if message else reason, "details": []})
    if code in UNREADABLE_AS_BAD_REQUEST:  # the error names what gunicorn could not read
        code, reason = 400, "Bad Request"
    head = (
        f"HTTP/1.1 {code} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class JsonErrorThreadWorker(ThreadWorker):
    """A ``gthread`` worker whose HTTP-level error answers are JSON."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Let gunicorn log and build its answer, then send it with a JSON body."""
        capture = _Capture()
        super().handle_error(req, capture, addr, exc)
        answer = json_error(capture.data) or capture.data
        try:
            util.write_nonblock(client, answer)
        except OSError:
            self.log.debug("failed to send the error answer")
