"""Signing in with msal: the device code flow for people, client credentials for automation.

Tokens live only in msal's cache file (0600, in a 0700 folder); nothing here prints or logs one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import msal
import requests
from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS

from admin.cli.config import Config
from admin.cli.errors import AuthError, NotSignedIn, Unavailable, UsageError
from admin.cli.files import read_text, remove, write_private
from core.ca_bundle import CaBundleSession

HTTP_TIMEOUT_SECONDS = 30


class TokenCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.cache = msal.SerializableTokenCache()
        text = read_text(path)
        if text:
            self.cache.deserialize(text)

    def save(self) -> None:
        if self.cache.has_state_changed:
            write_private(self.path, self.cache.serialize())


def _failure(result: dict[str, Any] | None, fallback: str) -> str:
    # Entra's error_description names codes and apps, never a token or secret.
    if not result:
        return fallback
    return str(result.get("error_description") or result.get("error") or fallback).splitlines()[0]


class SignIn:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._cache: TokenCache | None = None
        self._application: Any = None
        self._http: requests.Session | None = None

    @property
    def uses_client_secret(self) -> bool:
        return bool(self.config.client_secret)

    @property
    def cache(self) -> TokenCache:
        if self._cache is None:
            self._cache = TokenCache(self.config.token_cache)
        return self._cache

    def _require(self) -> None:
        missing = [name for name in ("tenant", "client_id", "scope") if not getattr(self.config, name)]
        if missing:
            flags = ", ".join(f"--{name.replace('_', '-')}" for name in missing)
            raise UsageError(f"Sign-in needs {flags} (or a profile: see `python -m admin --help`).")

    def _app(self) -> Any:
        if self._application is not None:
            return self._application
        self._require()
        host = urlsplit(self.config.authority).hostname
        options: dict[str, Any] = {
            "authority": self.config.authority_url,
            "token_cache": self.cache.cache,
            "timeout": HTTP_TIMEOUT_SECONDS,
            # Entra's own hosts are validated as usual; any other (a local stand-in) is taken as given.
            "instance_discovery": None if host in WELL_KNOWN_AUTHORITY_HOSTS else False,
        }
        if self.config.ca_bundle:
            self._http = CaBundleSession(self.config.ca_bundle)
            options["http_client"] = self._http
        try:
            if self.uses_client_secret:
                self._application = msal.ConfidentialClientApplication(
                    self.config.client_id, client_credential=self.config.client_secret, **options
                )
            else:
                self._application = msal.PublicClientApplication(self.config.client_id, **options)
        except requests.RequestException as error:
            raise Unavailable(
                f"Cannot reach the sign-in authority {self.config.authority}: {type(error).__name__}"
            ) from None
        except ValueError as error:
            raise AuthError(f"The sign-in authority refused: {str(error).splitlines()[0]}") from None
        return self._application

    def login(self, stderr: TextIO) -> str:
        """Signs in and returns who is signed in (a UPN or the app's client ID)."""
        if self.uses_client_secret:
            # A cached token would prove nothing about the secret given now.
            self._forget_access_tokens()
            self._client_token()
            return f"app {self.config.client_id}"
        claims = self._device_flow(stderr).get("id_token_claims") or {}
        return str(claims.get("preferred_username") or claims.get("oid") or "signed in")

    def renew(self, stderr: TextIO) -> str:
        """After the API refused the cached token: forgets it and gets a new one, silently with client
        credentials, by a new device-code sign-in for a person."""
        self._forget_access_tokens()
        if self.uses_client_secret:
            return self._client_token()
        print("The admin API refused your cached sign-in: sign in again.", file=stderr, flush=True)
        return str(self._device_flow(stderr)["access_token"])

    def _forget_access_tokens(self) -> None:
        entries = self.cache.cache.search(
            msal.TokenCache.CredentialType.ACCESS_TOKEN, query={"client_id": self.config.client_id}
        )
        for entry in list(entries):
            self.cache.cache.remove_at(entry)
        # Saved at once: a refused token must not come back on the next run if getting a new one fails.
        self.cache.save()

    def _device_flow(self, stderr: TextIO) -> dict[str, Any]:
        app = self._app()
        flow = app.initiate_device_flow(scopes=[self.config.scope])
        if "user_code" not in flow:
            raise AuthError(f"Sign-in could not start: {_failure(flow, 'no device code')}")
        print(flow["message"], file=stderr, flush=True)
        result: dict[str, Any] = app.acquire_token_by_device_flow(flow)
        if "access_token" not in result:
            raise AuthError(f"Sign-in failed: {_failure(result, 'no token')}")
        self.cache.save()
        return result

    def token(self) -> str:
        """An access token for the admin API, from the cache (refreshed as needed)."""
        if self.uses_client_secret:
            return self._client_token()
        if not list(self.cache.cache.search(msal.TokenCache.CredentialType.ACCOUNT)):
            raise NotSignedIn()
        app = self._app()
        accounts = app.get_accounts()
        result = app.acquire_token_silent([self.config.scope], account=accounts[0]) if accounts else None
        if not result or "access_token" not in result:
            raise NotSignedIn(f"Not signed in ({_failure(result, 'no cached sign-in')}): run `python -m admin login`.")
        self.cache.save()
        return str(result["access_token"])

    def _client_token(self) -> str:
        result = self._app().acquire_token_for_client(scopes=[self.config.app_scope])
        if "access_token" not in result:
            raise AuthError(f"Client credentials refused: {_failure(result, 'no token')}")
        self.cache.save()
        return str(result["access_token"])

    def accounts(self) -> list[dict[str, Any]]:
        return list(self.cache.cache.search(msal.TokenCache.CredentialType.ACCOUNT))

    def close(self) -> None:
        if self._application is not None:
            self._application.http_client.close()
        if self._http is not None:
            self._http.close()

    def logout(self) -> bool:
        """Forgets every cached token and account."""
        self._cache = None
        return remove(self.config.token_cache)
