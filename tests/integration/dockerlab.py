"""Helpers shared by the tests that drive Orthanc containers on a real Docker engine."""

from __future__ import annotations

import json
import textwrap
import time

import requests

from tests.conftest import run_cli

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


def run_engines(command: str, inventory, report, engines: dict, canary: str, *args: str) -> tuple[int, str, dict]:
    """`orthanc-harden COMMAND` on an ENGINES_INVENTORY with `engines`; the canary must reach neither the output
    nor the JSON report. Returns the exit status, the output and the parsed report."""
    report.unlink(missing_ok=True)
    proc = run_cli(command, str(inventory), "--json", str(report), *args,
                   env={"OH_TEST_ENGINES": json.dumps(engines)})
    output = proc.stdout + proc.stderr
    assert canary not in output, "the canary password reached the run's output"
    text = report.read_text()
    assert canary not in text, "the canary password reached the JSON report"
    return proc.returncode, output, json.loads(text)


def rows(report: dict) -> dict:
    return {row["host"]: row for row in report["hosts"]}


def clean(client, label: str, kind: str) -> None:
    """Remove what a test module created on the engine: everything labelled `label=kind`, volumes included."""
    selector = {"label": f"{label}={kind}"}
    for item in client.containers.list(all=True, filters=selector):
        item.remove(force=True, v=True)
    for item in client.volumes.list(filters=selector):
        item.remove(force=True)
    for item in client.networks.list(filters=selector):
        item.remove()
