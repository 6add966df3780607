"""`orthanc-harden remediate` and the scheduled run on a vulnerable lab fleet: before/after audits, a second run
that changes and restarts nothing, a dry plan, drift fixed by the scheduled command, broken hosts reported while
the rest is remediated, and the library imported from an unrelated deploy file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import docker
import pytest
import requests

from tests.conftest import ROOT, run_cli
from tests.integration.conftest import SUBSET_INVENTORY, fresh_lab, with_canary_users
from tests.integration.conftest import output_of as _on
from tests.integration.hosts_fleet import anonymous as _anonymous

pytestmark = pytest.mark.lab

LAB = "pytest-remediate"
ENGINE = f"@dockerengine/{LAB}-engine"  # the lab's Orthanc container, reached through the Docker Engine API
CANARY = "Canary-fleet-31d7-\"x'"
FLIP = ('sed -i \'s/"AuthenticationEnabled" *: *true/"AuthenticationEnabled" : false/\' /etc/orthanc/orthanc.json '
        "&& systemctl restart orthanc")


@pytest.fixture(scope="module")
def fleet(lab, tmp_path_factory):
    data = fresh_lab(LAB, 3, 1, 30600)
    with_canary_users(data, LAB, tmp_path_factory.mktemp("remediate"), CANARY)
    yield data
    run_cli("lab", "down", "--lab", LAB)


def _remediate(fleet, *args: str, inventory: str = "inventories/lab.py") -> tuple[int, str, dict | None]:
    report = fleet["work"] / "report.json"
    report.unlink(missing_ok=True)
    proc = run_cli("remediate", inventory, "--json", str(report), *args, env=fleet["env"])
    output = proc.stdout + proc.stderr
    assert CANARY not in output
    parsed = None
    if report.exists():
        text = report.read_text()
        assert CANARY not in text
        parsed = json.loads(text)
    return proc.returncode, output, parsed


def _statuses(report: dict) -> dict[str, str]:
    return {row["host"]: row["status"] for row in report["hosts"]}


def _starts(fleet) -> list[str]:
    return [_on(fleet, i, "journalctl --no-pager -o cat -u orthanc | grep -c '^Started orthanc' || true").strip()
            for i in range(len(fleet["hosts"]))]


def _container_started(fleet) -> list[str]:
    engine = docker.from_env()
    try:
        return [engine.api.inspect_container(c["container"])["State"]["StartedAt"] for c in fleet["containers"]]
    finally:
        engine.close()


def test_fleet_lifecycle(fleet):
    """The lab as a mixed fleet: three package hosts over SSH and an Orthanc container behind the engine API."""
    names = [h["name"] for h in fleet["hosts"]]
    entries = fleet["hosts"] + fleet["containers"]
    assert len(fleet["containers"]) == 1
    assert all(_anonymous(e) == 200 for e in entries), "the lab starts vulnerable"
    before = run_cli("audit", "inventories/lab.py", env=fleet["env"])
    assert before.returncode == 1, before.stdout[-1500:]

    code, output, report = _remediate(fleet)
    assert code == 0, output[-3000:]
    assert _statuses(report) == dict.fromkeys([*names, ENGINE], "changed")
    for row in report["hosts"]:
        if row["host"] == ENGINE:
            container = fleet["containers"][0]["container"]
            assert any(c.startswith(f"container {container}: ") and "authentication on" in c
                       for c in row["changes"]), row
            continue
        assert any(c.startswith("auth: authentication on") for c in row["changes"]), row
        assert any(c.startswith("firewall: Orthanc ports restricted with ufw") for c in row["changes"]), row
    for entry in entries:
        assert _anonymous(entry) == 401
        url = f"http://127.0.0.1:{entry['http_port']}/system"
        assert requests.get(url, auth=("radiology", CANARY), timeout=10).status_code == 200
    after = run_cli("audit", "inventories/lab.py", env=fleet["env"])
    assert after.returncode == 0, after.stdout[-1500:]

    starts, container_starts = _starts(fleet), _container_started(fleet)
    code, output, report = _remediate(fleet)
    assert code == 0, output[-3000:]
    assert _statuses(report) == dict.fromkeys([*names, ENGINE], "compliant")
    assert all(row["changes"] == [] for row in report["hosts"])
    assert _starts(fleet) == starts, "a second run must restart nothing"
    assert _container_started(fleet) == container_starts, "nor the container"

    # Drift on one host: the dry plan names it, changes nothing, and says so in its exit status.
    _on(fleet, 1, FLIP)
    assert _anonymous(fleet["hosts"][1]) == 200
    code, output, report = _remediate(fleet, "--dry")
    assert code == 1, output[-3000:]
    assert _statuses(report) == {names[0]: "compliant", names[1]: "would-change", names[2]: "compliant",
                                 ENGINE: "compliant"}
    assert report["dry"] is True and _anonymous(fleet["hosts"][1]) == 200


def _scheduled_command(fleet, env_file: Path) -> tuple[str, list[str]]:
    """Install the schedule on this machine (@local) and return the command its timer or cron file runs."""
    data = {"orthanc_harden_schedule_inventory": str(ROOT / "inventories/lab.py"),
            "orthanc_harden_schedule_report_dir": str(fleet["work"] / "reports"),
            "orthanc_harden_schedule_keep": 2,
            "orthanc_harden_schedule_environment_file": str(env_file)}
    args = [a for k, v in data.items() for a in ("--data", f"{k}={v}")]
    outputs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "@local", "deploys/schedule.py", *args],
                              capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outputs.append(proc.stdout + proc.stderr)
    assert "[@local] No changes" in outputs[1], "installing the schedule again changes nothing"
    if Path("/run/systemd/system").exists():
        unit = Path("/etc/systemd/system/orthanc-harden-remediate.service").read_text()
        command = next(line for line in unit.splitlines() if line.startswith("ExecStart=")).split("=", 1)[1]
        return f"set -a; . {env_file}; set +a; {command}", outputs
    cron = Path("/etc/cron.d/orthanc-harden-remediate").read_text()
    line = next(line for line in cron.splitlines() if "scheduled-run" in line)
    assert line.split()[:6] == ["17", "*", "*", "*", "*", "root"]
    return " ".join(line.split()[6:]), outputs


def test_drift_is_fixed_by_the_scheduled_run_with_lock_and_retention(fleet):
    env_file = fleet["work"] / "schedule.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in fleet["env"].items()))
    env_file.chmod(0o600)
    reports = fleet["work"] / "reports"
    try:
        command, outputs = _scheduled_command(fleet, env_file)
        assert CANARY not in "".join(outputs)
        _on(fleet, 1, FLIP)
        # Trigger by hand what the timer runs, with an environment as bare as cron's.
        bare = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
        proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=900, env=bare, cwd="/")
        assert proc.returncode == 0, proc.stdout[-1000:] + proc.stderr[-2000:]
        written = sorted(reports.glob("remediate-*.json"))
        assert len(written) == 1 and oct(written[0].stat().st_mode & 0o777) == "0o600"
        report = json.loads(written[0].read_text())
        names = [h["name"] for h in fleet["hosts"]]
        assert _statuses(report) == {names[0]: "compliant", names[1]: "changed", names[2]: "compliant",
                                     ENGINE: "compliant"}
        assert _anonymous(fleet["hosts"][1]) == 401
        assert CANARY not in proc.stdout + proc.stderr + written[0].read_text()

        # A run while another holds the lock is skipped (75) and writes nothing; retention keeps the newest two.
        import fcntl

        with open(reports / ".lock", "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            locked = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=300, env=bare)
        assert locked.returncode == 75 and "holds" in locked.stdout
        assert sorted(reports.glob("remediate-*.json")) == written
        for _ in range(2):
            assert subprocess.run(["sh", "-c", command], capture_output=True, timeout=900, env=bare).returncode == 0
        kept = sorted(reports.glob("remediate-*.json"))
        assert len(kept) == 2 and written[0] not in kept
    finally:
        data = ["--data", f"orthanc_harden_schedule_inventory={ROOT / 'inventories/lab.py'}",
                "--data", "orthanc_harden_schedule_remove=true"]
        subprocess.run([sys.executable, "-m", "pyinfra", "-y", "@local", "deploys/schedule.py", *data],
                       capture_output=True, timeout=300, cwd=ROOT)
    assert not Path("/etc/cron.d/orthanc-harden-remediate").exists()
    assert not Path("/etc/systemd/system/orthanc-harden-remediate.timer").exists()


def test_broken_hosts_fail_alone_and_the_rest_is_remediated(fleet):
    inventory = fleet["work"] / "broken.py"
    inventory.write_text(textwrap.dedent(f"""
        from orthanc_harden.lab.inventory import groups
        _hosts = groups({LAB!r})["package_hosts"]
        package_hosts = _hosts + [("lab-unreachable", {{**_hosts[0][1], "ssh_port": 30699}})]
    """))
    config_sum = "sha256sum /etc/orthanc/orthanc.json"
    _on(fleet, 0, "cp -p /etc/orthanc/orthanc.json /root/orthanc.json.good && echo '{ broken' >> "
                  "/etc/orthanc/orthanc.json")
    broken_before = _on(fleet, 0, config_sum)
    _on(fleet, 2, FLIP)
    try:
        code, output, report = _remediate(fleet, inventory=str(inventory))
        broken_after = _on(fleet, 0, config_sum)
    finally:
        _on(fleet, 0, "cp -p /root/orthanc.json.good /etc/orthanc/orthanc.json")
    assert code == 2, output[-3000:]
    rows = {row["host"]: row for row in report["hosts"]}
    names = [h["name"] for h in fleet["hosts"]]
    assert rows[names[0]]["status"] == "failed"
    assert "/etc/orthanc/orthanc.json does not parse" in rows[names[0]]["reason"]
    assert rows["lab-unreachable"]["status"] == "failed"
    assert rows["lab-unreachable"]["reason"].startswith("unreachable:")
    assert rows[names[1]]["status"] == "compliant" and rows[names[2]]["status"] == "changed"
    assert broken_after == broken_before, "nothing is changed on the broken host"
    assert _anonymous(fleet["hosts"][2]) == 401


def test_library_imported_from_an_unrelated_deploy(fleet, tmp_path):
    from orthanc_harden.operations import auth, firewall, verdict, schedule, upgrade

    for op in (auth.authentication, firewall.restrict, upgrade.package, verdict.compliant, verdict.failed,
               schedule.timer):
        assert "**Example:**" in (op.__doc__ or ""), f"{op.__name__} needs a docstring with an example"
    deploy = tmp_path / "site_deploy.py"
    deploy.write_text(textwrap.dedent("""
        from pyinfra.operations import server

        from orthanc_harden.deploys import harden

        server.shell(name="The operator's own step", commands=["true"])
        harden()
    """))
    inventory = tmp_path / "inventory.py"
    inventory.write_text(SUBSET_INVENTORY)
    entry = fleet["hosts"][1]
    env = {**os.environ, **fleet["env"], "OH_TEST_HOSTS": entry["name"]}
    proc = subprocess.run([sys.executable, "-m", "pyinfra", "-y", str(inventory), str(deploy)], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path, env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "The operator's own step" in output and "Orthanc authentication" in output
    assert CANARY not in output
