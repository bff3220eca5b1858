"""What can go wrong, as exit codes: 0 ok, 1 the API refused (4xx), 2 bad usage, 3 not signed in or not
allowed (401/403), 4 the service is unavailable (5xx, network)."""

from __future__ import annotations

OK, API_ERROR, USAGE, AUTH, UNAVAILABLE = 0, 1, 2, 3, 4
# 401 codes (provisioning/entra.py) for a token that will never be accepted but whose successor may be: the
# signing key is gone or replaced (a restarted local stand-in, a key rollover), it expired, or it names an
# issuer that moved. Not the 403s (role, tenant): a new token of the same principal would be refused too.
STALE_TOKEN_CODES = frozenset({"unknown_signing_key", "invalid_signature", "token_expired", "invalid_issuer"})


class CliError(Exception):
    exit_code = API_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(CliError):
    exit_code = USAGE


class AuthError(CliError):
    exit_code = AUTH


class NotSignedIn(AuthError):
    def __init__(self, message: str = "Not signed in: run `python -m admin login` first.") -> None:
        super().__init__(message)


class Unavailable(CliError):
    exit_code = UNAVAILABLE


class ApiError(CliError):
    """An error answer of the admin API, carrying its OpenAI-style message."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        if status == 401:
            self.message = f"{message} (sign in again: `python -m admin login`)"
        if status in (401, 403):
            self.exit_code = AUTH
        elif status >= 500:
            self.exit_code = UNAVAILABLE

    @property
    def stale_token(self) -> bool:
        """The API refused the token itself, and a newly acquired one may be accepted."""
        return self.status == 401 and self.code in STALE_TOKEN_CODES
