"""A loopback stand-in for Entra (OIDC + JWKS, client credentials, device code sign-in), App Service's
managed-identity endpoint, ARM and the Marketplace Metering Service."""

from localdev.standin.app import create_app
from localdev.standin.device_code import approve_device_code, decline_device_code
from localdev.standin.directory import OPERATOR_UPN, USER_UPN
from localdev.standin.identities import ManagedIdentity, stable_guid
from localdev.standin.server import RunningStandin, start_in_thread
from localdev.standin.state import StandinConfig, StandinState

__all__ = [
    "OPERATOR_UPN",
    "USER_UPN",
    "ManagedIdentity",
    "RunningStandin",
    "StandinConfig",
    "StandinState",
    "approve_device_code",
    "create_app",
    "decline_device_code",
    "stable_guid",
    "start_in_thread",
]
