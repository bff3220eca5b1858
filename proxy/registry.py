"""Model alias → where to send the call, what to call the model there, and how to authenticate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from azure.core.credentials_async import AsyncTokenCredential

from core.settings import Settings
from proxy.upstream_auth import ApiKeyAuth, EntraTokenAuth, KeyVaultSecrets, NoAuth, SecretSource, UpstreamAuth
from proxy.upstreams import AzureOpenAIUpstream, KeyVaultSecretCredential, OpenAIUpstream, Timeouts, UpstreamsConfig

CHAT = "chat/completions"
EMBEDDINGS = "embeddings"
RESPONSES = "responses"
IMAGES = "images/generations"
TRANSCRIPTIONS = "audio/transcriptions"
SPEECH = "audio/speech"
# Paths under an Azure OpenAI deployment (…/openai/deployments/{name}/{path}?api-version=). Azure serves the
# Responses API only on its v1 surface (…/openai/v1/responses), where the body's model names the deployment.
DEPLOYMENT_PATHS = (CHAT, EMBEDDINGS, IMAGES, TRANSCRIPTIONS, SPEECH)
JSON = "application/json"


@dataclass(frozen=True)
class UpstreamTarget:
    alias: str
    urls: Mapping[str, str]  # CHAT, EMBEDDINGS, RESPONSES, … → absolute URL
    model: str | None  # the upstream's name for the model; None leaves the body's `model` as sent
    timeout: aiohttp.ClientTimeout
    auth: UpstreamAuth = field(repr=False)
    fixed_headers: Mapping[str, str] = field(default_factory=dict)
    created: int = 0
    # Per path, a model name the body must carry instead of `model` (Azure's v1 Responses: the deployment).
    path_models: Mapping[str, str] = field(default_factory=dict)

    def model_for(self, path: str) -> str | None:
        return self.path_models.get(path, self.model)

    async def headers(
        self, *, stream: bool, content_type: str = JSON, accept: str | None = None, auth: UpstreamAuth | None = None
    ) -> dict[str, str]:
        """`auth` replaces Liutong's credential for one call (a team's own key: proxy.byok)."""
        headers = {
            "content-type": content_type,
            "accept": accept or ("text/event-stream" if stream else JSON),
            **self.fixed_headers,
        }
        headers.update(await (auth or self.auth).headers())
        return headers


def client_timeout(overrides: Timeouts, settings: Settings) -> aiohttp.ClientTimeout:
    connect = overrides.connect_seconds or settings.upstream_connect_timeout_seconds
    read = overrides.read_seconds or settings.upstream_read_timeout_seconds
    # No total: a long stream is fine as long as bytes keep arriving within `read`.
    return aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect, sock_read=read)


class UpstreamRegistry:
    def __init__(
        self,
        config: UpstreamsConfig,
        *,
        settings: Settings,
        credential: AsyncTokenCredential | None = None,
        secrets: SecretSource | None = None,
    ) -> None:
        self._config = config
        self._secrets = secrets
        self._entra: EntraTokenAuth | None = EntraTokenAuth(credential) if credential is not None else None
        self._api_keys: dict[str, ApiKeyAuth] = {}  # by secret name: aliases sharing a key read it once
        self._targets = {
            alias: self._target(alias, upstream, settings) for alias, upstream in config.models.items()
        }

    @classmethod
    def from_settings(
        cls, settings: Settings, *, credential: AsyncTokenCredential | None, **secret_client_kwargs: Any
    ) -> UpstreamRegistry:
        """The file at LIUTONG_UPSTREAMS_FILE; Key Vault (LIUTONG_KEY_VAULT_URL) only if an alias needs it."""
        config = UpstreamsConfig.load(settings.upstreams_file)
        secrets: SecretSource | None = None
        if settings.key_vault_url and credential is not None and _needs_secrets(config):
            secrets = KeyVaultSecrets(vault_url=settings.key_vault_url, credential=credential, **secret_client_kwargs)
        return cls(config, settings=settings, credential=credential, secrets=secrets)

    @property
    def config(self) -> UpstreamsConfig:
        """The upstreams file it was built from (model facts and lifecycle: proxy.routing reads them)."""
        return self._config

    def get(self, alias: str) -> UpstreamTarget | None:
        return self._targets.get(alias)

    def aliases(self) -> tuple[str, ...]:
        return tuple(self._targets)

    async def close(self) -> None:
        secrets, self._secrets = self._secrets, None  # closing twice is harmless
        if secrets is not None:
            await secrets.close()

    def _target(self, alias: str, upstream: OpenAIUpstream | AzureOpenAIUpstream, settings: Settings) -> UpstreamTarget:
        timeout = client_timeout(upstream.timeouts, settings)
        if isinstance(upstream, AzureOpenAIUpstream):
            if self._entra is None:
                raise ValueError(f"alias {alias!r} is an Azure OpenAI deployment: it needs the service credential")
            endpoint = str(upstream.endpoint).rstrip("/")
            base = f"{endpoint}/openai/deployments/{quote(upstream.deployment)}"
            query = f"?api-version={quote(upstream.api_version)}"
            urls = {path: f"{base}/{path}{query}" for path in DEPLOYMENT_PATHS}
            urls[RESPONSES] = f"{endpoint}/openai/v1/{RESPONSES}"
            return UpstreamTarget(
                alias, urls, None, timeout, self._entra, created=upstream.created,
                path_models={RESPONSES: upstream.deployment},
            )
        base = str(upstream.base_url).rstrip("/")
        urls = {path: f"{base}/{path}" for path in (*DEPLOYMENT_PATHS, RESPONSES)}
        fixed = {"openai-organization": upstream.organization, "openai-project": upstream.project}
        return UpstreamTarget(
            alias, urls, upstream.model, timeout, self._api_auth(alias, upstream),
            fixed_headers={name: value for name, value in fixed.items() if value}, created=upstream.created,
        )

    def _api_auth(self, alias: str, upstream: OpenAIUpstream) -> UpstreamAuth:
        if not isinstance(upstream.credential, KeyVaultSecretCredential):
            return NoAuth()
        if self._secrets is None:
            raise ValueError(f"alias {alias!r} reads its key from Key Vault: set LIUTONG_KEY_VAULT_URL")
        name = upstream.credential.secret_name
        return self._api_keys.setdefault(name, ApiKeyAuth(self._secrets, name))


def _needs_secrets(config: UpstreamsConfig) -> bool:
    return any(
        isinstance(u, OpenAIUpstream) and isinstance(u.credential, KeyVaultSecretCredential)
        for u in config.models.values()
    )
