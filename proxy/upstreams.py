"""The upstreams file: which provider serves each model alias, and how Liutong authenticates to it.

Validated strictly (unknown fields, bad URLs and plain http to anything but loopback are refused) so a
typo fails the start, not a customer's call. See config/upstreams.json for a documented sample.

Besides where to send a call, each alias may state what the model can do (for auto mode, proxy.auto) and its
lifecycle (proxy.lifecycle): deprecated_at, sunset_at (at least SUNSET_NOTICE after it unless `immediate`)
and a replacement alias of the same file.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, HttpUrl, model_validator

ALIAS_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
# The caller's `model` that asks Liutong to choose (proxy.auto): never an alias of the file.
AUTO_ALIAS = "auto"
# The least notice between an alias's deprecation and its sunset, unless it says `immediate`.
SUNSET_NOTICE = timedelta(days=30)
# The media ones say what an alias is for; auto mode never picks for media endpoints.
Capability = Literal["chat", "responses", "embeddings", "vision", "audio", "tools", "images", "transcription", "speech"]
# What an alias can do when its entry does not say: a text model for chat and the Responses API.
DEFAULT_CAPABILITIES: tuple[Capability, ...] = ("chat", "responses")


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


class _Model(_Described):
    """What auto mode needs to know about the model, and its lifecycle; common to every kind of upstream."""

    capabilities: tuple[Capability, ...] = Field(default=DEFAULT_CAPABILITIES, min_length=1)
    context_tokens: int | None = Field(default=None, gt=0)  # prompt + output; None: not limited by auto mode
    max_output_tokens: int | None = Field(default=None, gt=0)
    deprecated_at: AwareDatetime | None = None
    sunset_at: AwareDatetime | None = None
    replacement: str | None = Field(default=None, pattern=ALIAS_PATTERN)
    immediate: bool = False  # a sunset with less than SUNSET_NOTICE: legal reasons, or the provider withdrew it

    @model_validator(mode="after")
    def _lifecycle(self) -> _Model:
        if len(set(self.capabilities)) != len(self.capabilities):
            raise ValueError("capabilities must not repeat")
        if self.deprecated_at is None and (self.sunset_at or self.replacement or self.immediate):
            raise ValueError("sunset_at, replacement and immediate need deprecated_at")
        if self.immediate and self.sunset_at is None:
            raise ValueError("immediate needs sunset_at")
        if self.sunset_at is not None and self.deprecated_at is not None:
            notice = timedelta(0) if self.immediate else SUNSET_NOTICE
            if self.sunset_at < self.deprecated_at + notice:
                raise ValueError(
                    f"sunset_at must be at least {notice.days} days after deprecated_at "
                    "(set immediate: true only for a legal or provider withdrawal)"
                )
        return self

    def deprecated(self, now: datetime) -> bool:
        return self.deprecated_at is not None and now >= self.deprecated_at

    def sunset(self, now: datetime) -> bool:
        return self.sunset_at is not None and now >= self.sunset_at


class OpenAIUpstream(_Model):
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


class AzureOpenAIUpstream(_Model):
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

    @model_validator(mode="after")
    def _replacements(self) -> UpstreamsConfig:
        if AUTO_ALIAS in self.models:
            raise ValueError(f"{AUTO_ALIAS!r} is reserved for auto mode: it cannot be an alias")
        for alias, upstream in self.models.items():
            if upstream.replacement is not None:
                _check_replacement(alias, upstream, self.models.get(upstream.replacement))
        return self

    @classmethod
    def load(cls, path: str | Path) -> UpstreamsConfig:
        return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))


def upstream_model(upstream: OpenAIUpstream | AzureOpenAIUpstream) -> str:
    """The provider's name for the model: the upstream `model`, or the Azure deployment."""
    return upstream.model if isinstance(upstream, OpenAIUpstream) else upstream.deployment


def _check_replacement(alias: str, upstream: _Model, replacement: _Model | None) -> None:
    if replacement is None or upstream.replacement == alias:
        raise ValueError(f"the replacement of {alias!r} must be another alias of this file")
    gone, own = replacement.sunset_at, upstream.sunset_at
    if gone is not None and (own is None or gone <= own):
        raise ValueError(f"the replacement of {alias!r} is sunset before (or with) it")
