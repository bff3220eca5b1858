"""Key format, hashing and derivation. Pure: no I/O, no clock.

A key is `lt-` + 43 URL-safe base64 characters (256 bits). Only `hash_key(key)` and
`display_prefix(key)` are ever stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

KEY_PREFIX = "lt-"
SECRET_BYTES = 32
SECRET_CHARS = 43  # len(b64url(32 bytes)) without padding
DISPLAY_CHARS = 6

_WELL_FORMED = re.compile(rf"{re.escape(KEY_PREFIX)}[A-Za-z0-9_-]{{{SECRET_CHARS}}}")
_HASH = re.compile(r"[0-9a-f]{64}")
_DEPLOYMENT_ID = re.compile(r"[0-9a-f]{64}")
_MASTER_VERSION = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Versioned so a future derivation scheme can never collide with this one.
_DERIVATION_LABEL = b"liutong/marketplace-key/v1"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def generate_key() -> str:
    return KEY_PREFIX + _b64url(secrets.token_bytes(SECRET_BYTES))


def derive_key(master: bytes, *, application_id: str, generation: int) -> str:
    """The marketplace key of one application and generation; same inputs, same key."""
    if not master:
        raise ValueError("master secret is empty")
    if generation < 0:
        raise ValueError("generation must be >= 0")
    normalised = application_id.lower()
    if not normalised:
        raise ValueError("application_id is empty")
    # Length-prefixed fields: no (application_id, generation) pair can encode like another.
    app = normalised.encode("utf-8")
    gen = str(generation).encode("ascii")
    message = b"\x00".join(
        [_DERIVATION_LABEL, str(len(app)).encode("ascii"), app, str(len(gen)).encode("ascii"), gen]
    )
    return KEY_PREFIX + _b64url(hmac.new(master, message, hashlib.sha256).digest())


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def is_key_hash(value: str) -> bool:
    return _HASH.fullmatch(value) is not None


def display_prefix(key: str) -> str:
    if not is_well_formed(key):
        raise ValueError("not a well-formed key")  # never echo the value
    return key[: len(KEY_PREFIX) + DISPLAY_CHARS]


def is_well_formed(value: str) -> bool:
    return _WELL_FORMED.fullmatch(value) is not None


def random_key_id() -> str:
    return "key-" + secrets.token_hex(8)


def derived_key_id(*, deployment_id: str, generation: int, master_version: str) -> str:
    """Readable, Table-RowKey-safe id of a derived key; deterministic like the key itself."""
    if _DEPLOYMENT_ID.fullmatch(deployment_id) is None:
        raise ValueError("deployment_id must be 64 lower-case hex characters")
    if generation < 0:
        raise ValueError("generation must be >= 0")
    if _MASTER_VERSION.fullmatch(master_version) is None:
        raise ValueError("master_version must be 1-64 characters of [A-Za-z0-9._-]")
    return f"dep-{deployment_id[:16]}-g{generation}-{master_version}"
