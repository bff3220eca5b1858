"""The master secret marketplace keys are derived from: Key Vault in Azure, a setting locally.

Every derived key records the master version it came from, so a master rotation leaves old
keys derivable (while that version exists) and new keys come from the current version.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import KeyVaultSecret
from azure.keyvault.secrets.aio import SecretClient

from core.errors import ServiceUnavailable
from core.settings import Settings

MIN_SECRET_CHARS = 32


@dataclass(frozen=True)
class MasterSecret:
    version: str
    value: bytes = field(repr=False)


class MasterSecretProvider(Protocol):
    async def current(self) -> MasterSecret: ...

    async def get(self, version: str) -> MasterSecret | None:
        """None when that version no longer exists or is disabled: callers move to current()."""
        ...

    async def close(self) -> None: ...


class SettingMasterSecret:
    """A master secret from an app setting; changing the setting is a master rotation."""

    def __init__(self, value: str) -> None:
        if len(value) < MIN_SECRET_CHARS:
            raise ValueError(f"the master secret must be at least {MIN_SECRET_CHARS} characters")
        version = "s" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]
        self._secret = MasterSecret(version=version, value=value.encode("utf-8"))

    async def current(self) -> MasterSecret:
        return self._secret

    async def get(self, version: str) -> MasterSecret | None:
        return self._secret if version == self._secret.version else None

    async def close(self) -> None:
        return None


def _is_disabled_error(error: HttpResponseError) -> bool:
    # Key Vault answers 403 Forbidden with inner code SecretDisabled for a disabled version.
    inner = error.error.innererror if error.error is not None else {}
    return error.status_code == 403 and isinstance(inner, dict) and inner.get("code") == "SecretDisabled"


class KeyVaultMasterSecret:
    """The master secret from Key Vault. current() is cached briefly; versions are immutable."""

    def __init__(
        self,
        *,
        vault_url: str,
        secret_name: str,
        credential: AsyncTokenCredential,
        cache_seconds: float = 300,
        clock: Callable[[], float] = time.monotonic,
        **client_kwargs: Any,
    ) -> None:
        self._client = SecretClient(vault_url, credential, **client_kwargs)
        self._name = secret_name
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._current: tuple[float, MasterSecret] | None = None
        self._versions: dict[str, MasterSecret] = {}
        self._lock = asyncio.Lock()

    async def current(self) -> MasterSecret:
        async with self._lock:  # one Key Vault round trip per expiry, not one per waiting caller
            if self._current is not None and self._clock() - self._current[0] < self._cache_seconds:
                return self._current[1]
            secret = await self._fetch(None)
            if secret is None:
                raise ServiceUnavailable("The key master secret is missing or disabled in Key Vault.")
            self._current = (self._clock(), secret)
            return secret

    async def get(self, version: str) -> MasterSecret | None:
        cached = self._versions.get(version)
        if cached is not None:
            return cached
        return await self._fetch(version)

    async def close(self) -> None:
        await self._client.close()

    async def _fetch(self, version: str | None) -> MasterSecret | None:
        try:
            secret = await self._client.get_secret(self._name, version)
        except ResourceNotFoundError:
            return None
        except HttpResponseError as error:
            if _is_disabled_error(error):
                return None
            raise ServiceUnavailable(f"Key Vault refused the request (HTTP {error.status_code}).") from error
        except (AzureError, OSError, TimeoutError) as error:
            raise ServiceUnavailable(f"Key Vault is unavailable ({type(error).__name__}).") from error
        return self._remember(secret)

    def _remember(self, secret: KeyVaultSecret) -> MasterSecret | None:
        if secret.properties.enabled is False or not secret.value or not secret.properties.version:
            return None
        master = MasterSecret(version=secret.properties.version, value=secret.value.encode("utf-8"))
        self._versions[master.version] = master
        return master


def master_secret_provider(
    settings: Settings, *, credential: AsyncTokenCredential | None, **client_kwargs: Any
) -> MasterSecretProvider:
    """Key Vault when LIUTONG_KEY_VAULT_URL is set, else the LIUTONG_MASTER_SECRET setting."""
    if settings.key_vault_url:
        if credential is None:
            raise ValueError("a credential is required to read the master secret from Key Vault")
        return KeyVaultMasterSecret(
            vault_url=settings.key_vault_url,
            secret_name=settings.master_secret_name,
            credential=credential,
            **client_kwargs,
        )
    if settings.master_secret is not None:
        return SettingMasterSecret(settings.master_secret.get_secret_value())
    raise ValueError("Set LIUTONG_KEY_VAULT_URL (Azure) or LIUTONG_MASTER_SECRET (local).")
