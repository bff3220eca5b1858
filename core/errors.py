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


class RateLimited(LiutongError):
    """RPM/TPM exceeded: the caller may retry after `retry_after` seconds."""

    status_code = 429
    error_type = "requests"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, headers: dict[str, str] | None = None, **kwargs: Any):
        merged = dict(headers or {})
        merged["retry-after"] = str(max(1, round(retry_after + 0.4999)))
        merged["retry-after-ms"] = str(max(1, int(retry_after * 1000)))
        super().__init__(message, headers=merged, **kwargs)


class InsufficientQuota(LiutongError):
    """Monthly quota or prepaid balance exhausted: retrying does not help."""

    status_code = 429
    error_type = "insufficient_quota"
    default_code = "insufficient_quota"

    def __init__(
        self, message: str, *, headers: dict[str, str] | None = None, exhausted: str = "quota", **kwargs: Any
    ):
        self.exhausted = exhausted  # "quota" (the month's tokens) or "balance" (prepaid credit): for metrics
        merged = dict(headers or {})
        # The openai SDK honours this header and does not retry the request three times.
        merged["x-should-retry"] = "false"
        super().__init__(message, headers=merged, **kwargs)


class UpstreamTimeout(LiutongError):
    status_code = 504
    error_type = "server_error"
    default_code = "upstream_timeout"
