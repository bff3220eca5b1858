"""Keys that outlive a restart of the stand-in (`make run`): its token signing key and its HTTPS certificate,
as files only their owner may read, in one folder.

So a token a client cached before the restart still validates (same key, same `kid`), and the CA file the
CLI trusts keeps its path and content. A file that is missing, unreadable, readable by others, corrupt,
mismatched or about to expire is replaced by a fresh one, written to a temporary file and renamed into place.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import stat
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from admin.cli.files import write_private
from localdev.keyvault_standin import self_signed_pem
from localdev.standin.signing import SigningKey

SIGNING_KEY_FILE = "signing-key.pem"  # the RSA key, then its certificate (published as x5c; kid = thumbprint)
TLS_CERT_FILE = "tls-cert.pem"  # also the CA file clients trust (the certificate is self-signed)
TLS_KEY_FILE = "tls-key.pem"
TLS_DAYS = 30
RENEW_BEFORE = dt.timedelta(days=1)

logger = logging.getLogger("liutong.standin")
_UNUSABLE = (OSError, ValueError, TypeError, UnsupportedAlgorithm)


def signing_key(directory: Path) -> SigningKey:
    """The signing key kept in `directory`, or a new one written there."""
    path = directory / SIGNING_KEY_FILE
    try:
        return _read_signing_key(path)
    except _UNUSABLE as error:
        _replacing(path, error)
    key = SigningKey.generate()
    certificate = x509.load_der_x509_certificate(key.certificate_der)
    write_private(path, (_private_pem(key.private_key) + certificate.public_bytes(serialization.Encoding.PEM)).decode())
    return key


def tls_files(directory: Path, *, host: str) -> tuple[Path, Path]:
    """(certificate, key) PEM files for serving HTTPS on `host`: those kept in `directory`, or new ones."""
    cert_path, key_path = directory / TLS_CERT_FILE, directory / TLS_KEY_FILE
    try:
        _check_tls(cert_path, key_path, host)
    except _UNUSABLE as error:
        _replacing(cert_path, error)
        cert_pem, key_pem = self_signed_pem(host=host, days=TLS_DAYS)
        # The key first: a crash in between leaves a mismatched pair, which the next start replaces.
        write_private(key_path, key_pem.decode())
        write_private(cert_path, cert_pem.decode())
    return cert_path, key_path


def _read_signing_key(path: Path) -> SigningKey:
    data = _read_private(path)
    private_key = serialization.load_pem_private_key(data, password=None)
    certificate = x509.load_pem_x509_certificate(data)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA key")
    _check_pair(private_key, certificate)
    return SigningKey.of(private_key, certificate.public_bytes(serialization.Encoding.DER))


def _check_tls(cert_path: Path, key_path: Path, host: str) -> None:
    certificate = x509.load_pem_x509_certificate(_read_private(cert_path))
    _check_pair(serialization.load_pem_private_key(_read_private(key_path), password=None), certificate)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    if host not in names.get_values_for_type(x509.DNSName) and not _names_ip(names, host):
        raise ValueError(f"certificate not issued for {host}")


def _names_ip(names: x509.SubjectAlternativeName, host: str) -> bool:
    try:
        return ipaddress.ip_address(host) in names.get_values_for_type(x509.IPAddress)
    except ValueError:
        return False


def _check_pair(private_key: PrivateKeyTypes, certificate: x509.Certificate) -> None:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if private_key.public_key().public_bytes(*spki) != certificate.public_key().public_bytes(*spki):
        raise ValueError("key and certificate do not match")
    if certificate.not_valid_after_utc - RENEW_BEFORE < dt.datetime.now(dt.UTC):
        raise ValueError("certificate expires soon")


def _read_private(path: Path) -> bytes:
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode) or stat.S_IMODE(mode) & 0o077:
        # A private key others could read may be someone else's copy too.
        raise ValueError("not a regular file readable by its owner only")
    return path.read_bytes()


def _private_pem(private_key: rsa.RSAPrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _replacing(path: Path, error: BaseException) -> None:
    if not isinstance(error, FileNotFoundError):
        logger.warning("replacing %s: %s", path, error)
