"""A requests session pinned to one CA bundle, for msal against a TLS endpoint with a private CA."""

from __future__ import annotations

from typing import Any

import requests


class CaBundleSession(requests.Session):
    """msal's `verify=` sets Session.verify, which requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE
    override (psf/requests#3829); a per-request value is kept, so pass it as one."""

    def __init__(self, ca_bundle: str) -> None:
        super().__init__()
        self.verify = ca_bundle

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        return super().merge_environment_settings(url, proxies, stream, self.verify if verify is None else verify, cert)
