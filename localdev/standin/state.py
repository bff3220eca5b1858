"""Configuration and the shared state of one stand-in: keys, identities, ARM resources, token minting."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from localdev.standin.app_registrations import AppRegistrations
from localdev.standin.arm_store import ArmStore
from localdev.standin.directory import Directory, seed_users
from localdev.standin.identities import IdentityRegistry, ManagedIdentity, stable_guid
from localdev.standin.sign_ins import SignIns
from localdev.standin.signing import KeyRing, SigningKey, UnknownSigningKey, b64url

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

ARM_AUDIENCES = frozenset(
    {
        "https://management.azure.com",
        "https://management.azure.com/",
        "https://management.core.windows.net",
        "https://management.core.windows.net/",
    }
)

# Entra adds `xms_mirid` only for first-party (Microsoft) resources; compared without a trailing slash.
_MICROSOFT_AUDIENCES = frozenset(
    {
        "https://management.azure.com",
        "https://management.core.windows.net",
        "https://vault.azure.net",
        "https://storage.azure.com",
        "https://graph.microsoft.com",
        "https://graph.windows.net",
        "https://database.windows.net",
        "https://servicebus.azure.net",
        "https://eventhubs.azure.net",
        "https://cognitiveservices.azure.com",
        "https://monitor.azure.com",
        "20e940b3-4c77-4b0b-9a53-9e16a1b010a7",  # Marketplace Metering Service
    }
)

_PUBLISHER_SUBSCRIPTION = stable_guid("publisher-subscription")


def is_microsoft_audience(aud: str) -> bool:
    return aud.rstrip("/").lower() in _MICROSOFT_AUDIENCES


def audience_for(resource: str) -> str:
    return resource.removesuffix("/.default")


@dataclass(frozen=True)
class StandinConfig:
    """Everything configurable; defaults are stable across runs except the identity header."""

    identity_header: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    service_client_id: str = stable_guid("service-client")
    service_principal_id: str = stable_guid("service-principal")
    publisher_tenant_id: str = stable_guid("publisher-tenant")
    service_resource_id: str = (
        f"/subscriptions/{_PUBLISHER_SUBSCRIPTION}/resourceGroups/liutong-local"
        "/providers/Microsoft.Web/sites/liutong-provisioning"
    )
    # None means `{base_url}/sts`; set it to e.g. https://sts.windows.net to mimic Entra's v1 issuer exactly.
    v1_issuer_host: str | None = None
    token_lifetime_seconds: int = 3600
    # Resources (App ID URI or client ID) whose app registration accepts v2 tokens, mapped to that client ID.
    v2_resources: Mapping[str, str] = field(default_factory=dict)
    # Subscription -> tenant; unlisted subscriptions get a stable derived tenant.
    subscription_tenants: Mapping[str, str] = field(default_factory=dict)
    # Entra's device code flow: 15 minutes to sign in, poll every 5 seconds.
    device_code_lifetime_seconds: int = 900
    device_code_interval_seconds: int = 5


class TokenRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class StandinState:
    def __init__(self, base_url: str, config: StandinConfig | None = None, keys: KeyRing | None = None) -> None:
        self.config = config or StandinConfig()
        self.base_url = base_url.rstrip("/")
        self.keys = keys or KeyRing()
        self.identities = IdentityRegistry(
            ManagedIdentity(
                principal_id=self.config.service_principal_id,
                client_id=self.config.service_client_id,
                tenant_id=self.config.publisher_tenant_id,
                resource_id=self.config.service_resource_id,
            )
        )
        self.arm = ArmStore(self)
        self.app_registrations = AppRegistrations()
        self.directory = Directory()
        seed_users(self.directory, self.config.publisher_tenant_id)
        self.sign_ins = SignIns()
        # Set when the same state is also served over HTTPS (msal accepts only https authorities).
        self.tls_base_url: str | None = None

    def register_app_registration(
        self, *, client_id: str, secret: str, tenant_id: str, object_id: str | None = None
    ) -> str:
        """Lets `client_id` use the client-credentials grant with `secret`; returns its service principal's oid."""
        app = self.app_registrations.register(
            client_id=client_id, secret=secret, tenant_id=tenant_id, object_id=object_id
        )
        return app.object_id

    def grant_app_role(self, client_id: str, *, resource: str, role: str) -> None:
        """Assigns an app role of `resource` (App ID URI or client ID) to an app registration's service
        principal: its client-credentials tokens for that resource then carry `roles`."""
        app = self.app_registrations.get(client_id)
        if app is None:
            raise KeyError(f"no app registration {client_id}")
        self.directory.assign_app_role(app.object_id, resource=resource, role=role)

    def grant_user_app_role(self, user: str, *, resource: str, role: str) -> None:
        """Assigns an app role to a user (UPN or object ID): their delegated tokens carry `roles`."""
        found = self.directory.user(user)
        if found is None:
            raise KeyError(f"no user {user}")
        self.directory.assign_app_role(found.oid, resource=resource, role=role)

    # -- issuers and metadata -------------------------------------------------------------------------

    @property
    def v1_issuer_host(self) -> str:
        return (self.config.v1_issuer_host or f"{self.base_url}/sts").rstrip("/")

    def v1_issuer(self, tenant: str) -> str:
        return f"{self.v1_issuer_host}/{tenant}/"

    def v2_issuer(self, tenant: str) -> str:
        return f"{self.base_url}/{tenant}/v2.0"

    def endpoint_base(self, scheme: str) -> str:
        """Where metadata points clients: the listener they came in on. Issuers never change."""
        return self.tls_base_url if scheme == "https" and self.tls_base_url else self.base_url

    def tenant_for_subscription(self, subscription_id: str) -> str:
        for subscription, tenant in self.config.subscription_tenants.items():
            if subscription.lower() == subscription_id.lower():
                return tenant
        return stable_guid("subscription-tenant", subscription_id)

    # -- keys and tokens ------------------------------------------------------------------------------

    def rotate_signing_key(self) -> SigningKey:
        return self.keys.rotate()

    def mint_token(
        self,
        *,
        tid: str,
        oid: str,
        aud: str,
        client_id: str | None = None,
        ver: str = "1.0",
        lifetime_seconds: int = 3600,
        extra_claims: Mapping[str, Any] | None = None,
        xms_mirid: str | None = None,
    ) -> str:
        """An app-only access token as Entra would issue it; `extra_claims` override anything."""
        if ver not in ("1.0", "2.0"):
            raise ValueError(f"unsupported token version {ver!r}")
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": audience_for(aud),
            "iss": self.v1_issuer(tid) if ver == "1.0" else self.v2_issuer(tid),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_seconds,
        }
        app_id = client_id or stable_guid("client-of", oid)
        if ver == "1.0":
            claims |= {"appid": app_id, "appidacr": "2"}
        else:
            claims |= {"azp": app_id, "azpacr": "2"}
        claims |= {
            "idp": self.v1_issuer(tid),
            "idtyp": "app",
            "oid": oid,
            "sub": oid,
            "tid": tid,
            "uti": b64url(uuid.uuid4().bytes)[:22],
            "ver": ver,
        }
        if xms_mirid is not None and is_microsoft_audience(claims["aud"]):
            claims["xms_mirid"] = xms_mirid
        claims |= dict(extra_claims or {})
        return self.keys.sign(claims, include_x5t=ver == "1.0")

    def mint_for_identity(self, identity: ManagedIdentity, resource: str) -> tuple[str, int]:
        """What the managed-identity endpoint returns: the token and its expiry (epoch seconds)."""
        token = self.mint_app_token(
            tid=identity.tenant_id, oid=identity.principal_id, client_id=identity.client_id, resource=resource,
            xms_mirid=identity.resource_id,
        )
        return token, int(jwt.decode(token, options={"verify_signature": False})["exp"])

    def mint_app_token(
        self, *, tid: str, oid: str, client_id: str, resource: str, xms_mirid: str | None = None
    ) -> str:
        """An app-only token for `resource` (a scope's `/.default` stripped), v2 only if that resource's
        registration accepts v2 tokens, living `token_lifetime_seconds`."""
        aud = audience_for(resource)
        v2_client_id = self.v2_client_id(aud)
        roles = self.directory.app_roles(oid, aud)
        return self.mint_token(
            tid=tid,
            oid=oid,
            aud=v2_client_id or aud,
            client_id=client_id,
            ver="2.0" if v2_client_id else "1.0",
            lifetime_seconds=self.config.token_lifetime_seconds,
            xms_mirid=xms_mirid,
            # As Entra: no `roles` claim at all unless the principal holds one.
            extra_claims={"roles": list(roles)} if roles else None,
        )

    def v2_client_id(self, aud: str) -> str | None:
        for resource, client_id in self.config.v2_resources.items():
            if aud.rstrip("/").lower() in (resource.rstrip("/").lower(), client_id.lower()):
                return client_id
        api = self.directory.api(aud)
        return api.client_id if api is not None and api.v2 else None

    def verify_token(self, token: str, *, audiences: frozenset[str]) -> dict[str, Any]:
        """Claims of a token this stand-in minted, or TokenRejected with ARM's error code."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self.keys.public_key_for(str(kid))
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                options={"verify_aud": False, "require": ["exp", "iss", "tid"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise TokenRejected("ExpiredAuthenticationToken", "The access token has expired.") from error
        except (jwt.PyJWTError, UnknownSigningKey) as error:
            raise TokenRejected("InvalidAuthenticationToken", "The access token is invalid.") from error
        if claims.get("aud") not in audiences:
            raise TokenRejected(
                "InvalidAuthenticationTokenAudience",
                "The access token has been obtained for wrong audience or resource "
                f"'{claims.get('aud')}'. It should exactly match one of the allowed audiences.",
            )
        tid = str(claims["tid"])
        if claims["iss"] not in (self.v1_issuer(tid), self.v2_issuer(tid)):
            raise TokenRejected(
                "InvalidAuthenticationTokenTenant", "The access token is from the wrong issuer."
            )
        return claims
