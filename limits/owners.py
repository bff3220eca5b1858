"""Table keys and Int64 properties for the account a call draws on (Principal.owner: "dep-…" or "team-…")."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from azure.data.tables import EdmType, EntityProperty

# Table keys cannot contain / \ # ? or control characters and are at most 1 KiB.
_SAFE = re.compile(r"[A-Za-z0-9._:@=+\-]{1,200}")


@functools.lru_cache(maxsize=65536)
def owner_key(owner: str) -> str:
    """The owner itself when it is a valid key, else "h-" + its SHA-256 (stable, collision-free in practice)."""
    if _SAFE.fullmatch(owner) and not owner.startswith("h-"):
        return owner
    return "h-" + hashlib.sha256(owner.encode()).hexdigest()


def read_int(entity: Mapping[str, Any], name: str) -> int:
    """An integer property, whether the SDK returned it plain (Int32) or wrapped (Int64)."""
    value = entity.get(name, 0)
    return int(value.value if isinstance(value, EntityProperty) else value)


def int64(value: int) -> EntityProperty:
    """Plain ints are stored as Int32 and overflow at 2^31 tokens."""
    return EntityProperty(value, EdmType.INT64)
