"""Proof that a token's identity belongs to a managed application (pure rules, no I/O).

Entra puts no resource ID into tokens for a third-party audience, so the proof is ARM's
word: the application must list the token's tid/oid among its identities, and ARM's plan
and resourceUsageId must agree with what the Marketplace notification told us.
"""

from __future__ import annotations

from provisioning.arm import ManagedApplication
from provisioning.deployments import Deployment


def binding_refusal(
    deployment: Deployment, application: ManagedApplication | None, *, tid: str, oid: str
) -> str | None:
    """None when the binding holds, else a short reason safe to show the caller."""
    if application is None:
        return "the application does not exist in Azure Resource Manager"
    if application.application_id != deployment.application_id:
        return "Azure Resource Manager returned a different application"
    if not application.lists_identity(tid, oid):
        return "the token's identity is not an identity of this application"
    if deployment.plan_id is None or (application.plan_name or "").lower() != deployment.plan_id.lower():
        return "the application's plan does not match the marketplace notification"
    recorded = (deployment.resource_usage_id or "").lower()
    if not recorded or (application.resource_usage_id or "").lower() != recorded:
        return "the application's resourceUsageId does not match the marketplace notification"
    return None


def mirid_refusal(xms_mirid: str | None, application_id: str) -> str | None:
    """A token that names its resource must name this application."""
    if xms_mirid is None:
        return None
    if xms_mirid.strip().rstrip("/").lower() != application_id.lower():
        return "the token belongs to another resource"
    return None
