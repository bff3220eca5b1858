from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from core.errors import AuthenticationFailed
from core.settings import Settings
from provisioning.entra import TokenValidator
from provisioning.jwks import JwksCache
from tests.provisioning.tokens import (
    APP_ID_URI,
    AUDIENCES,
    AUTHORITY,
    CLIENT_ID,
    KEY,
    KID,
    MI_CLIENT_ID,
    NOW,
    OID,
    OTHER_KEY,
    OTHER_TENANT,
    TENANT,
    V1_ISSUER_HOST,
    FakeEntra,
    b64json,
    b64url,
    jwk,
    public_pem,
    sign,
    v1_claims,
    v2_claims,
)


@pytest.fixture
def entra() -> FakeEntra:
    return FakeEntra()


@pytest.fixture
async def validator(entra: FakeEntra) -> AsyncIterator[TokenValidator]:
    async with entra.client() as http:
        jwks = JwksCache(http=http, authority=AUTHORITY, max_age_seconds=86400, min_refresh_seconds=60)
        yield TokenValidator(
            jwks=jwks,
            audiences=AUDIENCES,
            authority=AUTHORITY,
            v1_issuer_host=V1_ISSUER_HOST,
            now=lambda: NOW,
        )


# --- the forged-token corpus: each builder returns a token that must be refused -----------------


def alg_none() -> str:
    return f"{b64json({'alg': 'none', 'kid': KID, 'typ': 'JWT'})}.{b64json(v2_claims())}."


