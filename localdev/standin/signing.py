"""RSA signing keys published as Entra-style JWKS, and RS256 minting/verification with them."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import threading
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint_b64url(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class SigningKey:
    kid: str
    x5t: str
    private_key: rsa.RSAPrivateKey
    certificate_der: bytes

    @classmethod
    def generate(cls) -> SigningKey:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls.of(private_key, _self_signed_certificate(private_key))

    @classmethod
    def of(cls, private_key: rsa.RSAPrivateKey, certificate_der: bytes) -> SigningKey:
        """The same key and certificate always give the same `kid`: a key read back from a file keeps it."""
        # Entra's v1 keys use the certificate thumbprint as both x5t and kid.
        x5t = b64url(hashlib.sha1(certificate_der).digest())  # noqa: S324 - x5t is defined as SHA-1
        return cls(kid=x5t, x5t=x5t, private_key=private_key, certificate_der=certificate_der)

    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def jwk(self, *, issuer: str | None) -> dict[str, Any]:
        numbers = self.public_key().public_numbers()
        entry: dict[str, Any] = {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.x5t,
            "n": _uint_b64url(numbers.n),
            "e": _uint_b64url(numbers.e),
            "x5c": [base64.b64encode(self.certificate_der).decode("ascii")],
        }
        if issuer is not None:
            entry["issuer"] = issuer
        return entry


def _self_signed_certificate(private_key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accounts.accesscontrol.windows.net")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(private_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


class UnknownSigningKey(Exception):
    """The token names a `kid` this stand-in never published."""


class KeyRing:
    """All keys ever generated stay published; the newest one signs. `first` is a key kept from an earlier
    run (localdev.standin.persisted); rotations are not kept."""

    def __init__(self, first: SigningKey | None = None) -> None:
        self._lock = threading.Lock()
        self._keys: list[SigningKey] = [first or SigningKey.generate()]

    @property
    def current(self) -> SigningKey:
        with self._lock:
            return self._keys[-1]

    def rotate(self) -> SigningKey:
        key = SigningKey.generate()
        with self._lock:
            self._keys.append(key)
        return key

    def published(self) -> list[SigningKey]:
        with self._lock:
            return list(self._keys)

    def jwks(self, *, issuer: str | None) -> dict[str, Any]:
        return {"keys": [key.jwk(issuer=issuer) for key in self.published()]}

    def public_key_for(self, kid: str) -> rsa.RSAPublicKey:
        for key in self.published():
            if key.kid == kid:
                return key.public_key()
        raise UnknownSigningKey(kid)

    def sign(self, claims: dict[str, Any], *, include_x5t: bool) -> str:
        key = self.current
        headers: dict[str, Any] = {"typ": "JWT", "kid": key.kid}
        if include_x5t:
            headers["x5t"] = key.x5t
        return jwt.encode(claims, key.private_key, algorithm="RS256", headers=headers)
