"""The one typed settings object. Every field is an env var `LIUTONG_<NAME>`.

The same names appear in `local.settings.sample.json` and in the Bicep app settings;
a test keeps them in step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Relative config paths are relative to the app's root (the Functions host's cwd may differ).
APP_ROOT = Path(__file__).resolve().parent.parent
# A Key Vault reference that App Service failed to resolve reaches the app as its literal text.
_UNRESOLVED_KEY_VAULT_REFERENCE = "@Microsoft.KeyVault("


class Settings(BaseSettings):
    # Azure app settings left empty mean "unset" (e.g. the connection string, in Azure).
    model_config = SettingsConfigDict(env_prefix="LIUTONG_", extra="ignore", env_ignore_empty=True)

    # Storage: a connection string locally (Azurite), an endpoint + Entra credential in Azure.
    storage_connection_string: SecretStr | None = None
    storage_table_endpoint: str | None = None
    table_prefix: str = Field(default="liutong", pattern=r"^[A-Za-z][A-Za-z0-9]{0,39}$")

    # The service's own managed identity (user-assigned client ID; empty = system-assigned).
    managed_identity_client_id: str | None = None

    # Marketplace notification webhook shared secret (`?sig=`).
    webhook_secret: SecretStr = SecretStr("")

    # Key derivation master secret: Key Vault in Azure, a plain setting locally.
    key_vault_url: str | None = None
    master_secret_name: str = "liutong-key-master"  # noqa: S105 - a secret name, not a secret
    master_secret: SecretStr | None = None
    # Customers' own provider credentials (BYOK, proxy.byok_vault): empty = LIUTONG_KEY_VAULT_URL. The CA bundle is
    # for a local Key Vault stand-in only (its own certificate); empty in Azure.
    byok_vault_url: str | None = None
    byok_vault_ca_bundle: str | None = None

    # Key rotation of marketplace keys.
    key_rotation_days: float = Field(default=30, gt=0)
    key_rotation_grace_hours: float = Field(default=24, ge=0)

    # Entra token validation.
    entra_authority: str = "https://login.microsoftonline.com"
    entra_v1_issuer_host: str = "https://sts.windows.net"
    api_app_id_uri: str = ""
    api_client_id: str = ""
    jwks_max_age_hours: float = Field(default=24, gt=0)
    jwks_min_refresh_seconds: float = Field(default=60, ge=0)
    token_leeway_seconds: int = Field(default=300, ge=0, le=300)

    # Azure Resource Manager, for proving that a token belongs to a managed application.
    arm_endpoint: str = "https://management.azure.com"
    arm_credential: Literal["managed_identity", "msal"] = "managed_identity"
    arm_tenant_id: str | None = None
    arm_client_id: str | None = None
    arm_client_secret_name: str | None = None

    # OpenAI-compatible proxy.
    upstreams_file: str = "config/upstreams.json"
    plans_file: str = "config/plans.json"
    principal_cache_ttl_seconds: float = Field(default=30, ge=0)
    principal_negative_cache_ttl_seconds: float = Field(default=5, ge=0)
    proxy_max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    # Multipart uploads (audio transcriptions): OpenAI's own limit on an audio file.
    proxy_max_upload_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    upstream_connect_timeout_seconds: float = Field(default=10, gt=0)
    upstream_read_timeout_seconds: float = Field(default=300, gt=0)
    stream_drain_max_seconds: float = Field(default=60, ge=0)
    quota_sync_interval_seconds: float = Field(default=5, gt=0)
    # RPM/TPM shared by all instances (limits.leases): each instance holds at most this fraction of a key's limit, so
    # N instances admit at most N x that over what one would; during a storage outage each admits the outage share.
    rate_shared_budget: bool = True
    rate_lease_fraction: float = Field(default=0.01, gt=0, le=0.5)
    rate_outage_share: float = Field(default=1.0, gt=0, le=1)
    # Prepaid credit: a top-up without its own expiry expires this many days after it was bought.
    credit_expiry_days: int = Field(default=365, gt=0, le=3650)

    # Usage records.
    usage_durability: Literal["async", "sync"] = "async"
    usage_journal_dir: str = ""
    usage_batch_max: int = Field(default=100, gt=0, le=100)
    usage_flush_interval_ms: int = Field(default=50, gt=0)
    # Raw per-request rows are deleted after this many days, hourly aggregates after the second (>= the first).
    usage_raw_retention_days: int = Field(default=90, ge=2, le=3650)
    usage_aggregate_retention_days: int = Field(default=400, ge=2, le=3650)

    # Marketplace Metering Service.
    metering_endpoint: str = "https://marketplaceapi.microsoft.com"
    metering_credential: Literal["managed_identity", "msal"] = "managed_identity"

    # Admin API: only tokens of the publisher's tenant, for the admin app registration, with the role.
    admin_tenant_id: str = ""
    admin_app_id_uri: str = ""
    admin_client_id: str = ""
    admin_role: str = Field(default="Liutong.Admin", min_length=1)
    admin_rotation_grace_hours: float = Field(default=24, ge=0, le=24 * 30)

    # Metrics (core.metrics_export): "azure_monitor" in Azure; "prometheus" serves /metrics on the local host (and on
    # 127.0.0.1:<port> when the port is set); per-deployment series (hashed ids) only when asked: cardinality.
    metrics_exporter: Literal["none", "azure_monitor", "prometheus"] = "none"
    metrics_prometheus_port: int = Field(default=0, ge=0, le=65535)
    metrics_export_interval_seconds: float = Field(default=60, ge=1, le=3600)
    metrics_per_deployment: bool = False

    # Request hygiene.
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    http_timeout_seconds: float = Field(default=10, gt=0)
    log_level: str = "INFO"

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_unresolved_key_vault_reference(cls, value: object) -> object:
        if isinstance(value, str) and value.startswith(_UNRESOLVED_KEY_VAULT_REFERENCE):
            raise ValueError("a Key Vault reference was not resolved by the platform")
        return value

    @model_validator(mode="after")
    def _aggregates_outlive_raw_usage(self) -> Settings:
        if self.usage_aggregate_retention_days < self.usage_raw_retention_days:
            raise ValueError("usage_aggregate_retention_days must be at least usage_raw_retention_days")
        return self

    @field_validator("upstreams_file", "plans_file")
    @classmethod
    def _relative_to_app_root(cls, value: str) -> str:
        return str(value if Path(value).is_absolute() else APP_ROOT / value)

    @property
    def audiences(self) -> list[str]:
        return [a for a in (self.api_app_id_uri, self.api_client_id) if a]

    @property
    def entra_authority_base(self) -> str:
        return self.entra_authority.rstrip("/")

    @property
    def v1_issuer_base(self) -> str:
        return self.entra_v1_issuer_host.rstrip("/")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
