"""Key exchange end to end: real azure-identity tokens from the stand-in, real ARM calls, Azurite."""

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from keystore.keys import hash_key
from localdev.stack import API_APP_ID_URI, LocalStack
from tests.provisioning.events import notification
from tests.provisioning.service import app_token, register_application, snapshot

pytestmark = pytest.mark.e2e


@pytest.fixture
async def client(stack: LocalStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.service_url, timeout=30) as http:
        yield http


async def deploy(stack: LocalStack, client: httpx.AsyncClient, *, arm_plan: str = "standard",
                 usage_id: str | None = None) -> str:
    """Register a managed app in ARM and send the notifications ARM would send; its ID."""
    name = f"app-{uuid.uuid4().hex[:10]}"
    document = await register_application(stack, name, plan={**PLAN, "name": arm_plan})
    app_id: str = document["id"]
    usage = usage_id or document["properties"]["billingDetails"]["resourceUsageId"]
    for state, when in (("Accepted", "2026-11-22T10:00:00Z"), ("Succeeded", "2026-11-22T10:05:00Z")):
        payload = notification("PUT", state, app_id=app_id, event_time=when, resource_usage_id=usage)
        response = await client.post(f"/api/marketplace/resource?sig={stack.webhook_secret}", json=payload)
        assert response.status_code == 200, response.text
    return app_id


PLAN = {"publisher": "liutong", "product": "liutong-llm", "name": "standard", "version": "1.0.0"}


async def exchange(client: httpx.AsyncClient, token: str, app_id: str, *, rotate: bool = False) -> httpx.Response:
    path = "/api/provisioning/key/rotate" if rotate else "/api/provisioning/key"
    headers = {"authorization": f"Bearer {token}".strip()}
    return await client.post(path, json={"application_id": app_id}, headers=headers)


async def test_managed_app_gets_the_same_key_until_rotation(stack: LocalStack, client: httpx.AsyncClient) -> None:
    app_id = await deploy(stack, client)
    token = await app_token(app_id)
    first = await exchange(client, token, app_id)
    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body) == {"key", "key_id", "prefix", "application_id", "plan", "rotates_at", "previous_key_valid_until"}
    assert body["key"].startswith("lt-") and body["key"].startswith(body["prefix"])
    assert body["plan"] == "standard" and body["previous_key_valid_until"] is None
    assert first.headers["cache-control"] == "no-store"
    assert (await exchange(client, token, app_id)).json()["key"] == body["key"]

    rotated = (await exchange(client, token, app_id, rotate=True)).json()
    assert rotated["key"] != body["key"] and rotated["previous_key_valid_until"] is not None
    assert (await exchange(client, token, app_id)).json()["key"] == rotated["key"]

    tables = await snapshot(stack)
    stored = json.dumps(tables, default=str)
    assert body["key"] not in stored and rotated["key"] not in stored
    assert {hash_key(body["key"]), hash_key(rotated["key"])} <= {e["RowKey"] for e in tables["keys"]}


async def test_another_deployments_identity_cannot_get_this_key(stack: LocalStack, client: httpx.AsyncClient) -> None:
    mine, theirs = await deploy(stack, client), await deploy(stack, client)
    response = await exchange(client, await app_token(theirs), mine)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "binding_refused"


async def test_a_valid_token_arm_does_not_list_is_refused(stack: LocalStack, client: httpx.AsyncClient) -> None:
    assert stack.standin is not None
    app_id = await deploy(stack, client)
    stranger = stack.standin.state.mint_token(
        tid=str(uuid.uuid4()), oid=str(uuid.uuid4()), aud=API_APP_ID_URI
    )
    assert (await exchange(client, stranger, app_id)).status_code == 403


@pytest.mark.parametrize("mismatch", ["plan", "usage"])
async def test_arm_disagreeing_with_the_webhook_is_refused(
    stack: LocalStack, client: httpx.AsyncClient, mismatch: str
) -> None:
    if mismatch == "plan":
        app_id = await deploy(stack, client, arm_plan="premium")
    else:
        app_id = await deploy(stack, client, usage_id=str(uuid.uuid4()))
    assert (await exchange(client, await app_token(app_id), app_id)).status_code == 403


async def test_delete_revokes_and_refuses(stack: LocalStack, client: httpx.AsyncClient) -> None:
    app_id = await deploy(stack, client)
    token = await app_token(app_id)
    key = (await exchange(client, token, app_id)).json()["key"]
    payload = notification("DELETE", "Deleting", app_id=app_id, event_time="2026-11-22T12:00:00Z")
    assert (await client.post(f"/api/marketplace/resource?sig={stack.webhook_secret}", json=payload)).status_code == 200
    refused = await exchange(client, token, app_id)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "deployment_inactive"
    rows = [e for e in (await snapshot(stack))["keys"] if e["RowKey"] == hash_key(key)]
    assert rows and rows[0]["status"] == "revoked"


