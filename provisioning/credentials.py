"""The service's own Entra credentials: its managed identity, and optionally an app registration."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msal
from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError
from azure.identity.aio import ManagedIdentityCredential
from azure.keyvault.secrets.aio import SecretClient

from core.settings import Settings


def service_credential(settings: Settings) -> AsyncTokenCredential:
    """The Function app's (user-assigned or system-assigned) managed identity."""
    return ManagedIdentityCredential(client_id=settings.managed_identity_client_id or None)


async def arm_credential(settings: Settings, *, service: AsyncTokenCredential) -> AsyncTokenCredential:
    """The credential for reading customers' managed applications from ARM.

    By default the service's managed identity; with `arm_credential=msal`, the publisher's
    app registration (the one in the plan's authorizations), its secret read from Key Vault.
    """
    if settings.arm_credential == "managed_identity":
        return service
    if not (settings.arm_tenant_id and settings.arm_client_id and settings.arm_client_secret_name):
        raise ValueError("arm_credential=msal needs arm_tenant_id, arm_client_id and arm_client_secret_name")
    if not settings.key_vault_url:
        raise ValueError("arm_credential=msal reads its client secret from Key Vault: set key_vault_url")
    async with SecretClient(vault_url=settings.key_vault_url, credential=service) as secrets:
        secret = await secrets.get_secret(settings.arm_client_secret_name)
    if not secret.value:
        raise ValueError("the ARM client secret in Key Vault is empty")
    app = msal.ConfidentialClientApplication(
        client_id=settings.arm_client_id,
        client_credential=secret.value,
        authority=f"{settings.entra_authority_base}/{settings.arm_tenant_id}",
    )
    return MsalClientCredential(app)


class MsalClientCredential(AsyncTokenCredential):
    """Adapts msal's synchronous client-credentials flow (its own token cache) to azure-core."""

    def __init__(self, app: msal.ConfidentialClientApplication) -> None:
        self._app = app

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        result = await asyncio.to_thread(self._app.acquire_token_for_client, scopes=list(scopes))
        if "access_token" not in result:
            raise ClientAuthenticationError(f"msal: {result.get('error', 'no token')}")
        expires_at = int(time.time()) + int(result.get("expires_in", 0))
        return AccessToken(result["access_token"], expires_at)

    async def close(self) -> None:
        return None

    async def __aexit__(self, *args: Any) -> None:
        await self.close()
