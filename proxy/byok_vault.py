"""Where customers' own provider credentials (BYOK) live: Key Vault, one secret per team and alias.

LIUTONG_BYOK_VAULT_URL names the vault (default: LIUTONG_KEY_VAULT_URL); the service's managed identity needs
Key Vault Secrets Officer there, since it sets and deletes secrets, not only reads them. Locally the vault is
the HTTPS stand-in (localdev.keyvault_standin) and LIUTONG_BYOK_VAULT_CA_BUNDLE is its certificate.
Errors never carry a secret's value; Azure's own error text is not passed on.
"""

from __future__ import annotations

from typing import Any, Protocol

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.keyvault.secrets.aio import SecretClient

from core.errors import ServiceUnavailable, UpstreamUnavailable
from core.settings import Settings

CONTENT_TYPE = "liutong/byok-provider-key"


class ByokVault(Protocol):
    async def get_secret(self, name: str) -> str: ...

    async def set_secret(self, name: str, value: str, *, tags: dict[str, str]) -> None: ...

    async def delete_secret(self, name: str) -> None:
        """Idempotent: a secret that is already gone is fine."""
        ...

    async def close(self) -> None: ...


class KeyVaultByok:
    def __init__(self, *, vault_url: str, credential: AsyncTokenCredential, **client_kwargs: Any) -> None:
        self._client = SecretClient(vault_url, credential, **client_kwargs)

    async def get_secret(self, name: str) -> str:
        try:
            secret = await self._client.get_secret(name)
        except (AzureError, OSError, TimeoutError) as error:
            raise UpstreamUnavailable(
                f"Could not read the team's own provider credential ({type(error).__name__}).",
                code="upstream_credential",
            ) from error
        if not secret.value:
            raise UpstreamUnavailable("The team's own provider credential is missing.", code="upstream_credential")
        return secret.value

    async def set_secret(self, name: str, value: str, *, tags: dict[str, str]) -> None:
        try:
            await self._client.set_secret(name, value, content_type=CONTENT_TYPE, tags=tags)
        except (AzureError, OSError, TimeoutError) as error:
            raise _unavailable(error) from error

    async def delete_secret(self, name: str) -> None:
        try:
            await self._client.delete_secret(name, _polling_interval=1)
        except ResourceNotFoundError:
            return
        except (AzureError, OSError, TimeoutError) as error:
            raise _unavailable(error) from error

    async def close(self) -> None:
        await self._client.close()


def _unavailable(error: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(f"Key Vault is unavailable for BYOK credentials ({type(error).__name__}).")


def byok_vault(settings: Settings, *, credential: AsyncTokenCredential) -> KeyVaultByok | None:
    """None when no vault is configured: BYOK is then unavailable (registration answers 503)."""
    url = settings.byok_vault_url or settings.key_vault_url
    if not url:
        return None
    options: dict[str, Any] = {}
    if settings.byok_vault_ca_bundle:
        # A local stand-in: its own CA, and a host that is not *.vault.azure.net.
        options = {"connection_verify": settings.byok_vault_ca_bundle, "verify_challenge_resource": False}
    return KeyVaultByok(vault_url=url, credential=credential, **options)
