"""Azure Resource Manager's HTTP surface for the resources in arm_store: auth, api-version, errors."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from localdev.standin.arm_store import (
    APPLICATIONS,
    USER_ASSIGNED_IDENTITIES,
    ArmError,
    ResourceRef,
    bad_request,
)
from localdev.standin.state import ARM_AUDIENCES, StandinState, TokenRejected

_TYPES = {name.lower(): name for name in (APPLICATIONS, USER_ASSIGNED_IDENTITIES)}
API_VERSIONS = {
    APPLICATIONS: frozenset(
        {
            "2017-09-01",
            "2018-06-01",
            "2019-07-01",
            "2020-08-21-preview",
            "2021-02-01-preview",
            "2021-07-01",
            "2023-12-01-preview",
        }
    ),
    USER_ASSIGNED_IDENTITIES: frozenset(
        {"2018-11-30", "2021-09-30-preview", "2022-01-31-preview", "2023-01-31"}
    ),
}
_METHODS = ["GET", "PUT", "DELETE", "POST", "PATCH", "HEAD"]


def parse_resource_path(path: str) -> ResourceRef:
    """`/subscriptions/{s}/resourceGroups/{g}/providers/{namespace}/{type}/{name}`, any letter case."""
    parts = path.strip("/").split("/")
    shape_ok = len(parts) == 8 and [parts[i].lower() for i in (0, 2, 4)] == [
        "subscriptions",
        "resourcegroups",
        "providers",
    ]
    resource_type = _TYPES.get(f"{parts[5]}/{parts[6]}".lower()) if shape_ok else None
    if resource_type is None or not all(parts):
        raise ArmError(
            404, "InvalidResourceType", f"The resource path '{path}' is not served by this stand-in."
        )
    return ResourceRef(
        subscription=parts[1], resource_group=parts[3], resource_type=resource_type, name=parts[7]
    )


def _arm_response(request: Request, status: int, body: dict[str, Any] | None) -> Response:
    headers = {
        "x-ms-request-id": str(uuid.uuid4()),
        "x-ms-correlation-request-id": request.headers.get("x-ms-correlation-request-id")
        or str(uuid.uuid4()),
    }
    if body is None:
        return Response(status_code=status, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


def _error_response(request: Request, error: ArmError, base_url: str) -> Response:
    response = _arm_response(request, error.status, {"error": {"code": error.code, "message": error.message}})
    if error.status == 401:
        response.headers["WWW-Authenticate"] = (
            f'Bearer authorization_uri="{base_url}/", error="invalid_token", '
            f'error_description="{error.message}"'
        )
    return response


def _authenticate(state: StandinState, request: Request) -> dict[str, Any]:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ArmError(
            401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
        )
    try:
        return state.verify_token(token.strip(), audiences=ARM_AUDIENCES)
    except TokenRejected as rejected:
        raise ArmError(401, rejected.code, rejected.message) from rejected


def _check_api_version(request: Request, resource_type: str) -> None:
    version = request.query_params.get("api-version")
    if not version:
        raise bad_request(
            "The api-version query parameter (?api-version=) is required for all requests.",
            "MissingApiVersionParameter",
        )
    if version not in API_VERSIONS[resource_type]:
        raise bad_request(
            f"No registered resource provider found for API version '{version}' and type '{resource_type}'. "
            f"The supported api-versions are '{', '.join(sorted(API_VERSIONS[resource_type]))}'.",
            "NoRegisteredProviderFound",
        )


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError as error:
        raise bad_request("The request content was invalid and could not be deserialized.") from error


def _not_found(ref: ResourceRef) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{ref.resource_type}/{ref.name}' under resource group '{ref.resource_group}' "
        "was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


async def _dispatch(
    state: StandinState, request: Request, ref: ResourceRef, caller: dict[str, Any]
) -> Response:
    method = request.method
    if method in ("GET", "HEAD"):
        resource = state.arm.get(ref)
        if resource is None:
            raise _not_found(ref)
        return _arm_response(request, 200, resource)
    if method == "DELETE":
        return _arm_response(request, 200 if state.arm.delete(ref) else 204, None)
    if method == "PUT":
        body = await _json_body(request)
        if ref.resource_type == APPLICATIONS:
            resource, created = state.arm.put_application(ref, body, caller)
        else:
            resource, created = state.arm.put_user_assigned_identity(ref, body)
        return _arm_response(request, 201 if created else 200, resource)
    raise ArmError(
        405, "MethodNotAllowed", f"The requested resource does not support http method '{method}'."
    )


def routes(state: StandinState) -> list[Route]:
    async def resource(request: Request) -> Response:
        try:
            ref = parse_resource_path(request.url.path)
            caller = _authenticate(state, request)
            _check_api_version(request, ref.resource_type)
            return await _dispatch(state, request, ref, caller)
        except ArmError as error:
            return _error_response(request, error, state.base_url)

    async def catch_all(request: Request) -> Response:
        # Starlette's paths are case-sensitive; ARM's are not.
        if request.url.path.strip("/").split("/")[0].lower() == "subscriptions":
            return await resource(request)
        return JSONResponse({"error": "not_found", "path": request.url.path}, status_code=404)

    return [Route("/{path:path}", catch_all, methods=_METHODS)]
