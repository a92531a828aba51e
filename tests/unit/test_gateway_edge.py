"""The gateway's edge pieces: the nginx front's config, JSON HTTP errors, the memory
budget."""

from __future__ import annotations

import logging
import re
import shutil
import socket
import subprocess
from pathlib import Path

import orjson
import pytest
from gunicorn.http.errors import (
    InvalidChunkSize,
    InvalidHTTPVersion,
    InvalidResponseHeader,
    LimitRequestHeaders,
    LimitRequestLine,
    UnsupportedTransferCoding,
)

from gateway import memory
from gateway.config import Config, settings
from gateway.edge import main as edge_main
from gateway.edge import render
from gateway.errors import ApiError, too_large
from gateway.worker import JsonErrorThreadWorker, refusal

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "gateway.conf.template"


def nginx_check(run: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nginx", "-t", "-p", str(run), "-c", str(run / "nginx.conf"), "-e", "stderr"],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_rendered_nginx_config_is_valid_and_carries_the_limits(tmp_path: Path) -> None:
    config = Config(
        max_body_bytes=1234567, deadline_s=7, explain_deadline_s=9, host="::1", port=6123
    )
    text = render(TEMPLATE.read_text(), tmp_path, config)
    assert "listen [::1]:6123" in text
    assert "client_max_body_size 1234567;" in text
    assert "proxy_read_timeout 14s;" in text  # after the app's own (longest) deadline answer
    assert f"server unix:{tmp_path}/gunicorn.sock" in text
    assert "proxy_set_header Host $host;" in text  # nginx's variables pass through
    assert "@{" not in text
    assert text.count("error_page") == text.count("location = /_edge/")
    pages = dict(re.findall(r"location = /_edge/(\d+) \{.*?return \d+ '(.*?)'; \}", text))
    assert orjson.loads(pages["413"]) == orjson.loads(too_large(1234567).body())
    assert all(set(orjson.loads(page)) == {"error", "details"} for page in pages.values())
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed: the syntax check needs it")
    (tmp_path / "nginx.conf").write_text(text)
    checked = nginx_check(tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_a_broken_template_fails_nginx_t(tmp_path: Path) -> None:
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed: the syntax check needs it")
    broken = TEMPLATE.read_text().replace("keepalive 64;", "keepalive 64", 1)
    (tmp_path / "nginx.conf").write_text(render(broken, tmp_path, Config()))
    assert nginx_check(tmp_path).returncode != 0


def test_a_placeholder_the_renderer_does_not_know_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="no_such_setting"):
        render(TEMPLATE.read_text() + "# @{no_such_setting}\n", tmp_path, Config())


def test_edge_main_writes_the_config_and_refuses_bad_usage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings.cache_clear()
    monkeypatch.setenv("GATEWAY_ACCESS_LOG", "on")
    assert edge_main([str(TEMPLATE), str(tmp_path / "run")]) == 0
    text = (tmp_path / "run" / "nginx.conf").read_text()
    assert "upstream gunicorn" in text
    assert "access_log /dev/stdout;" in text
    assert edge_main([str(tmp_path / "run")]) == 2
    settings.cache_clear()
    monkeypatch.setenv("GATEWAY_PORT", "http")
    assert edge_main([str(TEMPLATE), str(tmp_path / "bad")]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("gateway: GATEWAY_PORT='http': ")
    assert not (tmp_path / "bad").exists()
    settings.cache_clear()


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        (LimitRequestLine(8192, 4094), 414, "Request-URI Too Long: Request Line is too large"),
        (LimitRequestHeaders("too many headers"), 431, "Request Header Fields Too Large:"),
        (InvalidChunkSize(b"zz"), 400, "Bad Request: Invalid chunk size"),
        (UnsupportedTransferCoding("gzip"), 400, "Not Implemented: Unsupported transfer"),
        (InvalidHTTPVersion("HTTP/2.0"), 400, "Bad Request: Invalid HTTP Version"),
    ],
)
def test_gunicorn_refusals_are_answered_with_the_json_body(
    exc: BaseException, status: int, message: str
) -> None:
    worker = object.__new__(JsonErrorThreadWorker)  # handle_error needs only a logger
    worker.log = logging.getLogger("test.worker")  # type: ignore[assignment]
    ours, theirs = socket.socketpair()
    with ours, theirs:
        worker.handle_error(None, ours, ("127.0.0.1", 1234), exc)
        ours.shutdown(socket.SHUT_WR)
        head, _, body = theirs.makefile("rb").read().partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"Content-Type: application/json" in head
    assert f"Content-Length: {len(body)}".encode() in head
    answer = orjson.loads(body)
    assert answer["error"].startswith(message)
    assert answer["details"] == []


@pytest.mark.parametrize("exc", [RuntimeError("boom"), InvalidResponseHeader("X-Bad")])
def test_errors_that_are_not_the_clients_are_a_json_500(exc: BaseException) -> None:
    assert refusal(exc) is None
    worker = object.__new__(JsonErrorThreadWorker)
    worker.log = logging.getLogger("test.worker")  # type: ignore[assignment]
    ours, theirs = socket.socketpair()
    with ours, theirs:
        worker.handle_error(None, ours, None, exc)
        ours.shutdown(socket.SHUT_WR)
        head, _, body = theirs.makefile("rb").read().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert orjson.loads(body) == {"error": "internal error", "details": []}


def test_the_budget_admits_within_its_limit_then_503_then_frees() -> None:
    budget = memory.Budget(100, retry_after_s=3)
    with budget.reserve(60) as first:
        with pytest.raises(ApiError) as refused:
            budget.reserve(50)
        assert (refused.value.status, refused.value.headers) == (503, {"Retry-After": "3"})
        first.resize(30)  # the counted estimate replaces the first guess
        with budget.reserve(50):  # 80 held: 20 more fit, 21 do not
            with pytest.raises(ApiError):
                budget.reserve(21)
            with budget.reserve(20):
                pass
    with budget.reserve(100):  # everything was given back
        pass
    with pytest.raises(ApiError) as never:
        budget.reserve(101)
    assert never.value.status == 413


def test_large_requests_trim_memory_when_the_last_one_leaves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    budget = memory.Budget(10 * memory.TRIM_ABOVE_BYTES, retry_after_s=1)
    trims: list[int] = []
    monkeypatch.setattr(budget, "_trim", lambda: trims.append(1))
    large = memory.TRIM_ABOVE_BYTES + 1
    with budget.reserve(large), budget.reserve(large):
        pass
    with budget.reserve(10):
        pass
    assert trims == [1]  # once, after the second large request, never for a small one


def test_estimate_grows_with_values() -> None:
    assert memory.estimate(1000, 10) == 1000 + 10 * memory.BYTES_PER_VALUE
