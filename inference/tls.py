"""TLS for the gRPC server: its certificate and key, and the CA its clients must be signed by.

Given a certificate and key, the server serves TLS only (a plaintext client cannot
connect); given a client CA too, it requires every client to present a certificate that
CA signed (mutual TLS). Kubernetes' native gRPC probes speak plaintext only, so a TLS
server can serve ``grpc.health.v1`` alone on a separate plaintext health port.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from inference.config import Settings


class TlsSettingsError(ValueError):
    """The TLS settings are incomplete or name files that cannot be read."""


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """The server's TLS credentials, or None to serve plaintext.

    Raises:
        TlsSettingsError: only one of certificate and key is given, a client CA without
            them, or a file cannot be read.

    """
    cert, key, client_ca = settings.tls_cert, settings.tls_key, settings.tls_client_ca
    if not (cert or key or client_ca):
        return None
    if not (cert and key):
        raise TlsSettingsError(
            "TLS needs both --tls-cert and --tls-key (INFERENCE_TLS_CERT, INFERENCE_TLS_KEY)"
            + ("; --tls-client-ca alone is not enough" if client_ca else "")
        )
    return grpc.ssl_server_credentials(
        [(_read(key), _read(cert))],
        root_certificates=_read(client_ca) if client_ca else None,
        require_client_auth=bool(client_ca),
    )


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsSettingsError(f"cannot read {path}: {exc.strerror}") from None
