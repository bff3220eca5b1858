"""`make demo`: the README walkthrough as a script. Exits 0 only if every step behaved.

Starts its own stack on free loopback ports, so it runs beside `make run`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import openai

from core.settings import Settings
from core.tables import Tables
from localdev import clients, demo_credit
from localdev.stack import API_APP_ID_URI, LocalStack, Ports
from localdev.standin.metering import metering_of
from provisioning.notifications import deployment_id_for
from usage.store import RAW_ROWS

SUBSCRIPTION = "00000000-0000-0000-0000-0000000000aa"
APPLICATION_ID = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/customer-rg/providers/Microsoft.Solutions/applications/demo"
)
PLAN = {"publisher": "liutong", "product": "liutong-llm", "name": "demo-metered", "version": "1.0.0"}
DIMENSION = "tokens_1k"
INCLUDED_TOKENS = 10
UNIT_TOKENS = 1000
# A plan that includes only 10 tokens a month, so the demo's usage is billed to the Marketplace.
IMAGE_PLAN_TOKENS = 4000  # what one 1024x1024 image costs on the demo plan
DEMO_PLAN = {
    "plan_id": "demo-metered", "models": ["gpt-4o-mini", "text-embedding-3-small", "dall-e-3"], "rpm": 60,
    "tpm": 100000, "mode": "quota", "monthly_included_tokens": INCLUDED_TOKENS, "overage": "bill",
    "dimension": DIMENSION, "dimension_unit_tokens": UNIT_TOKENS,
    "unit_rates": {"dall-e-3": {"image": {"1024x1024": IMAGE_PLAN_TOKENS}}},
}
# Usage records the demo's calls write: a streamed chat, embeddings, a response and an image.
DEMO_CALLS = 4


class Demo:
    def __init__(self, stack: LocalStack, http: httpx.AsyncClient) -> None:
        self.stack = stack
        self.http = http
        self.usage_id = ""
        self.token = ""
        self.keys: list[str] = []
        self.billable_tokens = 0
        self.team_key = ""
        self.failures = 0

    async def step(self, title: str, action: Callable[[], Awaitable[str]]) -> None:
        try:
            detail = await action()
        except Exception as error:  # noqa: BLE001 - a demo step reports any failure and goes on
            self.failures += 1
            print(f"  FAIL  {title}: {type(error).__name__}: {error}", flush=True)
            return
        print(f"  ok    {title}: {detail}", flush=True)

    async def register(self) -> str:
        assert self.stack.standin is not None
        document = await clients.register_application(
            self.stack.standin.base_url, APPLICATION_ID, plan=PLAN,
            managed_resource_group_id=f"/subscriptions/{SUBSCRIPTION}/resourceGroups/demo-mrg",
        )
        self.usage_id = document["properties"]["billingDetails"]["resourceUsageId"]
        metering_of(self.stack.standin.state).register_resource(self.usage_id, PLAN["name"], [DIMENSION])
        return f"identity oid {document['identity']['principalId']}"

    async def notify(self, event_type: str, state: str, when: str) -> str:
        payload = clients.notification(APPLICATION_ID, event_type, state, when, plan=PLAN, usage_id=self.usage_id)
        response = await self.http.post(f"/api/marketplace/resource?sig={self.stack.webhook_secret}", json=payload)
        expect(response, 200)
        return f"deployment is {response.json()['provisioningState']}"

    async def exchange(self, path: str = "/api/provisioning/key", **options: Any) -> dict[str, Any]:
        response = await self.http.post(
            path, json={"application_id": APPLICATION_ID, **options}, headers={"authorization": f"Bearer {self.token}"}
        )
        expect(response, 200)
        body: dict[str, Any] = response.json()
        return body

    async def first_exchange(self) -> str:
        self.token = await clients.managed_app_token(APPLICATION_ID, API_APP_ID_URI)
        body = await self.exchange()
        again = await self.exchange()
        check(again["key"] == body["key"], "a second fetch returned another key")
        self.keys.append(body["key"])
        return f"key {body['prefix']}… ({body['key_id']}), rotates at {body['rotates_at']}"

    async def forced_rotation(self) -> str:
        body = await self.exchange("/api/provisioning/key/rotate")
        check(body["key"] != self.keys[-1], "rotation returned the same key")
        check(body["previous_key_valid_until"] is not None, "no grace period for the previous key")
        self.keys.append(body["key"])
        return f"new key {body['prefix']}…, previous valid until {body['previous_key_valid_until']}"

    async def leaked_key_rotation(self) -> str:
        body = await self.exchange("/api/provisioning/key/rotate", revoke_previous=True)
        check(body["previous_key_valid_until"] is None, "the leaked key kept a grace period")
        refused = []
        for key in self.keys:  # every earlier key; revocation is immediate on the instance that made it
            api = openai.AsyncOpenAI(base_url=f"{self.stack.service_url}/v1", api_key=key, max_retries=0)
            try:
                await api.models.list()
            except openai.AuthenticationError:
                refused.append(key)
        check(refused == self.keys, f"{len(self.keys) - len(refused)} earlier key(s) still work")
        self.keys.append(body["key"])
        return f"new key {body['prefix']}…; all {len(refused)} earlier keys now get 401"

    async def chat_and_embeddings(self) -> str:
        api = openai.AsyncOpenAI(base_url=f"{self.stack.service_url}/v1", api_key=self.keys[-1], max_retries=0)
        stream = await api.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello from the demo"}], stream=True
        )
        reply = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        vectors = await api.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
        check(bool(reply) and len(vectors.data) == 2, "no reply or no embeddings")
        return f"streamed reply {reply[:30]!r}…, {len(vectors.data)} embeddings"

    async def responses_and_image(self) -> str:
        api = openai.AsyncOpenAI(base_url=f"{self.stack.service_url}/v1", api_key=self.keys[-1], max_retries=0)
        response = await api.responses.create(model="gpt-4o-mini", input="Hello from the demo")
        image = await api.images.generate(model="dall-e-3", prompt="A lighthouse", size="1024x1024")
        check(bool(response.output_text) and bool(image.data), "no response text or no image")
        return f"response {response.output_text[:24]!r}… ({response.usage.total_tokens if response.usage else 0} " \
            f"tokens), {len(image.data or [])} image = {IMAGE_PLAN_TOKENS} plan tokens"

    async def credit(self) -> str:
        self.team_key, summary = await demo_credit.top_up(self.stack)
        return summary

    async def byok(self) -> str:
        return await demo_credit.byok_call(self.stack, self.team_key)

    async def usage_report(self) -> str:
        tables = Tables(self.stack.settings())
        try:
            for _ in range(100):
                rows = [r async for r in tables.table("usage").query_entities(RAW_ROWS)]
                if len(rows) >= DEMO_CALLS:
                    break
                await asyncio.sleep(0.05)
        finally:
            await tables.close()
        mine = [r for r in rows if r.get("deployment_id") == deployment_id_for(APPLICATION_ID)]
        check(len(mine) == DEMO_CALLS, f"expected {DEMO_CALLS} usage records, found {len(mine)}")
        usage = Counter({(r["model_alias"], r["endpoint"]): 0 for r in mine})
        for row in mine:
            usage[row["model_alias"], row["endpoint"]] += row.get("quantity") or row["total_tokens"]
        self.billable_tokens = sum(r["plan_tokens"] for r in mine) - INCLUDED_TOKENS
        units = {"/v1/images/generations": "image(s)"}
        return ", ".join(f"{endpoint} {model}: {count} {units.get(endpoint, 'tokens')}"
                         for (model, endpoint), count in sorted(usage.items()))

    async def metering_submitted(self) -> str:
        assert self.stack.standin is not None
        billed = metering_of(self.stack.standin.state).total_quantity(self.usage_id, DIMENSION)
        expected = max(0, self.billable_tokens) / UNIT_TOKENS
        check(abs(float(billed) - expected) < 1e-9, f"Marketplace has {billed}, expected {expected}")
        return f"{billed} x {DIMENSION} accepted by the Metering Service (usage above the 10 included tokens)"

    async def refused_after_delete(self) -> str:
        response = await self.http.post(
            "/api/provisioning/key", json={"application_id": APPLICATION_ID},
            headers={"authorization": f"Bearer {self.token}"},
        )
        expect(response, 403)
        return f"403 {response.json()['error']['code']}"

    async def run(self) -> int:
        print("Liutong provisioning walkthrough", flush=True)
        await self.step("register a managed app in ARM (stand-in)", self.register)
        await self.step("webhook PUT Accepted", lambda: self.notify("PUT", "Accepted", "2026-01-01T00:00:00.1234567Z"))
        await self.step("webhook PUT Succeeded", lambda: self.notify("PUT", "Succeeded", "2026-01-01T00:05:00Z"))
        await self.step("key exchange through azure-identity", self.first_exchange)
        await self.step("chat (streamed) and embeddings through the openai SDK", self.chat_and_embeddings)
        await self.step("a Responses API call and an image generation", self.responses_and_image)
        await self.step("usage report (metadata only)", self.usage_report)
        await self.step("prepaid credit: a top-up sent twice is credited once", self.credit)
        await self.step("bring your own key: the team's provider key serves a call", self.byok)
        await self.step("forced rotation", self.forced_rotation)
        await self.step("rotation without grace (a leaked key)", self.leaked_key_rotation)
        await self.step("webhook DELETE Deleting (bills the last hour)", lambda: self.notify(
            "DELETE", "Deleting", "2026-01-02T00:00:00Z"))
        await self.step("metering submission", self.metering_submitted)
        await self.step("webhook DELETE Deleted", lambda: self.notify("DELETE", "Deleted", "2026-01-02T00:03:00Z"))
        await self.step("key exchange refused after delete", self.refused_after_delete)
        print("all steps behaved" if not self.failures else f"{self.failures} step(s) failed", flush=True)
        return 0 if not self.failures else 1


def expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise AssertionError(f"expected {status}, got {response.status_code}: {response.text[:300]}")


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def demo_plans_file() -> str:
    catalog = json.loads(Path(Settings().plans_file).read_text())
    catalog["plans"].append(DEMO_PLAN)
    path = Path(tempfile.mkdtemp(prefix="liutong-demo-")) / "plans.json"
    path.write_text(json.dumps(catalog))
    return str(path)


async def main() -> int:
    stack = LocalStack(ports=Ports.free(), setting_overrides={"plans_file": demo_plans_file()})
    stack.start()
    try:
        async with httpx.AsyncClient(base_url=stack.service_url, timeout=30) as http:
            return await Demo(stack, http).run()
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
