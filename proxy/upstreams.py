"""The upstreams file: which provider serves each model alias, and how Liutong authenticates to it.

Validated strictly (unknown fields, bad URLs and plain http to anything but loopback are refused) so a
typo fails the start, not a customer's call. See config/upstreams.json for a documented sample.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl

ALIAS_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Described(_Strict):
    # JSON has no comments: operators explain an entry here.
    description: str | None = Field(default=None, max_length=1000)


class Timeouts(_Strict):
    """Overrides of LIUTONG_UPSTREAM_CONNECT/READ_TIMEOUT_SECONDS for one alias."""

    connect_seconds: float | None = Field(default=None, gt=0)
    read_seconds: float | None = Field(default=None, gt=0)


class NoCredential(_Strict):
    """For upstreams that need no key (the local mock, a private gateway on a trusted network)."""

    type: Literal["none"] = "none"


class KeyVaultSecretCredential(_Strict):
    """An API key kept in Key Vault (LIUTONG_KEY_VAULT_URL), read with the service's own identity."""

    type: Literal["key_vault_secret"]
    secret_name: str = Field(pattern=r"^[0-9A-Za-z-]{1,127}$")


Credential = Annotated[NoCredential | KeyVaultSecretCredential, Field(discriminator="type")]


def _require_safe_url(url: HttpUrl) -> HttpUrl:
    if url.username or url.password:
        raise ValueError("credentials never go in the URL: use a credential entry")
    if url.query or url.fragment:
        raise ValueError("the URL must not carry a query or fragment")
    if url.scheme != "https" and (url.host or "") not in _LOOPBACK_HOSTS:
        raise ValueError("only loopback upstreams may use plain http")
    return url


SafeUrl = Annotated[HttpUrl, AfterValidator(_require_safe_url)]


class OpenAIUpstream(_Described):
    """An OpenAI-compatible API: `base_url` is what the openai SDK calls base_url (it ends in /v1)."""

    kind: Literal["openai"]
    base_url: SafeUrl
    model: str = Field(min_length=1, max_length=200)
    credential: Credential = NoCredential()
    # OpenAI's own account selectors for *Liutong's* upstream account; the caller's are never forwarded.
    organization: str | None = Field(default=None, min_length=1, max_length=200)
    project: str | None = Field(default=None, min_length=1, max_length=200)
    timeouts: Timeouts = Timeouts()
    created: int = Field(default=0, ge=0)


class AzureOpenAIUpstream(_Described):
    """An Azure OpenAI deployment, called with an Entra token of the service's identity (never a key)."""

    kind: Literal["azure_openai"]
    endpoint: SafeUrl
    deployment: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    api_version: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}(-preview)?$")
    timeouts: Timeouts = Timeouts()
    created: int = Field(default=0, ge=0)


Upstream = Annotated[OpenAIUpstream | AzureOpenAIUpstream, Field(discriminator="kind")]


class UpstreamsConfig(_Described):
    models: dict[Annotated[str, Field(pattern=ALIAS_PATTERN)], Upstream] = Field(min_length=1)

    @classmethod
    def load(cls, path: str | Path) -> UpstreamsConfig:
        return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
