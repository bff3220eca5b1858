"""Validate an Entra access token (v1 or v2) presented by a managed identity. RS256 only."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeGuard

import httpx
import jwt
from jwt.types import Options

from core.errors import AuthenticationFailed
from core.settings import Settings
from provisioning.jwks import JwksCache, SigningKey

logger = logging.getLogger("liutong.auth")

MAX_TOKEN_CHARS = 16 * 1024
MAX_LEEWAY_SECONDS = 300
_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# kid is logged, so it must be harmless text; Entra kids are short base64/hex strings.
_MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z
_KID = re.compile(r"[A-Za-z0-9_=+/.-]{1,128}")
# Time checks are ours (with the injected clock); pyjwt only verifies the signature.
_PYJWT_OPTIONS: Options = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "enforce_minimum_key_length": True,
}


@dataclass(frozen=True)
class TokenClaims:
    tid: str
    oid: str
    aud: str
    issuer: str
    version: Literal["1.0", "2.0"]
    kid: str
    app_id: str | None
    xms_mirid: str | None
    roles: tuple[str, ...]
    expires_at: datetime


class _Refused(Exception):
    def __init__(self, reason: str, code: str, *, tid: str | None = None, oid: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.code, self.tid, self.oid = reason, code, tid, oid


class TokenValidator:
    def __init__(
        self,
        *,
        jwks: JwksCache,
        audiences: Sequence[str],
        authority: str,
        v1_issuer_host: str,
        leeway_seconds: int = 300,
        now: Callable[[], float] = time.time,
    ) -> None:
        if not audiences:
            raise ValueError("at least one token audience must be configured")
        if not 0 <= leeway_seconds <= MAX_LEEWAY_SECONDS:
            raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY_SECONDS} seconds")
        self._jwks = jwks
        self._audiences = frozenset(audiences)
        self._authority = authority.rstrip("/")
        self._v1_issuer_host = v1_issuer_host.rstrip("/")
        self._leeway = leeway_seconds
        self._now = now

    @classmethod
    def from_settings(cls, settings: Settings, *, http: httpx.AsyncClient) -> TokenValidator:
        jwks = JwksCache(
            http=http,
            authority=settings.entra_authority_base,
            max_age_seconds=settings.jwks_max_age_hours * 3600,
            min_refresh_seconds=settings.jwks_min_refresh_seconds,
        )
        return cls(
            jwks=jwks,
            audiences=settings.audiences,
            authority=settings.entra_authority_base,
            v1_issuer_host=settings.v1_issuer_base,
            leeway_seconds=settings.token_leeway_seconds,
        )

    async def validate(self, token: str) -> TokenClaims:
        kid: str | None = None
        try:
            kid = _read_kid(token)
            key = await self._jwks.get(kid)
            if key is None:
                raise _Refused("unknown signing key", "unknown_signing_key")
            claims = self._check_claims(_verify_signature(token, key), key, kid)
        except _Refused as refused:
            logger.info(
                "token refused: %s (kid=%s tid=%s oid=%s)", refused.reason, kid, refused.tid, refused.oid
            )
            raise AuthenticationFailed(refused.reason, code=refused.code) from None
        logger.info("token accepted (kid=%s tid=%s oid=%s)", kid, claims.tid, claims.oid)
        return claims

    def _check_claims(self, payload: dict[str, Any], key: SigningKey, kid: str) -> TokenClaims:
        exp = self._check_times(payload)
        version = payload.get("ver")
        if version not in ("1.0", "2.0"):
            raise _Refused("unsupported token version", "unsupported_token_version")
        tid = _guid(payload.get("tid"), "tid")
        self._check_issuer(payload.get("iss"), version, tid, key)
        aud = self._check_audience(payload.get("aud"), tid)
        oid = _guid(payload.get("oid"), "oid", tid=tid)
        app_id = payload.get("appid") if version == "1.0" else payload.get("azp")
        roles = payload.get("roles")
        return TokenClaims(
            tid=tid,
            oid=oid,
            aud=aud,
            issuer=payload["iss"],
            version=version,
            kid=kid,
            app_id=app_id if isinstance(app_id, str) else None,
            xms_mirid=_optional_str(payload.get("xms_mirid")),
            roles=tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else (),
            expires_at=datetime.fromtimestamp(exp, UTC),
        )

    def _check_times(self, payload: dict[str, Any]) -> float:
        exp, nbf, now = payload.get("exp"), payload.get("nbf"), self._now()
        if not _is_number(exp):
            raise _Refused("missing expiry", "missing_claim")
        if now >= exp + self._leeway:
            raise _Refused("token expired", "token_expired")
        if nbf is not None and (not _is_number(nbf) or now + self._leeway < nbf):
            raise _Refused("token not yet valid", "token_not_yet_valid")
        return float(exp)

    def _check_issuer(self, iss: Any, version: str, tid: str, key: SigningKey) -> None:
        v2_issuer = f"{self._authority}/{tid}/v2.0"
        expected = f"{self._v1_issuer_host}/{tid}/" if version == "1.0" else v2_issuer
        # Exact match against the token's own tenant: a valid token of tenant A never passes as tenant B.
        if iss != expected:
            raise _Refused("invalid issuer", "invalid_issuer", tid=tid)
        if key.issuer is not None:
            # The key's issuer names tenants (v2 form) allowed to use it; `{tenantid}` means any tenant.
            allowed = key.issuer.replace("{tenantid}", tid)
            if allowed not in (iss, v2_issuer):
                raise _Refused("invalid issuer", "invalid_issuer", tid=tid)

    def _check_audience(self, aud: Any, tid: str) -> str:
        candidates = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        for candidate in candidates:
            if isinstance(candidate, str) and candidate in self._audiences:
                return candidate
        raise _Refused("invalid audience", "invalid_audience", tid=tid)


def _read_kid(token: str) -> str:
    # Refuse before any parsing or crypto: bounded size, strict compact-JWS shape.
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not _SHAPE.fullmatch(token):
        raise _Refused("malformed token", "malformed_token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise _Refused("malformed token", "malformed_token") from None
    # Only RS256: never let the header choose the algorithm or key type (alg=none, HS256 with the public key).
    if header.get("alg") != "RS256" or "crit" in header:
        raise _Refused("unsupported algorithm", "unsupported_algorithm")
    kid = header.get("kid")
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise _Refused("missing or invalid key id", "invalid_key_id")
    return kid


def _verify_signature(token: str, key: SigningKey) -> dict[str, Any]:
    try:
        payload: dict[str, Any] = jwt.decode(token, key.key, algorithms=["RS256"], options=_PYJWT_OPTIONS)
    except jwt.InvalidSignatureError:
        raise _Refused("invalid signature", "invalid_signature") from None
    except jwt.InvalidAlgorithmError:
        raise _Refused("unsupported algorithm", "unsupported_algorithm") from None
    except jwt.PyJWTError:
        raise _Refused("malformed token", "malformed_token") from None
    return payload


def _guid(value: Any, claim: str, *, tid: str | None = None) -> str:
    if not isinstance(value, str) or not _GUID.fullmatch(value):
        raise _Refused(f"invalid {claim}", f"invalid_{claim}", tid=tid)
    return value.lower()


def _is_number(value: Any) -> TypeGuard[float]:
    # NaN would pass every comparison; huge values overflow datetime.
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= _MAX_TIMESTAMP
    )


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
