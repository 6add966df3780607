"""Issue #17 on hosts set up as real fleets are (tests/integration/variants.py), all in ONE run: a host reached as
a sudo user, a host keeping its users in Debian's root:root 0644 orthanc.json, a host with two Orthanc units (one
under a systemd-escaped name), and a host whose configuration does not parse. Proxies are set in the control
node's environment and in the sudo host's command environment; the canary password holds ',}'.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.conftest import run_cli
from tests.listener import Listener
from tests.integration import variants
from tests.integration.conftest import SUBSET_INVENTORY, fresh_lab, ssh_to
from tests.integration.conftest import output_of as _sh

pytestmark = pytest.mark.lab

LAB = "pytest-realfleet"
PORT_BASE = 23200
CANARY = "Canary-real-7f3e,}x,]\"'"  # ',}' and ',]' inside a string are not JSON syntax
OLD_PASSWORD = "OldPass-1"
SEEDED = 3


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    data = fresh_lab(LAB, 4, 0, PORT_BASE)
    hosts = data["hosts"]
    work = tmp_path_factory.mktemp("realfleet")
    users = work / "users.json"
    users.write_text(json.dumps({"radiology": CANARY}))
    users.chmod(0o600)
    clients = [ssh_to(data, entry) for entry in hosts]
    try:
        variants.sudo_login(clients[0])
        variants.users_in_main_file(clients[1], "old", OLD_PASSWORD)
        variants.second_unit(clients[2])
        variants.malformed(clients[3])
    finally:
        for client in clients:
            client.close()
    host_proxy = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
                  "HTTP_PROXY": "http://127.0.0.1:9"}
    extra = {
        hosts[0]["name"]: {"ssh_user": "deploy", "_sudo": True, "_env": host_proxy,
                           "orthanc_harden_probe_url": None},
        hosts[2]["name"]: {"orthanc_harden_probe_urls": {
            "orthanc.service": f"http://127.0.0.1:{hosts[2]['http_port']}",
            variants.RESEARCH_UNIT: f"http://{hosts[2]['ip']}:{variants.RESEARCH_PORT}"}},
    }
    inventory = work / "inventory.py"
    inventory.write_text(SUBSET_INVENTORY)
    data.update(work=work, inventory=str(inventory), extra=extra, env={
        "ORTHANC_HARDEN_LAB": LAB, "ORTHANC_HARDEN_LAB_USERS_REF": f"file:{users}",
        "OH_TEST_HOSTS": ",".join(h["name"] for h in hosts), "OH_TEST_DATA": json.dumps(extra)})
    yield data
    run_cli("lab", "down", "--lab", LAB)


def _remediate(fleet, env: dict | None = None) -> tuple[int, str, dict]:
    report = fleet["work"] / "report.json"
    report.unlink(missing_ok=True)
    proc = run_cli("remediate", fleet["inventory"], "--json", str(report), env={**fleet["env"], **(env or {})},
                   timeout=1200)
    output = proc.stdout + proc.stderr
    text = report.read_text()
    assert CANARY not in output and CANARY not in text, "the canary password leaked"
    return proc.returncode, output, json.loads(text)


def _status(url: str, auth=None) -> int:
    deadline = time.monotonic() + 60
    while True:
        try:
            return requests.get(f"{url}/system", auth=auth, timeout=10).status_code
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _urls(fleet) -> list[str]:
    hosts = fleet["hosts"]
    return [f"http://127.0.0.1:{hosts[i]['http_port']}" for i in range(3)] + [
        f"http://{hosts[2]['ip']}:{variants.RESEARCH_PORT}"]


def _pids(fleet) -> list[str]:
    pids = []
    for index, unit in ((0, "orthanc.service"), (1, "orthanc.service"), (2, "orthanc.service"),
                        (2, variants.RESEARCH_UNIT)):
        pids.append(_sh(fleet, index, f"systemctl show -p MainPID --value '{unit}'").strip())
    return pids


def test_a_shared_probe_url_is_refused_on_a_host_with_two_units(fleet):
    """One URL for two units made the gate of one ask the other and roll back: refused, nothing changed."""
    name = fleet["hosts"][2]["name"]
    before = _sh(fleet, 2, "sha256sum /etc/orthanc/*.json /etc/orthanc-research/*.json")
    code, output, report = _remediate(fleet, {"OH_TEST_HOSTS": name, "OH_TEST_DATA": "{}"})
    row = next(r for r in report["hosts"] if r["host"] == name)
    assert code == 2 and row["status"] == "failed", output[-2000:]
    assert "orthanc_harden_probe_url names one URL for 2 Orthanc units" in row["reason"], row
    assert _sh(fleet, 2, "sha256sum /etc/orthanc/*.json /etc/orthanc-research/*.json") == before


def test_real_fleet_in_one_run_then_nothing_to_do(fleet):
    hosts = fleet["hosts"]
    names = [h["name"] for h in hosts]
    urls = _urls(fleet)
    assert all(_status(url) == 200 for url in urls), "every Orthanc starts exposed"
    pids = _pids(fleet)
    broken_before = _sh(fleet, 3, "sha256sum /etc/orthanc/orthanc.json")
    trap = Listener()
    proxy = f"http://127.0.0.1:{trap.port}"
    try:
        code, output, report = _remediate(fleet, {"HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy,
                                                  "https_proxy": proxy, "NO_PROXY": "", "no_proxy": ""})
    finally:
        trap.close()
    rows = {row["host"]: row for row in report["hosts"]}

    # The broken host fails alone, with one line naming the cause, and nothing of it is changed.
    assert code == 2, output[-3000:]
    assert rows[names[3]]["status"] == "failed" and "does not parse" in rows[names[3]]["reason"], rows[names[3]]
    assert "Traceback" not in output, output[-3000:]
    assert _sh(fleet, 3, "sha256sum /etc/orthanc/orthanc.json") == broken_before

    # Every healthy host is fixed, its firewall applied, and every Orthanc restarted onto the new configuration.
    for name in names[:3]:
        assert rows[name]["status"] == "changed", rows[name]
        assert any(c.startswith("firewall: Orthanc ports restricted") for c in rows[name]["changes"]), rows[name]
    for url in urls:
        assert _status(url) == 401, url
        assert _status(url, ("radiology", CANARY.encode())) == 200, url
    after = _pids(fleet)
    assert all(a != b for a, b in zip(after, pids, strict=True)), f"each unit restarted once: {pids} -> {after}"
    assert trap.connections == 0, "a health check or probe went through the environment's proxy"

    # Users kept in the main file: Orthanc (User=orthanc) still reads it, no one else does.
    assert _sh(fleet, 1, "stat -c '%U:%G %a' /etc/orthanc/orthanc.json").strip() == "root:orthanc 640"
    assert _sh(fleet, 2, "stat -c '%U:%G %a' /etc/orthanc-research/orthanc.json").strip() == "root:orthanc 640"
    # The pre-tool original is kept owner-only; no rollback copy (with the previous passwords) is left behind.
    original = "/etc/orthanc/orthanc.json.orthanc-harden-original"
    assert _sh(fleet, 1, f"stat -c '%U %a' {original}").strip() == "root 600"
    assert OLD_PASSWORD in _sh(fleet, 1, f"cat {original}")
    assert _sh(fleet, 1, "ls /etc/orthanc/ | grep -c orthanc-harden-backup || true").strip() == "0"

    # DICOM storage untouched.
    for url in urls[:3]:
        instances = requests.get(f"{url}/instances", auth=("radiology", CANARY.encode()), timeout=10).json()
        assert len(instances) == SEEDED, url

    # Second run: nothing to change, nothing restarted, the broken host still failing alone.
    code, output, report = _remediate(fleet)
    rows = {row["host"]: row for row in report["hosts"]}
    assert code == 2, output[-3000:]
    for name in names[:3]:
        assert rows[name]["status"] == "compliant" and rows[name]["changes"] == [], rows[name]
    assert _pids(fleet) == after, "a second run must restart nothing"


def test_a_rotated_password_leaves_only_the_pre_tool_original_behind(fleet):
    """Issue #18.5: the backup used to be overwritten at every change, so the pre-tool original was lost after two
    changes, and the previous password stayed on disk after a rotation."""
    rotated = "Rotated-real-2b9d"
    users = fleet["env"]["ORTHANC_HARDEN_LAB_USERS_REF"].removeprefix("file:")
    with open(users, "w") as handle:
        json.dump({"radiology": rotated}, handle)
    code, output, report = _remediate(fleet)
    name = fleet["hosts"][1]["name"]
    row = next(r for r in report["hosts"] if r["host"] == name)
    assert row["status"] == "changed", row
    assert _status(_urls(fleet)[1], ("radiology", rotated)) == 200
    original = "/etc/orthanc/orthanc.json.orthanc-harden-original"
    kept = _sh(fleet, 1, f"cat {original}")
    assert OLD_PASSWORD in kept and rotated not in kept, "the original is the file as it was before the tool"
    leftovers = _sh(fleet, 1, f"grep -rlF -- {CANARY[:16]} /etc/orthanc || true").strip()
    assert leftovers == "", f"the previous password is still on disk: {leftovers}"
