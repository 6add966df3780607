"""One malformed host in a fleet fails alone (#17): in ONE run with three healthy package hosts, a host whose
/etc/orthanc/orthanc.json does not parse and an Orthanc container, the healthy hosts end compliant with the
firewall applied, the broken host fails with one line naming it and the cause, nothing prints a traceback, every
Orthanc keeps serving its DICOM instances, and a second run changes and restarts nothing. The same through
pyinfra's own CLI (`pyinfra -y INVENTORY deploys/harden.py`), where an exception in one host's step used to end
the run for every host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import docker
import pytest
import requests

from tests.conftest import ROOT, run_cli
from tests.integration import hosts_fleet as hosts
from tests.integration.conftest import fresh_lab

pytestmark = pytest.mark.lab

LAB = "pytest-isolation"
PORT_BASE = 19600
ENGINE = f"@dockerengine/{LAB}-engine"
CANARY = "Canary-isolation-5e2a-\"x'"
BROKEN = 1  # lab-pkg-2; lab-pkg-1, -3 and -4 are healthy
AUTH = ("radiology", CANARY.encode())


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    data = fresh_lab(LAB, 4, 1, PORT_BASE)
    work = tmp_path_factory.mktemp("fleet")
    users = work / "users.json"
    users.write_text(json.dumps({"radiology": CANARY}))
    users.chmod(0o600)
    data["env"] = {"ORTHANC_HARDEN_LAB": LAB, "ORTHANC_HARDEN_LAB_USERS_REF": f"file:{users}"}
    data["work"] = work
    data["broken"] = data["hosts"][BROKEN]
    data["healthy"] = [h for i, h in enumerate(data["hosts"]) if i != BROKEN]
    data["broken_sum"] = hosts.break_config(data, data["broken"])
    yield data
    hosts.repair_config(data, data["broken"])
    run_cli("lab", "down", "--lab", LAB)


def _remediate(fleet) -> tuple[int, str, dict]:
    report = fleet["work"] / "report.json"
    report.unlink(missing_ok=True)
    proc = run_cli("remediate", "inventories/lab.py", "--json", str(report), env=fleet["env"])
    output = proc.stdout + proc.stderr
    text = report.read_text()
    assert CANARY not in output and CANARY not in text
    return proc.returncode, output, json.loads(text)


def _serving_everything(fleet) -> None:
    """Every Orthanc answers and still holds the DICOM instances the lab seeded."""
    for entry in fleet["hosts"] + fleet["containers"]:
        assert set(entry["seeded_instances"]) <= hosts.instances(entry, AUTH), f"{entry['name']} lost instances"


def _container_started(fleet) -> str:
    engine = docker.from_env()
    try:
        return engine.api.inspect_container(fleet["containers"][0]["container"])["State"]["StartedAt"]
    finally:
        engine.close()


def _broken_row(fleet, report: dict) -> dict:
    rows = {row["host"]: row for row in report["hosts"]}
    row = rows[fleet["broken"]["name"]]
    assert row["status"] == "failed", row
    assert row["reason"].startswith("/etc/orthanc/orthanc.json does not parse") and "\n" not in row["reason"]
    return rows


def test_one_malformed_host_fails_alone_and_the_fleet_is_remediated_twice(fleet):
    code, output, report = _remediate(fleet)
    assert code == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    rows = _broken_row(fleet, report)
    for entry in fleet["healthy"]:
        row = rows[entry["name"]]
        assert row["status"] == "changed", row
        assert any(c.startswith("auth: authentication on") for c in row["changes"]), row
        assert any(c.startswith("firewall: Orthanc ports restricted with ufw") for c in row["changes"]), row
        assert len(hosts.tool_rules(fleet, entry)) >= 2, "allow and deny rules of the tool in ufw"
        assert hosts.anonymous(entry) == 401
        assert requests.get(f"http://127.0.0.1:{entry['http_port']}/system", auth=AUTH, timeout=10).status_code \
            == 200
    assert rows[ENGINE]["status"] == "changed", rows[ENGINE]
    assert hosts.config_sum(fleet, fleet["broken"]) == fleet["broken_sum"], "nothing changed on the broken host"
    assert hosts.tool_rules(fleet, fleet["broken"]) == []
    _serving_everything(fleet)

    starts = {e["name"]: hosts.orthanc_starts(fleet, e) for e in fleet["healthy"]}
    container_started = _container_started(fleet)
    code, output, report = _remediate(fleet)
    assert code == 2 and "Traceback" not in output, output[-3000:]
    rows = _broken_row(fleet, report)
    for entry in fleet["healthy"] + [{"name": ENGINE}]:
        assert rows[entry["name"]]["status"] == "compliant" and rows[entry["name"]]["changes"] == [], \
            rows[entry["name"]]
    assert {e["name"]: hosts.orthanc_starts(fleet, e) for e in fleet["healthy"]} == starts, "no restart"
    assert _container_started(fleet) == container_started, "the container is not restarted either"
    _serving_everything(fleet)

    # The dry plan, the audit and the scheduled run report the same fleet the same way, host by host, without a
    # traceback (the plan used to end on the broken host's exception).
    dry = run_cli("remediate", "inventories/lab.py", "--dry", "--json", str(fleet["work"] / "dry.json"),
                  env=fleet["env"])
    assert dry.returncode == 2 and "Traceback" not in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-3000:]
    planned = _broken_row(fleet, json.loads((fleet["work"] / "dry.json").read_text()))
    assert all(planned[e["name"]]["status"] == "compliant" for e in fleet["healthy"]), planned
    audit = run_cli("audit", "inventories/lab.py", "--json", str(fleet["work"] / "audit.json"), env=fleet["env"])
    assert "Traceback" not in audit.stdout + audit.stderr and audit.returncode == 1, audit.stdout[-3000:]
    audited = json.loads((fleet["work"] / "audit.json").read_text())["instances"]
    assert all(r["compliant"] for r in audited if r["host"] != fleet["broken"]["name"])
    assert any("ORTH-007" in [f["id"] for f in r["findings"]] for r in audited if r["host"] == fleet["broken"]["name"])
    reports = fleet["work"] / "reports"
    timed = run_cli("scheduled-run", "remediate", "inventories/lab.py", "--report-dir", str(reports), env=fleet["env"])
    assert timed.returncode == 2 and "Traceback" not in timed.stdout + timed.stderr, timed.stderr[-3000:]
    assert timed.stdout.strip().count("\n") == 0 and "1 failed" in timed.stdout, timed.stdout
    (written,) = reports.glob("remediate-*.json")
    assert CANARY not in written.read_text()
    _broken_row(fleet, json.loads(written.read_text()))


def test_pyinfra_cli_runs_every_later_step_on_the_other_hosts(fleet):
    """Steps that come after the broken host's failing one (the firewall, the compliance check) still run on every
    other host: drift on two healthy hosts (or, run alone, the vulnerable lab) is fixed."""
    auth_drift, firewall_drift = fleet["healthy"][0], fleet["healthy"][2]
    hosts.auth_off(fleet, auth_drift)
    if hosts.tool_rules(fleet, firewall_drift):
        hosts.drop_one_tool_rule(fleet, firewall_drift)
    assert hosts.anonymous(auth_drift) == 200
    proc = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "inventories/lab.py", "deploys/harden.py"],
                          capture_output=True, text=True, timeout=900, cwd=ROOT, env={**os.environ, **fleet["env"]})
    output = proc.stdout + proc.stderr
    assert CANARY not in output
    assert proc.returncode == 1, output[-3000:]  # pyinfra's status: a host failed
    assert "Traceback" not in output, output[-3000:]
    broken = [line for line in output.splitlines() if f"[{fleet['broken']['name']}]" in line and "parse" in line]
    assert len(broken) == 1 and "/etc/orthanc/orthanc.json does not parse" in broken[0], output[-3000:]
    assert all(hosts.anonymous(entry) == 401 for entry in fleet["healthy"])
    rules = [sorted(hosts.tool_rules(fleet, entry)) for entry in fleet["healthy"]]
    assert rules[0] and all(r == rules[0] for r in rules), "the firewall step ran on every healthy host"
    assert any("ALLOW" in line for line in rules[0]) and any("DENY" in line for line in rules[0])
    assert hosts.config_sum(fleet, fleet["broken"]) == fleet["broken_sum"]
    _serving_everything(fleet)


def test_a_connection_lost_in_one_host_s_step_fails_that_host_alone(fleet):
    lost = fleet["healthy"][1]
    hosts.lose_connection_reading_state(fleet, lost)
    try:
        code, output, report = _remediate(fleet)
    finally:
        hosts.connection_kept(fleet, lost)
    assert code == 2 and "Traceback" not in output, output[-3000:]
    rows = _broken_row(fleet, report)
    assert rows[lost["name"]]["status"] == "failed"
    # Each later step of that host says so too; the first is where the connection died.
    assert rows[lost["name"]]["reason"].startswith(
        "upgrade: the host stopped answering, or a command reading its state failed"), rows[lost["name"]]
    assert "Traceback" in rows[lost["name"]]["traceback"], "the details are in the JSON report"
    for entry in (fleet["healthy"][0], fleet["healthy"][2]):
        assert rows[entry["name"]]["status"] in ("changed", "compliant"), rows[entry["name"]]
        assert hosts.tool_rules(fleet, entry), "the later firewall step ran"
    _serving_everything(fleet)
