"""What the operator reads (#19 part A), on the real lab: findings in words, JUnit for CI, ORTH-108 for a local
engine's containers, and expected failures (a host whose sshd stopped answering, a host whose connection is cut
in the middle of an operation) as one line each, with no traceback unless --debug asks for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import docker
import pytest
import xmlschema

from tests.conftest import ROOT, run_cli
from tests.table_cells import row_of
from tests.integration import hosts_fleet as hosts
from tests.integration.conftest import fresh_lab, with_canary_users

pytestmark = pytest.mark.lab

# A test lab of its own (the suite's labs are pytest-*; 11200..11712 is used by no other test); both can be moved.
LAB = os.environ.get("OH_OUTPUT_TEST_LAB", "pytest-output")
PORT_BASE = int(os.environ.get("OH_OUTPUT_TEST_PORT_BASE", "11200"))
XSD = Path(__file__).resolve().parents[1] / "fixtures" / "junit" / "JUnit.xsd"
CANARY = "Canary-output-71b3-\"<&>'"
BANNER = "Error reading SSH protocol banner"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    data = fresh_lab(LAB, 2, 1, PORT_BASE)
    with_canary_users(data, LAB, tmp_path_factory.mktemp("output"), CANARY)
    yield data
    run_cli("lab", "down", "--lab", LAB)


def _sshd(lab: dict, index: int, action: str) -> None:
    """Stop or start a package host's sshd from the engine (the host itself then takes no SSH)."""
    container = docker.from_env().containers.get(lab["hosts"][index]["container"])
    code, output = container.exec_run(["systemctl", action, "ssh.socket", "ssh.service"])
    assert code == 0, output


def _run(lab: dict, *args: str):
    proc = run_cli(*args, env=lab["env"], timeout=600)
    assert CANARY not in proc.stdout + proc.stderr
    return proc


def _validated_cases(path: Path) -> dict:
    text = path.read_text()
    xmlschema.XMLSchema(str(XSD)).validate(text)
    assert CANARY not in text and "Traceback" not in text
    assert path.stat().st_mode & 0o777 == 0o600, "it lists exposed hosts: owner-only"
    suite = ET.fromstring(text).find("testsuite")
    return {(case.get("classname"), case.get("name")): case for case in suite.findall("testcase")}


def test_audit_in_words_with_junit_and_the_local_engine_probed(lab):
    junit = lab["work"] / "audit.xml"
    proc = _run(lab, "audit", "inventories/lab.py", "--junit", str(junit))
    assert proc.returncode == 1, proc.stderr[-2000:]
    row = row_of(proc.stdout, "lab-pkg-1")
    assert row["findings"].startswith("ORTH-002 remote access without authentication ORTH-108 anonymous access")
    assert row["status"].startswith("findings, ") and row["status"].endswith(" advisories")
    assert "ORTH-101" not in proc.stdout, "advisories are listed with -v only"
    assert "ORTH-101 HTTPS off (medium)" in row_of(_run(lab, "audit", "inventories/lab.py", "-v").stdout,
                                                   "lab-pkg-1")["findings"]

    engine = f"@dockerengine/{LAB}-engine"
    cases = _validated_cases(junit)
    container = lab["containers"][0]["container"]
    assert set(cases) == {("lab-pkg-1", "orthanc.service"), ("lab-pkg-2", "orthanc.service"), (engine, container)}
    for case in cases.values():
        failure = case.find("failure")
        assert failure is not None and "ORTH-002 (critical) Remote access allowed" in failure.text

    # An operator's inventory names the local engine only: no probe address is given for its containers.
    inventory = lab["work"] / "engine_only.py"
    inventory.write_text(f"engines = [({engine!r}, {{'orthanc_harden_docker_url': {lab['docker_host']!r}, "
                         f"'orthanc_harden_docker_filters': {{'label': 'orthanc-harden.lab={LAB}'}}}})]\n")
    text = _run(lab, "audit", str(inventory), "--json", "-").stdout
    report = json.loads(text[text.index("\n{") + 1:])  # the JSON follows the table
    (row,) = report["instances"]
    assert row["probe"]["url"] == f"http://127.0.0.1:{lab['containers'][0]['http_port']}"
    assert "ORTH-108" in {f["id"] for f in row["findings"] if f["status"] == "fail"}


def test_scheduled_audit_line_names_what_is_wrong(lab):
    proc = _run(lab, "scheduled-run", "audit", "inventories/lab.py", "--report-dir", str(lab["work"] / "reports"))
    assert proc.returncode == 1 and proc.stdout.strip().count("\n") == 0, proc.stdout
    assert "lab-pkg-1 orthanc.service: findings: ORTH-002 remote access without authentication" in proc.stdout


def test_the_audit_deploy_logs_findings_in_words(lab):
    proc = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "inventories/lab.py", "--limit", "lab-pkg-1",
                           "deploys/audit.py"], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, **lab["env"]})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "orthanc.service (package, version 1.10.1): findings: ORTH-002 remote access without authentication, " \
           "ORTH-108 anonymous access answered" in proc.stdout + proc.stderr



