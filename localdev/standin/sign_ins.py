"""Pending device-code sign-ins and issued refresh tokens (in memory, like everything in the stand-in)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

PENDING, APPROVED, DECLINED = "pending", "approved", "declined"
# Entra's user codes: upper-case letters and digits, without look-alikes.
_USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_USER_CODE_LENGTH = 9
REFRESH_TOKEN_LIFETIME_SECONDS = 90 * 24 * 3600


@dataclass
class DeviceFlow:
    device_code: str
    user_code: str
    client_id: str
    tenant: str  # as named in the request path: a tenant ID or an alias
    scope: str
    expires_at: float
    status: str = PENDING
    user_oid: str | None = None


@dataclass(frozen=True)
class RefreshGrant:
    user_oid: str
    client_id: str
    expires_at: float


def normalize_user_code(raw: str) -> str:
    return "".join(ch for ch in raw.upper() if ch.isalnum())


class SignIns:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._flows: dict[str, DeviceFlow] = {}
        self._refresh: dict[str, RefreshGrant] = {}

    def start(self, *, client_id: str, tenant: str, scope: str, lifetime_seconds: int) -> DeviceFlow:
        flow = DeviceFlow(
            device_code=secrets.token_urlsafe(96),
            user_code="".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(_USER_CODE_LENGTH)),
            client_id=client_id,
            tenant=tenant,
            scope=scope,
            expires_at=self._clock() + lifetime_seconds,
        )
        with self._lock:
            self._flows[flow.device_code] = flow
        return flow

    def expired(self, flow: DeviceFlow) -> bool:
        return self._clock() >= flow.expires_at

    def by_user_code(self, user_code: str) -> DeviceFlow | None:
        wanted = normalize_user_code(user_code)
        with self._lock:
            return next((f for f in self._flows.values() if f.user_code == wanted), None)

    def by_device_code(self, device_code: str) -> DeviceFlow | None:
        with self._lock:
            return self._flows.get(device_code)

    def pending(self) -> list[DeviceFlow]:
        """Flows still waiting for a person (tests approve them programmatically)."""
        with self._lock:
            flows = list(self._flows.values())
        return [f for f in flows if f.status == PENDING and not self.expired(f)]

    def decide(self, flow: DeviceFlow, *, user_oid: str | None, approve: bool) -> None:
        with self._lock:
            flow.status, flow.user_oid = (APPROVED, user_oid) if approve else (DECLINED, None)

    def redeem(self, flow: DeviceFlow) -> None:
        """A device code yields tokens once."""
        with self._lock:
            self._flows.pop(flow.device_code, None)

    def expire(self, flow: DeviceFlow) -> None:
        """For tests: as if its 15 minutes had passed."""
        with self._lock:
            flow.expires_at = self._clock() - 1

    def issue_refresh_token(self, *, user_oid: str, client_id: str) -> str:
        token = "0.A" + secrets.token_urlsafe(160)
        grant = RefreshGrant(user_oid, client_id, self._clock() + REFRESH_TOKEN_LIFETIME_SECONDS)
        with self._lock:
            self._refresh[token] = grant
        return token

    def refresh_grant(self, token: str) -> RefreshGrant | None:
        with self._lock:
            grant = self._refresh.get(token)
        return grant if grant is not None and self._clock() < grant.expires_at else None
