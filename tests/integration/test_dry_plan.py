"""`remediate --dry` on a lab with a package host and a container below 1.5.8, ufw to enable: the output and the
JSON carry each host's plan (masked configuration diffs, firewall rules, package versions, container image and
settings, each from and to), the canary password reaches no channel, nothing changes on any host; the same run
without --dry then makes exactly the planned changes, keeps the seeded DICOM data, and a second one plans nothing.
pyinfra's own `--dry --diff` prints the same masked diffs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import docker
import pytest
import requests

from orthanc_harden.remote import load
from tests.conftest import ROOT, run_cli, unavailable
from tests.integration.conftest import output_of, with_canary_users

pytestmark = pytest.mark.lab

LAB = os.environ.get("OH_DRY_TEST_LAB", "pytest-dry")
PORT_BASE = int(os.environ.get("OH_DRY_TEST_PORT_BASE", "15200"))
ENGINE = f"@dockerengine/{LAB}-engine"
CANARY = "Canary-dry-4e9a-\"x'"
ETC_DIGEST = "find /etc -type f | sort | xargs -d '\\n' sha256sum | sha256sum"
STATE = ("dpkg-query -W -f '${Version}' orthanc; echo; ls -la --time-style=+%s /var/lib/apt/lists /var/cache/apt; "
         "systemctl show -p MainPID --value orthanc; ufw status | head -1")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    run_cli("lab", "down", "--lab", LAB)
    proc = run_cli("lab", "up", "--lab", LAB, "--hosts", "1", "--containers", "1", "--old-hosts", "1",
                   "--old-containers", "1", "--port-base", str(PORT_BASE))
    if proc.returncode != 0:
        unavailable(f"lab {LAB} did not start: {proc.stderr[-300:]}")
    from orthanc_harden.lab import state

    data = state.load(state.lab_dir(LAB))
    with_canary_users(data, LAB, tmp_path_factory.mktemp("dry"), CANARY)
    yield data
    run_cli("lab", "down", "--lab", LAB)


def _remediate(fleet, *args: str) -> tuple[int, str, dict]:
    report = fleet["work"] / "report.json"
    report.unlink(missing_ok=True)
    proc = run_cli("remediate", "inventories/lab.py", "--json", str(report), *args, env=fleet["env"])
    output = proc.stdout + proc.stderr
    assert CANARY not in output, "the canary password reached the output"
    text = report.read_text()
    assert CANARY not in text, "the canary password reached the JSON report"
    return proc.returncode, proc.stdout, {row["host"]: row for row in json.loads(text)["hosts"]}


def _snapshot(fleet) -> dict:
    """Everything a run could change: the package host's /etc and package state, the container's settings and
    mounted configuration."""
    client = docker.from_env()
    container = fleet["containers"][0]
    attrs = client.api.inspect_container(container["container"])
    files = {}
    for name in sorted(os.listdir(container["config_dir"])):
        with open(os.path.join(container["config_dir"], name)) as handle:
            files[name] = handle.read()
    return {"etc": output_of(fleet, 0, ETC_DIGEST), "state": output_of(fleet, 0, STATE),
            "container": [attrs["Id"], attrs["Config"], attrs["HostConfig"], attrs["State"]["StartedAt"]],
            "files": files}


def _instances(port: int) -> set[str]:
    answer = requests.get(f"http://127.0.0.1:{port}/instances", auth=("radiology", CANARY.encode()), timeout=10)
    answer.raise_for_status()
    return set(answer.json())


def test_dry_shows_the_masked_plan_changes_nothing_and_the_real_run_does_exactly_that(fleet):
    host, engine = fleet["hosts"][0], fleet["containers"][0]
    before = _snapshot(fleet)
    assert "1.5.7" in before["state"] and "inactive" in before["state"], before["state"]

    code, out, rows = _remediate(fleet, "--dry")
    assert code == 1 and rows["lab-pkg-1"]["status"] == rows[ENGINE]["status"] == "would-change", out
    # The configuration files, masked: the lines that change, never a password.
    assert '-  "AuthenticationEnabled" : false,\n+  "AuthenticationEnabled" : true,' in out
    assert '+    "radiology" : "*MASKED*"' in out and "+++ /etc/orthanc/credentials.json (planned)" in out
    assert f"+++ {engine['container']}:/etc/orthanc/orthanc.json (planned)" in out
    # Package, firewall and container, each from and to.
    assert "package orthanc: 1.5.7+lab-1 -> 1.10.1" in out
    subnet = fleet["subnet"]
    assert f"  + ufw allow proto tcp from {subnet} to any port 8042 comment orthanc-harden" in out
    assert "  + ufw deny proto tcp from 0.0.0.0/0 to any port 8042 comment orthanc-harden" in out
    assert "  + ufw --force enable" in out
    assert "/jodogne/orthanc:1.5.7 (Orthanc 1.5.7) -> " in out and "/jodogne/orthanc:1.10.1" in out
    # The JSON report carries the same plan.
    plan = rows["lab-pkg-1"]["plan"]
    assert plan["packages"][0]["from"] == "1.5.7+lab-1" and plan["packages"][0]["to"].startswith("1.10.1")
    assert {f["path"] for f in plan["files"]} == {"/etc/orthanc/orthanc.json", "/etc/orthanc/credentials.json"}
    assert "ufw --force enable" in plan["firewall"][0]["add"]
    container_plan = rows[ENGINE]["plan"]["containers"][0]["settings"]
    assert container_plan["image"]["to"].endswith("/jodogne/orthanc:1.10.1")
    assert _snapshot(fleet) == before, "the dry run changed a host"

    # pyinfra's own dry run with --diff (no -y: pyinfra then detects changes), at its highest verbosity: the
    # same masked diff, no password.
    proc = subprocess.run([sys.executable, "-m", "pyinfra", "--dry", "--diff", "-vvv", "inventories/lab.py",
                           "deploys/harden.py"], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, **fleet["env"]})
    pyinfra_out = proc.stdout + proc.stderr
    assert proc.returncode == 0, pyinfra_out[-2000:]
    assert CANARY not in pyinfra_out
    assert "Will change /etc/orthanc/credentials.json" in pyinfra_out
    assert '+    "radiology" : "*MASKED*"' in pyinfra_out
    assert _snapshot(fleet) == before, "pyinfra's dry run changed a host"

    container_files = rows[ENGINE]["plan"]["files"]
    code, out, rows = _remediate(fleet)
    assert code == 0 and rows["lab-pkg-1"]["status"] == rows[ENGINE]["status"] == "changed", out
    after = _snapshot(fleet)
    # Exactly the planned changes: each file went from its kept original to what the plan showed, masked alike.
    masked_diff = load("auth")["masked_diff"]
    for entry in plan["files"]:
        original = output_of(fleet, 0, f"cat {entry['path']}.orthanc-harden-original")
        current = output_of(fleet, 0, f"cat {entry['path']}")
        assert masked_diff(entry["path"], original, current) == entry["diff"], entry["path"]
    [entry] = container_files
    original = after["files"]["orthanc.json.orthanc-harden-original"]
    assert masked_diff(entry["path"], original, after["files"]["orthanc.json"]) == entry["diff"]
    assert plan["packages"][0]["to"] in after["state"]
    assert "Status: active" in output_of(fleet, 0, "ufw status")
    # The ufw rules the host now holds are the ones the plan listed, each as the command that adds it.
    firewall = load("firewall")
    rules_file = fleet["work"] / "user.rules"
    held = []
    for path in ("/etc/ufw/user.rules", "/etc/ufw/user6.rules"):
        rules_file.write_text(output_of(fleet, 0, f"cat {path}"))
        held += [firewall["_ufw_text"](rule).replace(f" comment {firewall['TAG']}", f" comment {rule['comment']}")
                 for rule in firewall["_ufw_tuples"](str(rules_file)) if rule["comment"].startswith("orthanc-harden")]
    listed = [rule for rule in plan["firewall"][0]["add"] if rule.endswith(" orthanc-harden")]
    # `ufw allow ... to any port 22` is stored once per family, from anywhere.
    ssh = [rule.split()[7] for rule in plan["firewall"][0]["add"] if rule.endswith(" orthanc-harden-ssh")]
    listed += [f"ufw allow proto tcp from {anywhere} to any port {port} comment orthanc-harden-ssh"
               for port in ssh for anywhere in ("0.0.0.0/0", "::/0")]
    assert sorted(held) == sorted(listed), held
    attrs = docker.from_env().api.inspect_container(engine["container"])
    assert attrs["Config"]["Image"] == container_plan["image"]["to"]
    # The seeded DICOM data is still there, on the upgraded package host and container.
    assert set(host["seeded_instances"]) <= _instances(host["http_port"])
    assert set(engine["seeded_instances"]) <= _instances(engine["http_port"])

    code, out, rows = _remediate(fleet, "--dry")
    assert code == 0 and all(row["status"] == "compliant" and not row["plan"] for row in rows.values()), out
    assert "what would change" not in out
    # A second real run changes and restarts nothing.
    started = _snapshot(fleet)
    code, out, rows = _remediate(fleet)
    assert code == 0 and all(row["status"] == "compliant" and not row["changes"] for row in rows.values()), out
    assert _snapshot(fleet) == started, "the second run changed or restarted something"

