"""An automation app signed in at the Entra stand-in with client credentials, as an admin API client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx

from localdev.stack import ADMIN_APP_ID_URI, ADMIN_AUTOMATION_CLIENT_ID, LocalStack


@contextlib.asynccontextmanager
async def operator_api(stack: LocalStack) -> AsyncIterator[httpx.AsyncClient]:
    assert stack.standin is not None
    tenant = stack.settings().admin_tenant_id
    async with httpx.AsyncClient(timeout=30) as http:
        grant = await http.post(f"{stack.standin.base_url}/{tenant}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": ADMIN_AUTOMATION_CLIENT_ID,
            "client_secret": stack.admin_automation_secret, "scope": f"{ADMIN_APP_ID_URI}/.default",
        })
        assert grant.status_code == 200, grant.text
        headers = {"authorization": f"Bearer {grant.json()['access_token']}"}
        async with httpx.AsyncClient(base_url=f"{stack.service_url}/api/admin", headers=headers, timeout=60) as api:
            yield api
