"""Test helpers: real RS256 tokens from local RSA keys; a fake Entra (metadata + JWKS) on MockTransport."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

AUTHORITY = "https://login.entra.test"
V1_ISSUER_HOST = "https://sts.entra.test"
JWKS_URI = f"{AUTHORITY}/common/discovery/v2.0/keys"
DISCOVERY_URL = f"{AUTHORITY}/common/v2.0/.well-known/openid-configuration"
APP_ID_URI = "api://liutong-test"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
AUDIENCES = (APP_ID_URI, CLIENT_ID)
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"
OID = "6b0d6f1c-2b1e-4a67-9d44-0d9c5d9f1a10"
MI_CLIENT_ID = "0c8a3b2e-7f61-4d1e-9a55-3f2b1c0d4e5f"
NOW = 1_750_000_000.0
KID = "key-one"
KID2 = "key-two"
TEMPLATED_ISSUER = f"{AUTHORITY}/{{tenantid}}/v2.0"

KEY: RSAPrivateKey = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY2: RSAPrivateKey = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY: RSAPrivateKey = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64url(json.dumps(value).encode())


def jwk(public: RSAPublicKey, kid: str, *, issuer: str | None = TEMPLATED_ISSUER) -> dict[str, Any]:
    numbers = public.public_numbers()
    entry: dict[str, Any] = {
        "kty": "RSA",
        "use": "sig",
        "kid": kid,
        "n": b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": b64url(numbers.e.to_bytes(3, "big")),
    }
    if issuer is not None:
        entry["issuer"] = issuer
    return entry


def public_pem(key: RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def v1_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "aud": APP_ID_URI,
        "iss": f"{V1_ISSUER_HOST}/{TENANT}/",
        "iat": int(NOW) - 60,
        "nbf": int(NOW) - 60,
        "exp": int(NOW) + 3600,
        "appid": MI_CLIENT_ID,
        "appidacr": "2",
        "idtyp": "app",
        "oid": OID,
        "sub": OID,
        "tid": TENANT,
        "ver": "1.0",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def v2_claims(**overrides: Any) -> dict[str, Any]:
    base = v1_claims(aud=CLIENT_ID, iss=f"{AUTHORITY}/{TENANT}/v2.0", ver="2.0", appid=None, appidacr=None)
    base.update({"azp": MI_CLIENT_ID, "azpacr": "2"})
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(
    claims: dict[str, Any], *, key: RSAPrivateKey = KEY, kid: str | None = KID, alg: str = "RS256"
) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeEntra:
    """OIDC discovery + JWKS, counting fetches. `gate` (if set) holds JWKS responses until released."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = [jwk(KEY.public_key(), KID)]
        self.jwks_body: bytes | None = None
        self.discovery_body: bytes | None = None
        self.status = 200
        self.unreachable = False
        self.gate: asyncio.Event | None = None
        self.discovery_fetches = 0
        self.jwks_fetches = 0
        self.transport = httpx.MockTransport(self._handle)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        if self.unreachable:
            raise httpx.ConnectError("unreachable", request=request)
        url = str(request.url)
        if url == DISCOVERY_URL:
            self.discovery_fetches += 1
            metadata = {"issuer": TEMPLATED_ISSUER, "jwks_uri": JWKS_URI}
            body = self.discovery_body or json.dumps(metadata).encode()
            return httpx.Response(self.status, content=body)
        if url == JWKS_URI:
            self.jwks_fetches += 1
            if self.gate is not None:
                await self.gate.wait()
            body = self.jwks_body or json.dumps({"keys": self.keys}).encode()
            return httpx.Response(self.status, content=body)
        return httpx.Response(404)
