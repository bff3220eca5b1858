"""Entra signing keys: OIDC discovery + JWKS over httpx, cached by `kid`, refreshed with a rate limit."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey, RSAPublicNumbers

from core.errors import ServiceUnavailable

logger = logging.getLogger("liutong.auth")

_DISCOVERY_PATH = "/common/v2.0/.well-known/openid-configuration"
# Entra's documents are a few KiB; a huge body is not a key set we should parse.
_MAX_DOCUMENT_BYTES = 1024 * 1024
# Keys below 2048 bits are forgeable in practice; Entra never publishes them.
_MIN_RSA_BITS = 2048


class JwksFetchError(Exception):
    """The metadata or key set could not be fetched or was malformed (internal)."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    key: RSAPublicKey
    issuer: str | None = None


class JwksCache:
    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        authority: str,
        max_age_seconds: float,
        min_refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._discovery_url = authority.rstrip("/") + _DISCOVERY_PATH
        self._max_age = max_age_seconds
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._jwks_uri: str | None = None
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._last_failed = False
        self._generation = 0
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> SigningKey | None:
        """The key for `kid`; None if Entra does not publish it. ServiceUnavailable if we cannot tell."""
        if self._is_stale() or kid not in self._keys:
            await self._refresh()
        key = self._keys.get(kid)
        if key is None and self._last_failed:
            raise ServiceUnavailable("Signing keys are temporarily unavailable.", code="jwks_unavailable")
        return key

    def _is_stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._max_age

    async def _refresh(self) -> None:
        generation = self._generation
        async with self._lock:
            # Another caller refreshed while we waited: share its result (single flight).
            if self._generation != generation:
                return
            now = self._clock()
            # Unknown kids are attacker-chosen: never let them drive more than one fetch per interval.
            if self._attempted_at is not None and now - self._attempted_at < self._min_refresh:
                return
            previous_attempt, self._attempted_at = self._attempted_at, now
            try:
                keys = await self._fetch()
            except JwksFetchError as error:
                self._record_failure(error)
                return
            except asyncio.CancelledError:
                # A cancelled fetch says nothing about Entra: let the next waiter try at once.
                self._attempted_at = previous_attempt
                raise
            self._keys, self._fetched_at, self._last_failed = keys, now, False
            self._generation += 1
            logger.info("JWKS refreshed: %d signing keys", len(keys))

    def _record_failure(self, error: JwksFetchError) -> None:
        self._last_failed = True
        self._jwks_uri = None
        self._generation += 1
        logger.warning("JWKS refresh failed: %s; serving %d cached keys", error, len(self._keys))

    async def _fetch(self) -> dict[str, SigningKey]:
        if self._jwks_uri is None:
            self._jwks_uri = _parse_discovery(await self._get_json(self._discovery_url))
        return _parse_jwks(await self._get_json(self._jwks_uri))

    async def _get_json(self, url: str) -> Any:
        try:
            response = await self._http.get(url, headers={"accept": "application/json"})
        except httpx.HTTPError as error:
            raise JwksFetchError(f"{type(error).__name__} fetching {url}") from error
        if response.status_code != 200:
            raise JwksFetchError(f"HTTP {response.status_code} from {url}")
        if len(response.content) > _MAX_DOCUMENT_BYTES:
            raise JwksFetchError(f"document too large from {url}")
        try:
            return response.json()
        except ValueError as error:
            raise JwksFetchError(f"invalid JSON from {url}") from error


def _parse_discovery(document: Any) -> str:
    jwks_uri = document.get("jwks_uri") if isinstance(document, dict) else None
    if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
        raise JwksFetchError("metadata has no usable jwks_uri")
    return jwks_uri


def _parse_jwks(document: Any) -> dict[str, SigningKey]:
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise JwksFetchError("key set is malformed")
    keys: dict[str, SigningKey] = {}
    for entry in entries:
        key = _parse_key(entry)
        if key is not None:
            keys[key.kid] = key
    # An empty set would evict every cached key: treat it as a failed fetch instead.
    if not keys:
        raise JwksFetchError("key set has no usable RSA signing keys")
    return keys


def _parse_key(entry: dict[str, Any]) -> SigningKey | None:
    kid, issuer = entry.get("kid"), entry.get("issuer")
    if entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig":
        return None
    if not isinstance(kid, str) or not kid or (issuer is not None and not isinstance(issuer, str)):
        return None
    try:
        modulus, exponent = _b64_int(entry.get("n")), _b64_int(entry.get("e"))
        key = RSAPublicNumbers(exponent, modulus).public_key()
    except (TypeError, ValueError, binascii.Error):
        return None
    if key.key_size < _MIN_RSA_BITS:
        return None
    return SigningKey(kid=kid, key=key, issuer=issuer)


def _b64_int(value: Any) -> int:
    if not isinstance(value, str) or not value:
        raise ValueError("not a base64url integer")
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    return int.from_bytes(raw, "big")
