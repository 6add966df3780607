"""Network probe from the control node: is Orthanc's REST API open to anonymous or default-credential requests?"""

from __future__ import annotations

import requests

from .. import direct_http
from ..orthanc import DEFAULT_CREDENTIALS


REALM = "Orthanc Secure Area"
TIMEOUT = 5.0


def probe(url: str) -> dict:
    """GET /system anonymously, then with well-known default credentials when authentication answers 401."""
    result = {"url": url, "anonymous_status": None, "realm": None, "default_credentials_accepted": [],
              "version": None, "error": None}
    try:
        response = direct_http.get(f"{url.rstrip('/')}/system", timeout=TIMEOUT, allow_redirects=False)
    except requests.RequestException as err:
        result["error"] = f"not reachable: {type(err).__name__}"
        return result
    result["anonymous_status"] = response.status_code
    if response.status_code == 200:
        result["version"] = _version(response)
    elif response.status_code == 401:
        challenge = response.headers.get("WWW-Authenticate", "")
        result["realm"] = REALM if REALM in challenge else challenge or None
        for user, password in DEFAULT_CREDENTIALS:
            try:
                answer = direct_http.get(f"{url.rstrip('/')}/system", auth=(user, password), timeout=TIMEOUT)
            except requests.RequestException:
                continue
            if answer.status_code == 200:
                result["default_credentials_accepted"].append(user)
                result["version"] = _version(answer)
    return result


def _version(response) -> str | None:
    try:
        return response.json().get("Version")
    except ValueError:
        return None
