from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from core.errors import ServiceUnavailable
from provisioning.jwks import JwksCache
from tests.provisioning.tokens import (
    AUTHORITY,
    KEY,
    KEY2,
    KID,
    KID2,
    TEMPLATED_ISSUER,
    FakeClock,
    FakeEntra,
    jwk,
)

MAX_AGE = 24 * 3600.0
MIN_REFRESH = 60.0


@pytest.fixture
def entra() -> FakeEntra:
    return FakeEntra()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def http(entra: FakeEntra) -> AsyncIterator[httpx.AsyncClient]:
    async with entra.client() as client:
        yield client


@pytest.fixture
def cache(http: httpx.AsyncClient, clock: FakeClock) -> JwksCache:
    return JwksCache(
        http=http, authority=AUTHORITY, max_age_seconds=MAX_AGE, min_refresh_seconds=MIN_REFRESH, clock=clock
    )


async def test_keys_are_cached_by_kid(entra: FakeEntra, cache: JwksCache, clock: FakeClock) -> None:
    first = await cache.get(KID)
    clock.advance(MAX_AGE - 1)
    assert await cache.get(KID) is first
    assert first is not None
    assert first.kid == KID and first.issuer == TEMPLATED_ISSUER
    assert first.key.public_numbers() == KEY.public_key().public_numbers()
    assert (entra.discovery_fetches, entra.jwks_fetches) == (1, 1)


async def test_unknown_kid_refreshes_once_then_is_rate_limited(
    entra: FakeEntra, cache: JwksCache, clock: FakeClock
) -> None:
    await cache.get(KID)
    assert await cache.get("unknown") is None
    assert entra.jwks_fetches == 1  # just fetched: still inside the rate-limit window
    clock.advance(MIN_REFRESH)
    assert await cache.get("unknown") is None
    assert entra.jwks_fetches == 2
    for _ in range(20):
        clock.advance(1)
        assert await cache.get("unknown") is None
    assert entra.jwks_fetches == 2
    assert entra.discovery_fetches == 1  # the jwks_uri is cached too


async def test_refresh_after_max_age(entra: FakeEntra, cache: JwksCache, clock: FakeClock) -> None:
    await cache.get(KID)
    clock.advance(MAX_AGE)
    assert await cache.get(KID) is not None
    assert entra.jwks_fetches == 2


async def test_key_rotation_picked_up_after_min_refresh(
    entra: FakeEntra, cache: JwksCache, clock: FakeClock
) -> None:
    await cache.get(KID)
    entra.keys = [jwk(KEY2.public_key(), KID2)]
    clock.advance(MIN_REFRESH / 2)
    assert await cache.get(KID2) is None
    clock.advance(MIN_REFRESH / 2)
    rotated = await cache.get(KID2)
    assert rotated is not None
    assert rotated.key.public_numbers() == KEY2.public_key().public_numbers()
    assert await cache.get(KID) is None  # rotated out of the published set
    assert entra.jwks_fetches == 2


@pytest.mark.parametrize("min_refresh", [MIN_REFRESH, 0.0])
async def test_concurrent_unknown_kid_lookups_share_one_fetch(
    entra: FakeEntra, http: httpx.AsyncClient, clock: FakeClock, min_refresh: float
) -> None:
    cache = JwksCache(
        http=http, authority=AUTHORITY, max_age_seconds=MAX_AGE, min_refresh_seconds=min_refresh, clock=clock
    )
    await cache.get(KID)
    clock.advance(MIN_REFRESH)
    entra.keys.append(jwk(KEY2.public_key(), KID2))
    entra.gate = asyncio.Event()
    tasks = [asyncio.create_task(cache.get(KID2)) for _ in range(10)]
    while entra.jwks_fetches < 2:
        await asyncio.sleep(0)
    entra.gate.set()
    results = await asyncio.gather(*tasks)
    assert all(r is not None and r.kid == KID2 for r in results)
    assert entra.jwks_fetches == 2


async def test_fetch_failure_keeps_serving_cached_keys(
    entra: FakeEntra, cache: JwksCache, clock: FakeClock
) -> None:
    await cache.get(KID)
    entra.status = 500
    clock.advance(MAX_AGE)
    assert await cache.get(KID) is not None
    entra.unreachable = True
    clock.advance(MIN_REFRESH)
    assert await cache.get(KID) is not None


