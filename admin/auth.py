"""Admin authentication: an Entra token of the publisher's tenant carrying the admin app role."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx

from admin.settings import AdminSettings
from core.errors import AuthenticationFailed, PermissionDenied
from core.settings import Settings
from keystore.keys import KEY_PREFIX
from provisioning.entra import TokenValidator
from provisioning.jwks import JwksCache

logger = logging.getLogger("liutong.admin")


@dataclass(frozen=True)
class Operator:
    """Who called the admin API: recorded as the actor of every audit event."""

    tid: str
    oid: str


class AdminAuthenticator:
    def __init__(self, *, validator: TokenValidator, tenant_id: str, role: str) -> None:
        if not tenant_id:
            raise ValueError("the admin tenant must be configured")
        self._validator = validator
        self._tenant = tenant_id.lower()
        self._role = role

    @classmethod
    def from_settings(
        cls, settings: Settings, admin: AdminSettings, *, http: httpx.AsyncClient
    ) -> AdminAuthenticator:
        jwks = JwksCache(
            http=http,
            authority=settings.entra_authority_base,
            max_age_seconds=settings.jwks_max_age_hours * 3600,
            min_refresh_seconds=settings.jwks_min_refresh_seconds,
        )
        validator = TokenValidator(
            jwks=jwks,
            audiences=admin.audiences,
            authority=settings.entra_authority_base,
            v1_issuer_host=settings.v1_issuer_base,
            leeway_seconds=settings.token_leeway_seconds,
        )
        return cls(validator=validator, tenant_id=admin.tenant_id, role=admin.role)

    async def authenticate(self, token: str) -> Operator:
        # A Liutong key is never an admin credential; say so without echoing it.
        if token.startswith(KEY_PREFIX):
            raise AuthenticationFailed("API keys cannot be used for the admin API.", code="invalid_token")
        claims = await self._validator.validate(token)
        if claims.tid != self._tenant:
            logger.info("admin refused: foreign tenant (tid=%s oid=%s)", claims.tid, claims.oid)
            raise PermissionDenied("This tenant may not use the admin API.", code="tenant_not_allowed")
        if self._role not in claims.roles:
            logger.info("admin refused: missing role (tid=%s oid=%s)", claims.tid, claims.oid)
            raise PermissionDenied("The admin role is required.", code="missing_role")
        return Operator(tid=claims.tid, oid=claims.oid)
