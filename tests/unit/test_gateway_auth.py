"""API keys on the gateway (gateway.auth): the keys file, each way of presenting a key,
the open probe routes, /metrics open or closed, and the 401 given before the body is read.

The app runs in front of a closed local port: a request that passes the key check gets
the inference server's 503 (or the 415 of a wrong content type), never a 401."""

from __future__ import annotations

import hashlib
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway import auth, metrics
from gateway.app import create_app, shut_down
from gateway.config import Config
from tests.unit.test_gateway_app import ROW, closed_port

KEY = "k3y-for-tests-0123456789abcdef"
OTHER_KEY = "another-key-that-is-not-in-the-file"


def keys_file(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "api-keys.sha256"
    path.write_text("\n".join(lines) + "\n")
    return path


def sha256sum_line(key: str) -> str:
    """What ``printf %s "$KEY" | sha256sum`` prints (the documented way to hash a key)."""
    done = subprocess.run(["sha256sum"], input=key.encode(), capture_output=True, check=True)
    return done.stdout.decode().strip()


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[callable]:  # type: ignore[valid-type]
    apps: list[Flask] = []

    def make(**settings: object) -> FlaskClient:
        path = keys_file(tmp_path, "# scoring clients", sha256sum_line(KEY), "")
        config = Config(
            inference_target=f"127.0.0.1:{closed_port()}",
            ready_timeout_s=0.3,
            api_keys_file=str(path),
            **settings,  # type: ignore[arg-type]
        )
        app = create_app(config)
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        shut_down(app)


def rejected(reason: str) -> float:
    return metrics.AUTH_REJECTED.labels(reason)._value.get()


def post(client: FlaskClient, headers: dict[str, str], path: str = "/predict"):  # type: ignore[no-untyped-def]
    return client.post(path, data=ROW, headers={"Content-Type": "application/json", **headers})


def test_the_keys_file_holds_hashes_in_sha256sum_format(tmp_path: Path) -> None:
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    ring = auth.KeyRing.load(keys_file(tmp_path, "", "# comment", f"{digest.upper()} alice"))
    assert ring.admits(KEY)
    assert not ring.admits(OTHER_KEY)
    assert not ring.admits("")
    assert auth.hash_key(KEY) == digest


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ((KEY,), "expected a SHA-256 hash"),  # a raw key where a hash belongs
        (("# only a comment", ""), "holds no key hash"),
        (("ab" * 31,), "expected a SHA-256 hash"),  # 62 hex digits
    ],
)
def test_a_bad_keys_file_is_refused(tmp_path: Path, lines: tuple[str, ...], message: str) -> None:
    with pytest.raises(auth.KeyFileError, match=message):
        auth.KeyRing.load(keys_file(tmp_path, *lines))


def test_a_missing_keys_file_stops_the_app_from_starting(tmp_path: Path) -> None:
    with pytest.raises(auth.KeyFileError, match="cannot read"):
        create_app(Config(api_keys_file=str(tmp_path / "absent")))
    with pytest.raises(auth.KeyFileError):
        auth.KeyRing([])


def test_keys_are_off_by_default() -> None:
    assert Config().api_keys_file == ""
    app = create_app(Config(inference_target=f"127.0.0.1:{closed_port()}", ready_timeout_s=0.3))
    try:
        assert post(app.test_client(), {}).status_code in (503, 504)  # scored (no server)
    finally:
        shut_down(app)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_API_KEYS_FILE", "/run/keys/api-keys")
    monkeypatch.setenv("GATEWAY_METRICS_OPEN", "off")
    config = Config.from_env()
    assert config.api_keys_file == "/run/keys/api-keys"
    assert config.metrics_open is False
    monkeypatch.setenv("GATEWAY_METRICS_OPEN", "on")
    assert Config.from_env().metrics_open is True
    monkeypatch.setenv("GATEWAY_METRICS_OPEN", "maybe")
    with pytest.raises(ValueError, match="GATEWAY_METRICS_OPEN"):
        Config.from_env()


def test_a_missing_key_is_401_with_a_challenge_and_counted(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app()
    before = rejected("missing")
    for path in ("/predict", "/explain", "/openapi.json", "/v2", "/no/such/route"):
        answer = client.post(path) if path in ("/predict", "/explain") else client.get(path)
        assert answer.status_code == 401, path
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="scoring-service"'
        body = answer.get_json()
        assert set(body) == {"error", "details"}
        assert "missing API key" in body["error"]
    assert rejected("missing") == before + 5


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {OTHER_KEY}"},
        {"X-API-Key": OTHER_KEY},
        {"Authorization": f"Bearer {KEY}x"},
        {"Authorization": f"Bearer {KEY[:-1]}"},
    ],
)
def test_a_wrong_key_is_401_and_never_echoed_or_logged(
    make_app,  # type: ignore[no-untyped-def]
    headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_app()
    before = rejected("invalid")
    with caplog.at_level(logging.DEBUG):
        answer = post(client, headers)
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
    assert "invalid API key" in answer.get_json()["error"]
    presented = next(iter(headers.values())).split()[-1]
    assert presented.encode() not in answer.data
    assert presented not in caplog.text
    assert rejected("invalid") == before + 1
    body, _ = metrics.render()
    assert presented.encode() not in body
    assert b'gateway_auth_rejected_total{reason="invalid"}' in body


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {KEY}"},
        {"Authorization": f"bearer   {KEY} "},
        {"X-API-Key": KEY},
        {"x-api-key": KEY},
        {"Authorization": "Basic dXNlcjpwYXNz", "X-API-Key": KEY},  # another scheme: X-API-Key
    ],
)
def test_the_right_key_passes_either_way(make_app, headers: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    client = make_app()
    assert post(client, headers).status_code in (503, 504)  # reached the (unreachable) model
    answer = client.post("/predict", data=ROW, headers={**headers, "Content-Type": "text/plain"})
    assert answer.status_code == 415


def test_the_probes_stay_open(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code in (503, 504)  # not ready (no server), not 401


def test_metrics_open_by_default_and_closed_by_a_setting(make_app) -> None:  # type: ignore[no-untyped-def]
    assert make_app().get("/metrics").status_code == 200
    closed = make_app(metrics_open=False)
    assert closed.get("/metrics").status_code == 401
    assert closed.get("/metrics", headers={"X-API-Key": KEY}).status_code == 200


class ExplodingStream:
    """A request body that fails the test if anything reads it."""

    def read(self, *_: object) -> bytes:
        pytest.fail("the body of an unauthenticated request was read")

    readline = read


def test_the_401_comes_before_the_body_is_read(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app()
    answer = client.post(
        "/predict",
        headers={"Content-Type": "application/json", "Content-Length": "1000000"},
        environ_overrides={"wsgi.input": ExplodingStream()},
    )
    assert answer.status_code == 401
