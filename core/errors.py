"""The service's exception tree. Every error a caller can see is one of these.

Each maps to an HTTP status and an OpenAI-style body
`{"error": {"message", "type", "param", "code"}}`. Messages must never carry a key,
a token or any caller-supplied text that could be secret.
"""

from __future__ import annotations

from typing import Any


class LiutongError(Exception):
    status_code = 500
    error_type = "server_error"
    default_code: str | None = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(LiutongError):
    status_code = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"


class PayloadTooLarge(InvalidRequest):
    status_code = 413
    default_code = "request_too_large"


class UnsupportedMediaType(InvalidRequest):
    status_code = 415
    default_code = "unsupported_media_type"


class AuthenticationFailed(LiutongError):
    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_authentication"

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"www-authenticate": 'Bearer error="invalid_token"'})
        super().__init__(message, **kwargs)


class PermissionDenied(LiutongError):
    status_code = 403
    error_type = "permission_error"
    default_code = "permission_denied"


class NotFound(LiutongError):
    status_code = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class MethodNotAllowed(LiutongError):
    status_code = 405
    error_type = "invalid_request_error"
    default_code = "method_not_allowed"


class Conflict(LiutongError):
    status_code = 409
    error_type = "invalid_request_error"
    default_code = "conflict"


class ServiceUnavailable(LiutongError):
    """A dependency (storage, Key Vault, ARM, Entra) is unreachable: the caller should retry."""

    status_code = 503
    error_type = "server_error"
    default_code = "service_unavailable"


class StorageUnavailable(ServiceUnavailable):
    default_code = "storage_unavailable"


class UpstreamUnavailable(ServiceUnavailable):
    status_code = 502
    default_code = "bad_gateway"


class ConcurrencyConflict(Exception):
    """An ETag-conditional write lost a race. Internal: callers re-read and retry."""
