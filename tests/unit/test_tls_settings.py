"""TLS settings of both tiers: what turns TLS on, and incomplete settings refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.client import InferenceClient, TlsConfigError, tls_files
from gateway.config import Config
from inference.config import load_settings
from inference.tls import TlsSettingsError, server_credentials


def pem(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\n" + name.encode() + b"\n")
    return str(path)


def test_the_gateway_channel_is_plaintext_unless_given_a_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tls_files(Config()) is None
    ca = pem(tmp_path, "ca.crt")
    assert tls_files(Config(inference_ca=ca)) == (Path(ca).read_bytes(), None, None)
    cert, key = pem(tmp_path, "client.crt"), pem(tmp_path, "client.key")
    files = tls_files(Config(inference_ca=ca, inference_cert=cert, inference_key=key))
    assert files == (Path(ca).read_bytes(), Path(key).read_bytes(), Path(cert).read_bytes())
    env = {
        "GATEWAY_INFERENCE_CA": ca,
        "GATEWAY_INFERENCE_CERT": cert,
        "GATEWAY_INFERENCE_KEY": key,
        "GATEWAY_INFERENCE_SERVER_NAME": "inference",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = Config.from_env()
    assert (config.inference_ca, config.inference_server_name) == (ca, "inference")


@pytest.mark.parametrize(
    "settings",
    [
        {"inference_cert": "c"},
        {"inference_key": "k"},
        {"inference_cert": "c", "inference_key": "k"},  # no CA to check the server with
        {"inference_ca": "ca", "inference_cert": "c"},
    ],
)
def test_incomplete_gateway_tls_settings_are_refused(settings: dict[str, str]) -> None:
    with pytest.raises(TlsConfigError, match="together"):
        InferenceClient(Config(**settings))


def test_an_unreadable_gateway_tls_file_names_its_setting(tmp_path: Path) -> None:
    with pytest.raises(TlsConfigError, match=r"GATEWAY_INFERENCE_CA=.*absent"):
        tls_files(Config(inference_ca=str(tmp_path / "absent")))


def test_the_server_serves_plaintext_unless_given_a_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(["--bundle", "b"])
    assert (settings.tls_cert, settings.tls_client_ca, settings.health_port) == ("", "", -1)
    assert server_credentials(settings) is None
    env = {
        "INFERENCE_TLS_CERT": pem(tmp_path, "s.crt"),
        "INFERENCE_TLS_KEY": pem(tmp_path, "s.key"),
        "INFERENCE_TLS_CLIENT_CA": pem(tmp_path, "ca.crt"),
        "INFERENCE_HEALTH_PORT": "8003",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(["--bundle", "b"])
    assert settings.health_port == 8003
    assert settings.tls_client_ca == env["INFERENCE_TLS_CLIENT_CA"]
    assert server_credentials(settings) is not None


def test_incomplete_server_tls_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TlsSettingsError, match="alone is not enough"):
        server_credentials(load_settings(["--bundle", "b", "--tls-client-ca", "ca"]))
