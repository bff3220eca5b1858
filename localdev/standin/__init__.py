"""A loopback stand-in for Entra (OIDC + JWKS), App Service's managed-identity endpoint and ARM."""

from localdev.standin.app import create_app
from localdev.standin.identities import ManagedIdentity, stable_guid
from localdev.standin.server import RunningStandin, start_in_thread
from localdev.standin.state import StandinConfig, StandinState

__all__ = [
    "ManagedIdentity",
    "RunningStandin",
    "StandinConfig",
    "StandinState",
    "create_app",
    "stable_guid",
    "start_in_thread",
]
