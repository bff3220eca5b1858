"""Key generations of a marketplace deployment: when to rotate and what a rotation writes.

Keys are derived from (application, generation) under a versioned master secret, so every
replica that fetches the current generation gets the same key and no plaintext is stored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from keystore import keys
from keystore.master_secret import MasterSecret
from keystore.models import KeyRecord, KeyStatus
from provisioning.deployments import Deployment


@dataclass(frozen=True)
class RotationPolicy:
    rotate_after: timedelta
    grace: timedelta


@dataclass(frozen=True)
class Rotation:
    deployment: Deployment
    record: KeyRecord
    key: str


def rotation_due(deployment: Deployment, now: datetime) -> bool:
    return deployment.generation == 0 or deployment.rotates_at is None or now >= deployment.rotates_at


def current_key(deployment: Deployment, master: MasterSecret) -> str | None:
    """Re-derive the current key; None if the master secret no longer yields the stored hash."""
    key = keys.derive_key(master.value, application_id=deployment.application_id, generation=deployment.generation)
    return key if keys.hash_key(key) == deployment.current_key_hash else None


def rotate(deployment: Deployment, master: MasterSecret, policy: RotationPolicy, now: datetime) -> Rotation:
    generation = deployment.generation + 1
    key = keys.derive_key(master.value, application_id=deployment.application_id, generation=generation)
    record = KeyRecord(
        key_hash=keys.hash_key(key),
        key_id=keys.derived_key_id(
            deployment_id=deployment.deployment_id, generation=generation, master_version=master.version
        ),
        prefix=keys.display_prefix(key),
        team=marketplace_team(deployment),
        description=f"Marketplace key, generation {generation}",
        status=KeyStatus.ACTIVE,
        created_at=now,
        deployment_id=deployment.deployment_id,
        application_id=deployment.application_id,
        expires_at=None,
        revoked_at=None,
        last_used_at=None,
        generation=generation,
        master_version=master.version,
    )
    has_previous = deployment.current_key_hash is not None
    updated = dataclasses.replace(
        deployment,
        generation=generation,
        master_version=master.version,
        current_key_id=record.key_id,
        current_key_hash=record.key_hash,
        rotated_at=now,
        rotates_at=now + policy.rotate_after,
        previous_key_id=deployment.current_key_id,
        previous_key_hash=deployment.current_key_hash,
        previous_valid_until=now + policy.grace if has_previous else None,
        previous_retired=not has_previous,
    )
    return Rotation(deployment=updated, record=record, key=key)


def marketplace_team(deployment: Deployment) -> str:
    return f"app-{deployment.deployment_id[:16]}"
