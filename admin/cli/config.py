"""Where the CLI finds the admin API and how it signs in: flags, then LIUTONG_ADMIN_* variables, then the
profile (`make run` writes one for the local stack), then defaults.

The CLI's client ID variable is LIUTONG_ADMIN_CLI_CLIENT_ID: LIUTONG_ADMIN_CLIENT_ID is the service's
setting for the admin API's own app registration, a different app.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from admin.cli.errors import UsageError
from admin.cli.files import read_text, write_private

DEFAULT_URL = "http://127.0.0.1:7071"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
PROFILE_FIELDS = ("url", "authority", "tenant", "client_id", "scope", "ca_bundle")
ENV_NAMES = {
    "url": "LIUTONG_ADMIN_URL",
    "authority": "LIUTONG_ADMIN_AUTHORITY",
    "tenant": "LIUTONG_ADMIN_TENANT",
    "client_id": "LIUTONG_ADMIN_CLI_CLIENT_ID",
    "scope": "LIUTONG_ADMIN_SCOPE",
    "ca_bundle": "LIUTONG_ADMIN_CA_BUNDLE",
    "client_secret": "LIUTONG_ADMIN_CLIENT_SECRET",
}
PROFILE_ENV = "LIUTONG_ADMIN_PROFILE"
# Marks a profile `make run` wrote (and may overwrite on its next start).
_LOCAL_MARK = "written_by_make_run"
TOKEN_CACHE_ENV = "LIUTONG_ADMIN_TOKEN_CACHE"  # noqa: S105 - a variable name


@dataclass(frozen=True)
class Config:
    url: str
    authority: str
    tenant: str | None
    client_id: str | None
    scope: str | None
    ca_bundle: str | None
    client_secret: str | None
    token_cache: Path
    profile: Path

    @property
    def authority_url(self) -> str:
        return f"{self.authority.rstrip('/')}/{self.tenant}"

    @property
    def app_scope(self) -> str | None:
        """Client credentials ask for the whole resource: `<app id uri>/.default`."""
        if not self.scope:
            return None
        resource = self.scope.rsplit("/", 1)[0] if "/" in self.scope.removeprefix("api://") else self.scope
        return f"{resource}/.default"


def _user_dir(environ: Mapping[str, str], variable: str, fallback: str) -> Path:
    base = environ.get(variable) or str(Path(environ.get("HOME") or Path.home()) / fallback)
    return Path(base) / "liutong-admin"


def profile_path(environ: Mapping[str, str]) -> Path:
    explicit = environ.get(PROFILE_ENV)
    return Path(explicit) if explicit else _user_dir(environ, "XDG_CONFIG_HOME", ".config") / "profile.json"


def cache_path(environ: Mapping[str, str]) -> Path:
    explicit = environ.get(TOKEN_CACHE_ENV)
    return Path(explicit) if explicit else _user_dir(environ, "XDG_CACHE_HOME", ".cache") / "token_cache.json"


def load_profile(path: Path) -> dict[str, str]:
    text = read_text(path)
    if text is None:
        return {}
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{path} is not valid JSON") from error
    if not isinstance(values, dict):
        raise UsageError(f"{path} must hold a JSON object")
    return {name: str(values[name]) for name in PROFILE_FIELDS if values.get(name)}


def save_profile(path: Path, values: Mapping[str, str], *, local: bool = False) -> None:
    profile: dict[str, object] = {name: values[name] for name in PROFILE_FIELDS if values.get(name)}
    if local:
        profile[_LOCAL_MARK] = True
    write_private(path, json.dumps(profile, indent=2) + "\n")


def write_local_profile(values: Mapping[str, str], environ: Mapping[str, str]) -> Path:
    """The local stack's profile, at the default path unless a profile of the user's own is there."""
    path = profile_path(environ)
    text = read_text(path)
    if text is not None and _LOCAL_MARK not in text:
        path = path.with_name("local-profile.json")
    save_profile(path, values, local=True)
    return path


def resolve(flags: Mapping[str, str | None], environ: Mapping[str, str]) -> Config:
    """`flags` are the command line's values by field name (None when not given)."""
    explicit_profile = flags.get("profile")
    profile_file = Path(explicit_profile) if explicit_profile else profile_path(environ)
    profile = load_profile(profile_file)

    def pick(name: str) -> str | None:
        return flags.get(name) or environ.get(ENV_NAMES[name]) or profile.get(name) or None

    cache_file = flags.get("token_cache")
    return Config(
        url=(pick("url") or DEFAULT_URL).rstrip("/"),
        authority=pick("authority") or DEFAULT_AUTHORITY,
        tenant=pick("tenant"),
        client_id=pick("client_id"),
        scope=pick("scope"),
        ca_bundle=_existing_ca_bundle(pick("ca_bundle")),
        client_secret=flags.get("client_secret") or environ.get(ENV_NAMES["client_secret"]) or None,
        token_cache=Path(cache_file) if cache_file else cache_path(environ),
        profile=profile_file,
    )


def _existing_ca_bundle(path: str | None) -> str | None:
    if path is not None and not Path(path).is_file():
        raise UsageError(f"The CA bundle {path} does not exist (a local profile: run `make run` again).")
    return path