def test_a_configuration_that_does_not_parse_shows_remote_unknown(lab):
    broken = lab["hosts"][0]
    hosts.break_config(lab, broken)
    try:
        proc = _run(lab, "audit", "inventories/lab.py", "--limit", broken["name"])
    finally:
        hosts.repair_config(lab, broken)
    row = row_of(proc.stdout, broken["name"])
    assert (row["remote"], row["auth"], row["users"]) == ("?", "?", "?"), row
    assert "ORTH-007 configuration does not parse" in row["findings"]

def test_a_host_that_stopped_answering_is_one_line_without_a_traceback(lab):
    _sshd(lab, 1, "stop")
    try:
        quiet = _run(lab, "audit", "inventories/lab.py", "--junit", str(lab["work"] / "gone.xml"))
        verbose = _run(lab, "audit", "inventories/lab.py", "-v")
        debug = _run(lab, "audit", "inventories/lab.py", "--debug")
    finally:
        _sshd(lab, 1, "start")
    assert quiet.returncode == 2
    assert "Traceback" not in quiet.stdout + quiet.stderr, quiet.stderr[-3000:]
    assert BANNER in row_of(quiet.stdout, "lab-pkg-2")["findings"]  # a failed row's reason
    assert BANNER not in quiet.stderr, "the table says it; the terminal does not repeat it"
    assert "Traceback" not in verbose.stdout + verbose.stderr
    # One line per message; paramiko appends the socket's own error when there is one ("[Errno 104] ...").
    assert any(line.startswith(f"paramiko: Exception (client): {BANNER}") for line in verbose.stderr.splitlines()), \
        verbose.stderr[-2000:]
    assert "Traceback (most recent call last)" in debug.stderr and BANNER in debug.stderr
    error = _validated_cases(lab["work"] / "gone.xml")[("lab-pkg-2", "lab-pkg-2")].find("error")
    assert error is not None and BANNER in error.get("message")


def test_remediate_with_a_lost_and_a_silent_host_prints_no_traceback(lab):
    cut, silent = lab["hosts"]
    hosts.lose_connection_reading_state(lab, cut)  # the connection ends in the middle of the first step
    _sshd(lab, 1, "stop")
    try:
        quiet = _run(lab, "remediate", "inventories/lab.py", "--junit", str(lab["work"] / "fix.xml"))
        debug = _run(lab, "remediate", "inventories/lab.py", "--debug", "--limit", silent["name"])
    finally:
        _sshd(lab, 1, "start")
        hosts.connection_kept(lab, cut)
    output = quiet.stdout + quiet.stderr
    assert quiet.returncode == 2 and "Traceback" not in output, output[-3000:]
    assert row_of(quiet.stdout, cut["name"])["reason"].startswith("upgrade: the host stopped answering")
    assert BANNER in row_of(quiet.stdout, silent["name"])["reason"]
    assert "Traceback (most recent call last)" in debug.stderr
    cases = _validated_cases(lab["work"] / "fix.xml")
    assert cases[(cut["name"], cut["name"])].find("error") is not None
    assert cases[(silent["name"], silent["name"])].find("error") is not None
    engine = next(case for (host, _), case in cases.items() if host.startswith("@dockerengine/"))
    assert list(engine) == [], "the container host was remediated: its case passes"



def test_back_to_normal_the_fleet_converges_and_a_second_run_changes_nothing(lab):
    """After the failures above: the hosts are remediated; the second run changes and restarts nothing, and its
    report carries each instance's advisories in words."""
    first = _run(lab, "remediate", "inventories/lab.py")
    assert first.returncode == 0, first.stdout[-3000:]
    starts = [hosts.orthanc_starts(lab, entry) for entry in lab["hosts"]]
    report_file = lab["work"] / "again.json"
    again = _run(lab, "remediate", "inventories/lab.py", "--json", str(report_file), "--junit",
                 str(lab["work"] / "again.xml"))
    assert again.returncode == 0 and "Traceback" not in again.stdout + again.stderr, again.stdout[-3000:]
    report = json.loads(report_file.read_text())
    assert report["summary"]["changed"] == 0 and report["summary"]["compliant"] == len(report["hosts"])
    assert [hosts.orthanc_starts(lab, entry) for entry in lab["hosts"]] == starts, "no restart"
    for row in report["hosts"]:
        (audited,) = row["audit"]
        advisories = [f for f in audited["findings"] if f["status"] == "fail"]
        assert advisories and all(f["severity"] not in ("critical", "high") and f["short"] for f in advisories)
        assert row_of(again.stdout, row["host"])["status"] == f"compliant, {len(advisories)} advisories"
    assert all(list(case) == [] for case in _validated_cases(lab["work"] / "again.xml").values())
