"""Throwaway certificate authorities for the TLS tests and the TLS bench (never for production).

:func:`write_pki` writes, as PEM files in one directory: a CA, a server certificate it
signed for ``localhost`` and ``127.0.0.1``, a client certificate it signed, and a second,
unrelated CA with a client certificate of its own (one the server must refuse).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID = datetime.timedelta(days=2)


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files :func:`write_pki` wrote."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    other_client_cert: Path
    other_client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _sign(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    extensions: list[tuple[x509.ExtensionType, bool]],
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer is not None else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _ca(subject: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    cert = _sign(subject, key, None, [(x509.BasicConstraints(True, None), True), (usage, True)])
    return cert, key


def _leaf(
    subject: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], server: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    purpose = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(False, None), True),
        (x509.ExtendedKeyUsage([purpose]), False),
    ]
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        extensions.append((x509.SubjectAlternativeName(names), False))
    return _sign(subject, key, (ca[0].subject, ca[1]), extensions), key


def _write(directory: Path, stem: str, cert: x509.Certificate, key: object | None) -> Path:
    path = directory / f"{stem}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        (directory / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return path


def write_pki(directory: Path) -> Pki:
    """Write a fresh CA, server and client certificates, and another CA's client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca("scoring-service test CA")
    other = _ca("some other CA")
    _write(directory, "ca", ca[0], None)
    _write(directory, "other-ca", other[0], None)
    for stem, issuer, server in (
        ("server", ca, True),
        ("client", ca, False),
        ("other-client", other, False),
    ):
        cert, key = _leaf(f"{stem}.scoring-service.test", issuer, server)
        _write(directory, stem, cert, key)

    def path(name: str) -> Path:
        return directory / name

    return Pki(
        path("ca.crt"),
        path("server.crt"),
        path("server.key"),
        path("client.crt"),
        path("client.key"),
        path("other-ca.crt"),
        path("other-client.crt"),
        path("other-client.key"),
    )
