"""The admin API's view of the settings (the LIUTONG_ADMIN_* fields of core.settings.Settings)."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings


@dataclass(frozen=True)
class AdminSettings:
    # The publisher's tenant: only its tokens open the admin API.
    tenant_id: str = ""
    # The admin API's own Entra app registration (a different audience from the key exchange).
    app_id_uri: str = ""
    client_id: str = ""
    # The app role an operator must hold (`roles` claim).
    role: str = "Liutong.Admin"
    # Grace a rotated team key stays usable when the request names none.
    rotation_grace_hours: float = 24

    @classmethod
    def from_settings(cls, settings: Settings) -> AdminSettings:
        return cls(
            tenant_id=settings.admin_tenant_id,
            app_id_uri=settings.admin_app_id_uri,
            client_id=settings.admin_client_id,
            role=settings.admin_role,
            rotation_grace_hours=settings.admin_rotation_grace_hours,
        )

    @property
    def audiences(self) -> list[str]:
        return [a for a in (self.app_id_uri, self.client_id) if a]

    @property
    def configured(self) -> bool:
        return bool(self.tenant_id and self.audiences)
