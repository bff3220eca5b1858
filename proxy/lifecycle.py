"""Model lifecycle: what a deprecated alias's answers say, and what becomes of calls after its sunset.

From `deprecated_at` every answer of the alias carries `Deprecation` (RFC 9745: `@` and unix seconds) and,
when a sunset is set, `Sunset` (RFC 8594: an HTTP-date), and /v1/models shows the dates. From `sunset_at` the
alias answers 404 model_not_found naming its replacement, or, for plans with `redirect_on_sunset`, the
replacement serves the call, recorded under the replacement, and `x-liutong-redirected-from` names the old alias.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from core.errors import NotFound, PermissionDenied
from limits.plans import Plan
from proxy.upstreams import AzureOpenAIUpstream, OpenAIUpstream

ModelEntry = OpenAIUpstream | AzureOpenAIUpstream
REDIRECTED_FROM = "x-liutong-redirected-from"


def http_date(at: datetime) -> str:
    """RFC 9110 IMF-fixdate, e.g. "Wed, 01 Jul 2026 00:00:00 GMT"."""
    return format_datetime(at.astimezone(UTC), usegmt=True)


def deprecation_headers(entry: ModelEntry, now: datetime) -> dict[str, str]:
    """`Deprecation` and `Sunset` once the alias is deprecated; nothing before."""
    if entry.deprecated_at is None or not entry.deprecated(now):
        return {}
    headers = {"deprecation": f"@{int(entry.deprecated_at.timestamp())}"}
    if entry.sunset_at is not None:
        headers["sunset"] = http_date(entry.sunset_at)
    return headers


def lifecycle_fields(entry: ModelEntry, now: datetime) -> dict[str, Any]:
    """The /v1/models fields of a deprecated alias (unix seconds, as `created`); none before its deprecation."""
    if entry.deprecated_at is None or not entry.deprecated(now):
        return {}
    fields: dict[str, Any] = {"deprecated_at": int(entry.deprecated_at.timestamp())}
    if entry.sunset_at is not None:
        fields["sunset_at"] = int(entry.sunset_at.timestamp())
    if entry.replacement is not None:
        fields["replacement"] = entry.replacement
    return fields


def after_sunset(plan: Plan, alias: str, entry: ModelEntry) -> str:
    """The alias that serves a call to a sunset alias (its replacement), or the 404 / 403 that refuses it."""
    assert entry.sunset_at is not None
    replacement = entry.replacement
    if replacement is None or not plan.redirect_on_sunset:
        instead = f" Use '{replacement}' instead." if replacement else ""
        raise NotFound(
            f"The model '{alias}' was retired on {entry.sunset_at.date().isoformat()}.{instead}",
            code="model_not_found", param="model",
        )
    if not plan.allows(replacement):
        raise PermissionDenied(
            f"The model '{alias}' was retired and your plan does not include its replacement '{replacement}'.",
            code="model_not_found", param="model",
        )
    return replacement
