"""The service's own Entra credentials: its managed identity, and optionally an app registration."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import msal
from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError
from azure.keyvault.secrets.aio import SecretClient
from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS

from core.ca_bundle import CaBundleSession
from core.settings import Settings


async def arm_credential(
    settings: Settings,
    *,
    service: AsyncTokenCredential,
    secret_client_kwargs: Mapping[str, Any] | None = None,
    msal_verify: bool | str = True,
) -> AsyncTokenCredential:
    """The credential for reading customers' managed applications from ARM.

    By default the service's managed identity; with `arm_credential=msal`, the publisher's
    app registration (the one in the plan's authorizations), its secret read from Key Vault.
    `secret_client_kwargs` go to the Key Vault SecretClient and `msal_verify` (a CA bundle path)
    to msal, for local stand-ins with self-signed certificates.
    """
    if settings.arm_credential == "managed_identity":
        return service
    if not (settings.arm_tenant_id and settings.arm_client_id and settings.arm_client_secret_name):
        raise ValueError("arm_credential=msal needs arm_tenant_id, arm_client_id and arm_client_secret_name")
    if not settings.key_vault_url:
        raise ValueError("arm_credential=msal reads its client secret from Key Vault: set key_vault_url")
    async with SecretClient(
        vault_url=settings.key_vault_url, credential=service, **dict(secret_client_kwargs or {})
    ) as secrets:
        secret = await secrets.get_secret(settings.arm_client_secret_name)
    if not secret.value:
        raise ValueError("the ARM client secret in Key Vault is empty")
    authority = f"{settings.entra_authority_base}/{settings.arm_tenant_id}"
    # The constructor fetches the tenant's OpenID configuration: blocking I/O.
    app = await asyncio.to_thread(
        msal.ConfidentialClientApplication,
        client_id=settings.arm_client_id,
        client_credential=secret.value,
        authority=authority,
        instance_discovery=_instance_discovery(authority),
        verify=msal_verify,
        timeout=settings.http_timeout_seconds,
        http_client=CaBundleSession(msal_verify) if isinstance(msal_verify, str) else None,
    )
    return MsalClientCredential(app)


def _instance_discovery(authority: str) -> bool | None:
    """msal's default (None) for Entra's own hosts; off for others (a stand-in), or msal would ask
    login.microsoftonline.com to vouch for them and refuse them as `invalid_instance`."""
    return None if urlsplit(authority).hostname in WELL_KNOWN_AUTHORITY_HOSTS else False


class MsalClientCredential(AsyncTokenCredential):
    """Adapts msal's synchronous client-credentials flow (its own token cache) to azure-core."""

    def __init__(self, app: msal.ConfidentialClientApplication) -> None:
        self._app = app

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        result = await asyncio.to_thread(self._app.acquire_token_for_client, scopes=list(scopes))
        if "access_token" not in result:
            # Entra's error_description names the app, never the secret.
            detail = result.get("error_description") or "no token"
            raise ClientAuthenticationError(f"msal: {result.get('error', 'no token')}: {detail}")
        expires_at = int(time.time()) + int(result.get("expires_in", 0))
        return AccessToken(result["access_token"], expires_at)

    async def close(self) -> None:
        self._app.http_client.close()

    async def __aexit__(self, *args: Any) -> None:
        await self.close()