async def test_unknown_kid_during_outage_is_unavailable(
    entra: FakeEntra, cache: JwksCache, clock: FakeClock
) -> None:
    await cache.get(KID)
    entra.unreachable = True
    clock.advance(MIN_REFRESH)
    with pytest.raises(ServiceUnavailable):
        await cache.get(KID2)


@pytest.mark.parametrize("failure", ["status", "unreachable"])
async def test_no_keys_at_all_is_service_unavailable(
    entra: FakeEntra, cache: JwksCache, failure: str
) -> None:
    if failure == "status":
        entra.status = 503
    else:
        entra.unreachable = True
    with pytest.raises(ServiceUnavailable) as caught:
        await cache.get(KID)
    assert caught.value.status_code == 503


async def test_recovers_after_failure_with_rediscovery(
    entra: FakeEntra, cache: JwksCache, clock: FakeClock
) -> None:
    entra.unreachable = True
    with pytest.raises(ServiceUnavailable):
        await cache.get(KID)
    entra.unreachable = False
    with pytest.raises(ServiceUnavailable):
        await cache.get(KID)  # rate-limited: the failure is remembered, no fetch
    clock.advance(MIN_REFRESH)
    assert await cache.get(KID) is not None
    assert (entra.discovery_fetches, entra.jwks_fetches) == (1, 1)


def _small_rsa_jwk() -> dict[str, object]:
    return jwk(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key(), KID)


MALFORMED_JWKS: dict[str, bytes] = {
    "not_json": b"<html>oops</html>",
    "a_list": b"[]",
    "keys_not_a_list": json.dumps({"keys": "nope"}).encode(),
    "key_not_an_object": json.dumps({"keys": [1]}).encode(),
    "no_keys": json.dumps({"keys": []}).encode(),
    "rsa_missing_modulus": json.dumps({"keys": [{"kty": "RSA", "kid": KID, "e": "AQAB"}]}).encode(),
    "rsa_bad_base64": json.dumps({"keys": [{"kty": "RSA", "kid": KID, "n": "!!", "e": "AQAB"}]}).encode(),
    "rsa_1024_bits": json.dumps({"keys": [_small_rsa_jwk()]}).encode(),
    "only_ec_keys": json.dumps({"keys": [{"kty": "EC", "kid": KID, "crv": "P-256"}]}).encode(),
}


@pytest.mark.parametrize("body", MALFORMED_JWKS.values(), ids=MALFORMED_JWKS.keys())
async def test_malformed_jwks_is_a_fetch_failure(
    entra: FakeEntra, cache: JwksCache, clock: FakeClock, body: bytes
) -> None:
    entra.jwks_body = body
    with pytest.raises(ServiceUnavailable):
        await cache.get(KID)
    entra.jwks_body = None
    clock.advance(MIN_REFRESH)
    assert await cache.get(KID) is not None
    entra.jwks_body = body
    clock.advance(MAX_AGE)
    assert await cache.get(KID) is not None  # a bad document never evicts good cached keys


@pytest.mark.parametrize("body", [b"{}", json.dumps({"jwks_uri": 42}).encode(), b"garbage"])
async def test_malformed_metadata_is_a_fetch_failure(entra: FakeEntra, cache: JwksCache, body: bytes) -> None:
    entra.discovery_body = body
    with pytest.raises(ServiceUnavailable):
        await cache.get(KID)
    assert entra.jwks_fetches == 0


async def test_non_rsa_keys_are_ignored(entra: FakeEntra, cache: JwksCache) -> None:
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    entra.keys.append({"kty": "EC", "kid": "ec-key", "crv": "P-256", "x": str(point.x), "y": str(point.y)})
    entra.keys.append(jwk(KEY2.public_key(), "enc-key") | {"use": "enc"})
    assert await cache.get(KID) is not None
    assert await cache.get("ec-key") is None
    assert await cache.get("enc-key") is None


async def test_cancelled_fetch_does_not_block_the_next_caller(
    entra: FakeEntra, cache: JwksCache, clock: FakeClock
) -> None:
    entra.gate = asyncio.Event()
    first = asyncio.create_task(cache.get(KID))
    while entra.jwks_fetches < 1:
        await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    entra.gate.set()
    assert await cache.get(KID) is not None
    assert entra.jwks_fetches == 2
