"""Helpers shared by the tests that drive Orthanc containers on a real Docker engine."""

from __future__ import annotations

import textwrap
import time

import requests

VULNERABLE = textwrap.dedent("""\
    {
      // test container: the CVE-2025-0896 state, on purpose
      "Name" : "%s",
      "RemoteAccessAllowed" : true,
      "AuthenticationEnabled" : false,
      "StorageDirectory" : "%s",
      "IndexDirectory" : "%s"
    }
    """)

# An inventory of @dockerengine hosts, one per entry of the JSON in OH_TEST_ENGINES ({name: host data}).
ENGINES_INVENTORY = """
import json, os
_spec = json.loads(os.environ["OH_TEST_ENGINES"])
container_engines = [(f"@dockerengine/{name}", data) for name, data in _spec.items()]
"""


def wait_http(port: int, auth=None, want=None, timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        try:
            status = requests.get(f"http://127.0.0.1:{port}/system", auth=auth, timeout=5).status_code
            if want is None or status == want:
                return status
        except requests.RequestException:
            pass
        time.sleep(1)
    return status


def config_dir(tmp, name: str, storage: str) -> str:
    directory = tmp / name
    directory.mkdir()
    path = directory / "orthanc.json"
    path.write_text(VULNERABLE % (name, storage, storage))
    path.chmod(0o640)
    return str(directory)
