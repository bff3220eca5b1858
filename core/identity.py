"""The service's own Entra identity, built in one place for every adapter that needs it."""

from __future__ import annotations

from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import DefaultAzureCredential

from core.settings import Settings


def service_credential(settings: Settings) -> AsyncTokenCredential:
    """In Azure the Function app's managed identity (user-assigned when its client ID is set);
    locally the same protocol against the stand-in."""
    return DefaultAzureCredential(
        managed_identity_client_id=settings.managed_identity_client_id or None,
        exclude_interactive_browser_credential=True,
    )