def hs256_with_public_key_pem() -> str:
    signing_input = f"{b64json({'alg': 'HS256', 'kid': KID, 'typ': 'JWT'})}.{b64json(v2_claims())}"
    mac = hmac.new(public_pem(KEY), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def rs384() -> str:
    return sign(v2_claims(), alg="RS384")


def missing_kid() -> str:
    return sign(v2_claims(), kid=None)


def unknown_kid() -> str:
    return sign(v2_claims(), kid="no-such-key")


def wrong_signing_key() -> str:
    return sign(v2_claims(), key=OTHER_KEY)


def expired() -> str:
    return sign(v2_claims(exp=int(NOW) - 301))


def missing_exp() -> str:
    return sign(v2_claims(exp=None))


def nbf_in_future() -> str:
    return sign(v2_claims(nbf=int(NOW) + 301))


def wrong_aud() -> str:
    return sign(v2_claims(aud="api://someone-else"))


def aud_list_none_matching() -> str:
    return sign(v2_claims(aud=["api://someone-else", "https://management.azure.com/"]))


def issuer_of_another_tenant() -> str:
    return sign(v2_claims(iss=f"{AUTHORITY}/{OTHER_TENANT}/v2.0"))


def issuer_tid_mismatch() -> str:
    return sign(v1_claims(tid=OTHER_TENANT))


def issuer_of_another_authority() -> str:
    return sign(v2_claims(iss=f"https://login.evil.test/{TENANT}/v2.0"))


def v1_issuer_on_v2_token() -> str:
    return sign(v2_claims(iss=f"{V1_ISSUER_HOST}/{TENANT}/"))


def unknown_version() -> str:
    return sign(v2_claims(ver="3.0"))


def missing_oid() -> str:
    return sign(v2_claims(oid=None))


def oid_not_guid() -> str:
    return sign(v2_claims(oid="admin"))


def tid_not_guid() -> str:
    return sign(v2_claims(tid="contoso.onmicrosoft.com", iss=f"{AUTHORITY}/contoso.onmicrosoft.com/v2.0"))


def garbage() -> str:
    return "this is not a token at all"


def empty() -> str:
    return ""


def four_segments() -> str:
    return sign(v2_claims()) + ".AAAA"


def huge_100kb() -> str:
    return sign(v2_claims(padding="x" * 100_000))


FORGED: list[tuple[Callable[[], str], str]] = [
    (alg_none, "unsupported_algorithm"),
    (hs256_with_public_key_pem, "unsupported_algorithm"),
    (rs384, "unsupported_algorithm"),
    (missing_kid, "invalid_key_id"),
    (unknown_kid, "unknown_signing_key"),
    (wrong_signing_key, "invalid_signature"),
    (expired, "token_expired"),
    (missing_exp, "missing_claim"),
    (nbf_in_future, "token_not_yet_valid"),
    (wrong_aud, "invalid_audience"),
    (aud_list_none_matching, "invalid_audience"),
    (issuer_of_another_tenant, "invalid_issuer"),
    (issuer_tid_mismatch, "invalid_issuer"),
    (issuer_of_another_authority, "invalid_issuer"),
    (v1_issuer_on_v2_token, "invalid_issuer"),
    (unknown_version, "unsupported_token_version"),
    (missing_oid, "invalid_oid"),
    (oid_not_guid, "invalid_oid"),
    (tid_not_guid, "invalid_tid"),
    (garbage, "malformed_token"),
    (empty, "malformed_token"),
    (four_segments, "malformed_token"),
    (huge_100kb, "malformed_token"),
]


@pytest.mark.parametrize(("build", "code"), FORGED, ids=[b.__name__ for b, _ in FORGED])
async def test_forged_token_is_refused(
    validator: TokenValidator, build: Callable[[], str], code: str
) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        await validator.validate(build())
    assert caught.value.status_code == 401
    assert caught.value.code == code
    assert len(caught.value.message) < 40


async def test_no_token_text_in_logs(validator: TokenValidator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = [build() for build, _ in FORGED] + [sign(v1_claims()), sign(v2_claims())]
    for token in tokens:
        try:
            await validator.validate(token)
        except AuthenticationFailed as error:
            assert not token or token not in error.message
    assert caplog.records
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    for token in tokens:
        for part in [token, *token.split(".")]:
            if len(part) > 16:
                assert part not in logged


async def test_refusal_is_logged_with_reason_and_guids(
    validator: TokenValidator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="liutong.auth")
    with pytest.raises(AuthenticationFailed):
        await validator.validate(wrong_aud())
    assert any("invalid audience" in r.getMessage() and TENANT in r.getMessage() for r in caplog.records)


# --- accepted tokens ----------------------------------------------------------------------------


async def test_valid_v1_token(validator: TokenValidator) -> None:
    claims = await validator.validate(sign(v1_claims(roles=["Key.Read"], xms_mirid="/subscriptions/x")))
    assert (claims.tid, claims.oid, claims.aud, claims.version) == (TENANT, OID, APP_ID_URI, "1.0")
    assert claims.issuer == f"{V1_ISSUER_HOST}/{TENANT}/"
    assert (claims.kid, claims.app_id, claims.xms_mirid, claims.roles) == (
        KID, MI_CLIENT_ID, "/subscriptions/x", ("Key.Read",)
    )
    assert claims.expires_at == datetime.fromtimestamp(int(NOW) + 3600, UTC)


async def test_valid_v2_token(validator: TokenValidator) -> None:
    claims = await validator.validate(sign(v2_claims()))
    assert (claims.tid, claims.oid, claims.aud, claims.version) == (TENANT, OID, CLIENT_ID, "2.0")
    assert claims.issuer == f"{AUTHORITY}/{TENANT}/v2.0"
    assert (claims.app_id, claims.xms_mirid, claims.roles) == (MI_CLIENT_ID, None, ())


@pytest.mark.parametrize("aud", [APP_ID_URI, CLIENT_ID, ["https://other", CLIENT_ID]])
async def test_both_audiences_accepted(validator: TokenValidator, aud: str | list[str]) -> None:
    claims = await validator.validate(sign(v1_claims(aud=aud)))
    assert claims.aud in AUDIENCES


async def test_leeway_accepted_at_299_seconds(validator: TokenValidator) -> None:
    assert await validator.validate(sign(v2_claims(exp=int(NOW) - 299)))
    assert await validator.validate(sign(v2_claims(nbf=int(NOW) + 299)))


async def test_other_tenant_token_valid_for_its_own_tenant(validator: TokenValidator) -> None:
    token = sign(v2_claims(tid=OTHER_TENANT, iss=f"{AUTHORITY}/{OTHER_TENANT}/v2.0"))
    assert (await validator.validate(token)).tid == OTHER_TENANT


# --- the JWKS entry's own issuer ----------------------------------------------------------------


async def test_concrete_key_issuer_limits_key_to_its_tenant(
    entra: FakeEntra, validator: TokenValidator
) -> None:
    entra.keys = [jwk(KEY.public_key(), KID, issuer=f"{AUTHORITY}/{TENANT}/v2.0")]
    assert (await validator.validate(sign(v1_claims()))).tid == TENANT
    assert (await validator.validate(sign(v2_claims()))).tid == TENANT
    foreign = sign(v2_claims(tid=OTHER_TENANT, iss=f"{AUTHORITY}/{OTHER_TENANT}/v2.0"))
    with pytest.raises(AuthenticationFailed) as caught:
        await validator.validate(foreign)
    assert caught.value.code == "invalid_issuer"


async def test_key_without_issuer_accepts_any_tenant(entra: FakeEntra, validator: TokenValidator) -> None:
    entra.keys = [jwk(KEY.public_key(), KID, issuer=None)]
    token = sign(v1_claims(tid=OTHER_TENANT, iss=f"{V1_ISSUER_HOST}/{OTHER_TENANT}/"))
    assert (await validator.validate(token)).tid == OTHER_TENANT


# --- construction -------------------------------------------------------------------------------


async def test_from_settings(entra: FakeEntra) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        entra_authority=AUTHORITY + "/",
        entra_v1_issuer_host=V1_ISSUER_HOST,
        api_app_id_uri=APP_ID_URI,
        api_client_id=CLIENT_ID,
    )
    async with entra.client() as http:
        validator = TokenValidator.from_settings(settings, http=http)
        assert (await validator.validate(sign(v2_claims(exp=2**31)))).oid == OID


async def test_refuses_bad_configuration(entra: FakeEntra) -> None:
    async with entra.client() as http:
        jwks = JwksCache(http=http, authority=AUTHORITY, max_age_seconds=1, min_refresh_seconds=1)
    with pytest.raises(ValueError):
        TokenValidator(jwks=jwks, audiences=[], authority=AUTHORITY, v1_issuer_host=V1_ISSUER_HOST)
    with pytest.raises(ValueError):
        TokenValidator(
            jwks=jwks,
            audiences=AUDIENCES,
            authority=AUTHORITY,
            v1_issuer_host=V1_ISSUER_HOST,
            leeway_seconds=301,
        )
