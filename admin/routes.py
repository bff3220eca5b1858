"""The admin routes as (route, methods, handler); routes.py wraps each in a RouteSpec."""

from __future__ import annotations

from admin.byok_handlers import BYOK_ROUTES
from admin.credits_handlers import CREDIT_ROUTES
from admin.deployment_handlers import DEPLOYMENT_ROUTES
from admin.handlers import (
    resume_team,
    revoke_team_key,
    rotate_team_key,
    suspend_team,
    team_item,
    team_keys,
    teams_collection,
)
from admin.model_handlers import MODEL_ROUTES
from admin.override_handlers import OVERRIDE_ROUTES
from admin.report_handlers import REPORT_ROUTES
from admin.ui_handlers import UI_ROUTES
from admin.verify_handlers import VERIFY_ROUTES
from core.http import Handler

ADMIN_ROUTES: tuple[tuple[str, tuple[str, ...], Handler], ...] = (
    ("api/admin/teams", ("GET", "POST"), teams_collection),
    ("api/admin/teams/{team}", ("GET", "PATCH"), team_item),
    ("api/admin/teams/{team}/suspend", ("POST",), suspend_team),
    ("api/admin/teams/{team}/resume", ("POST",), resume_team),
    ("api/admin/teams/{team}/keys", ("GET", "POST"), team_keys),
    ("api/admin/teams/{team}/keys/{key_id}/revoke", ("POST",), revoke_team_key),
    ("api/admin/teams/{team}/keys/{key_id}/rotate", ("POST",), rotate_team_key),
    *DEPLOYMENT_ROUTES,
    *OVERRIDE_ROUTES,
    *CREDIT_ROUTES,
    *BYOK_ROUTES,
    *UI_ROUTES,
    *REPORT_ROUTES,
    *VERIFY_ROUTES,
    *MODEL_ROUTES,
)
