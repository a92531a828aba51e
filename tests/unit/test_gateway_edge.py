"""The gateway's edge pieces: the nginx front's config, JSON HTTP errors, the memory
budget."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from gateway import memory
from gateway.config import Config, settings
from gateway.edge import main as edge_main
from gateway.edge import render
from gateway.errors import ApiError
from gateway.worker import json_error


def test_the_rendered_nginx_config_is_valid_and_carries_the_limits(tmp_path: Path) -> None:
    config = Config(
        max_body_bytes=1234567, deadline_s=7, explain_deadline_s=9, host="::1", port=6123
    )
    text = render(tmp_path, config)
    assert "listen [::1]:6123" in text
    assert "client_max_body_size 1234567;" in text
    assert "proxy_read_timeout 14s;" in text  # after the app's own (longest) deadline answer
    assert "request body larger than 1234567 bytes" in text
    assert text.count("error_page") == text.count("location = /_edge/")
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed: the syntax check needs it")
    (tmp_path / "nginx.conf").write_text(text)
    checked = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_edge_main_writes_the_config_and_refuses_bad_usage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings.cache_clear()
    monkeypatch.setenv("GATEWAY_ACCESS_LOG", "on")
    assert edge_main([str(tmp_path / "run")]) == 0
    text = (tmp_path / "run" / "nginx.conf").read_text()
    assert "upstream gunicorn" in text
    assert "access_log /dev/stdout;" in text
    assert edge_main([]) == 2
    settings.cache_clear()
    monkeypatch.setenv("GATEWAY_PORT", "http")
    assert edge_main([str(tmp_path / "bad")]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("gateway: GATEWAY_PORT='http': ")
    assert not (tmp_path / "bad").exists()
    settings.cache_clear()


def test_gunicorn_html_errors_become_json() -> None:
    page = (
        b"HTTP/1.1 414 URI Too Long\r\nConnection: close\r\nContent-Type: text/html\r\n"
        b"Content-Length: 9\r\n\r\n<html><body><h1><p>URI Too Long</p></h1>\n"
        b"  Request Line is too large (8192 &gt; 4094)\n</body></html>"
    )
    answer = json_error(page)
    assert answer is not None
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    assert b"Content-Type: application/json" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert orjson.loads(body) == {
        "error": "URI Too Long: Request Line is too large (8192 > 4094)",
        "details": [],
    }
    assert json_error(b"garbage") is None


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
