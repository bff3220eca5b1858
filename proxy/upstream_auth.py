"""How Liutong proves itself to an upstream: nothing, a Key Vault held API key, or an Entra token.

Credentials are fetched once and cached, so the hot path adds no round trip. After an upstream
rejects a credential, `invalidate()` makes the next call fetch it again (a rotated key, a revoked token).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError
from azure.keyvault.secrets.aio import SecretClient

from core.errors import UpstreamUnavailable

AZURE_OPENAI_SCOPE = "https://cognitiveservices.azure.com/.default"
# Refresh an Entra token this long before it expires, so no request leaves with a dying token.
TOKEN_REFRESH_MARGIN_SECONDS = 300


class SecretSource(Protocol):
    async def get_secret(self, name: str) -> str: ...

    async def close(self) -> None: ...


class KeyVaultSecrets:
    """Secrets from Key Vault, read with the service's credential."""

    def __init__(self, *, vault_url: str, credential: AsyncTokenCredential, **client_kwargs: Any) -> None:
        self._client = SecretClient(vault_url, credential, **client_kwargs)

    async def get_secret(self, name: str) -> str:
        secret = await self._client.get_secret(name)
        if not secret.value:
            raise UpstreamUnavailable("An upstream credential is missing in Key Vault.", code="upstream_credential")
        return secret.value

    async def close(self) -> None:
        await self._client.close()


class UpstreamAuth(Protocol):
    async def headers(self) -> Mapping[str, str]: ...

    def invalidate(self) -> None: ...


class NoAuth:
    async def headers(self) -> Mapping[str, str]:
        return {}

    def invalidate(self) -> None:
        return None


def _credential_unavailable(error: Exception) -> UpstreamUnavailable:
    return UpstreamUnavailable(
        f"Could not obtain Liutong's credential for the upstream model provider ({type(error).__name__}).",
        code="upstream_credential",
    )


class ApiKeyAuth:
    """`Authorization: Bearer <key>` with the key read from a secret source once."""

    def __init__(self, secrets: SecretSource, secret_name: str) -> None:
        self._secrets = secrets
        self._name = secret_name
        self._headers: dict[str, str] | None = None
        self._lock = asyncio.Lock()

    async def headers(self) -> Mapping[str, str]:
        if self._headers is not None:
            return self._headers
        async with self._lock:  # one Key Vault read, however many calls arrive at once
            if self._headers is None:
                try:
                    key = await self._secrets.get_secret(self._name)
                except (AzureError, OSError, TimeoutError) as error:
                    raise _credential_unavailable(error) from error
                self._headers = {"authorization": f"Bearer {key}"}
            return self._headers

    def invalidate(self) -> None:
        self._headers = None


class EntraTokenAuth:
    """`Authorization: Bearer <Entra token>` for Azure OpenAI; the token is reused until near expiry."""

    def __init__(
        self,
        credential: AsyncTokenCredential,
        *,
        scope: str = AZURE_OPENAI_SCOPE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credential = credential
        self._scope = scope
        self._clock = clock
        self._token: AccessToken | None = None
        self._headers: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def headers(self) -> Mapping[str, str]:
        if self._fresh():
            return self._headers
        async with self._lock:
            if not self._fresh():
                try:
                    self._token = await self._credential.get_token(self._scope)
                except (AzureError, OSError, TimeoutError) as error:
                    raise _credential_unavailable(error) from error
                self._headers = {"authorization": f"Bearer {self._token.token}"}
            return self._headers

    def invalidate(self) -> None:
        self._token = None

    def _fresh(self) -> bool:
        token = self._token
        return token is not None and token.expires_on - self._clock() > TOKEN_REFRESH_MARGIN_SECONDS
