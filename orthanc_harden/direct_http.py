"""HTTP from the control node straight to Orthanc, never through a proxy named in the environment.

Health gates and probes send the store's passwords as basic authentication: through an ``HTTP_PROXY`` they would
reach the proxy in clear, and a proxy would also answer for an Orthanc it cannot see.
"""

from __future__ import annotations

import requests


def get(url: str, verify: bool | str = True, **kwargs) -> requests.Response:
    """``requests.get`` that ignores HTTP(S)_PROXY, NO_PROXY, .netrc and REQUESTS_CA_BUNDLE from the environment.
    `verify`: True (the system's CAs), a CA bundle path, or False (never by default)."""
    with requests.Session() as session:
        session.trust_env = False
        return session.get(url, verify=verify, **kwargs)