async def test_unknown_application_is_404(stack: LocalStack, client: httpx.AsyncClient) -> None:
    app_id = await deploy(stack, client)
    other = app_id.rsplit("/", 1)[0] + "/never-notified"
    assert (await exchange(client, await app_token(app_id), other)).status_code == 404


# --- The forged-token corpus, at the HTTP boundary: each is 401 and writes nothing. ---

def _standin(stack: LocalStack) -> Any:
    assert stack.standin is not None
    return stack.standin.state


def _valid_claims(stack: LocalStack, **overrides: Any) -> dict[str, Any]:
    token = _standin(stack).mint_token(tid=TENANT, oid=OID, aud=API_APP_ID_URI)
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(stack: LocalStack, claims: dict[str, Any], **header: Any) -> str:
    key = _standin(stack).keys.current
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, **header})


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


TENANT = "5e0f2c7a-9d41-4b3e-8a6f-1c2d3e4f5a6b"
OID = "7a1b2c3d-4e5f-4061-8a7b-9c0d1e2f3a4b"


def alg_none(s: LocalStack) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_valid_claims(s))}."


def hs256_with_public_key(s: LocalStack) -> str:
    key = _standin(s).keys.current
    header = _b64({"alg": "HS256", "typ": "JWT", "kid": key.kid})
    payload = _b64(_valid_claims(s))
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signature = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def unknown_kid(s: LocalStack) -> str:
    return _sign(s, _valid_claims(s), kid="not-a-published-kid")


def wrong_signing_key(s: LocalStack) -> str:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(_valid_claims(s), other, algorithm="RS256", headers={"kid": _standin(s).keys.current.kid})


def expired(s: LocalStack) -> str:
    now = int(time.time())
    return _sign(s, _valid_claims(s, iat=now - 7200, nbf=now - 7200, exp=now - 3600))


def nbf_in_future(s: LocalStack) -> str:
    now = int(time.time())
    return _sign(s, _valid_claims(s, nbf=now + 3600, exp=now + 7200))


def wrong_aud(s: LocalStack) -> str:
    return _sign(s, _valid_claims(s, aud="api://someone-else"))


def issuer_of_another_tenant(s: LocalStack) -> str:
    other = "0d9e8f7a-6b5c-4d3e-8f1a-2b3c4d5e6f70"
    return _sign(s, _valid_claims(s, iss=_standin(s).v1_issuer(other)))


def issuer_tid_mismatch(s: LocalStack) -> str:
    return _sign(s, _valid_claims(s, tid="0d9e8f7a-6b5c-4d3e-8f1a-2b3c4d5e6f70"))


def xms_mirid_of_another_application(s: LocalStack) -> str:
    other = "/subscriptions/x/resourceGroups/y/providers/Microsoft.Solutions/applications/other"
    return _sign(s, _valid_claims(s, xms_mirid=other))


def missing_oid(s: LocalStack) -> str:
    return _sign(s, _valid_claims(s, oid=None, sub=None))


def tid_not_guid(s: LocalStack) -> str:
    return _sign(s, _valid_claims(s, tid="contoso", iss=_standin(s).v1_issuer("contoso")))


def garbage(s: LocalStack) -> str:
    return "this.is-not.a-token"


def empty(s: LocalStack) -> str:
    return ""


def token_100kb(s: LocalStack) -> str:
    return _sign(s, _valid_claims(s, padding="x" * 100_000))


FORGED: list[Callable[[LocalStack], str]] = [
    alg_none, hs256_with_public_key, unknown_kid, wrong_signing_key, expired, nbf_in_future, wrong_aud,
    issuer_of_another_tenant, issuer_tid_mismatch, xms_mirid_of_another_application, missing_oid,
    tid_not_guid, garbage, empty, token_100kb,
]


@pytest.mark.parametrize("forge", FORGED, ids=[f.__name__ for f in FORGED])
async def test_forged_tokens_are_401_and_write_nothing(
    stack: LocalStack, client: httpx.AsyncClient, forge: Callable[[LocalStack], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app_id = await deploy(stack, client)
    before = await snapshot(stack)
    token = forge(stack)
    for rotate in (False, True):
        response = await exchange(client, token, app_id, rotate=rotate)
        assert response.status_code == 401, response.text
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert await snapshot(stack) == before
    if token:
        assert token not in caplog.text


async def test_no_log_line_contains_a_key_or_a_token(
    stack: LocalStack, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    app_id = await deploy(stack, client)
    token = await app_token(app_id)
    keys = [(await exchange(client, token, app_id, rotate=rotate)).json()["key"] for rotate in (False, True)]
    await exchange(client, token + "x", app_id)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert token not in text and token.split(".")[2] not in text
    assert not [k for k in keys if k in text]
    assert "lt-" in text or "key" in text
