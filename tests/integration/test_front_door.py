"""Issue #23: bad input at the front door. A missing or broken inventory, an empty selection, a mistyped or invalid
setting: one line naming the cause, the failing exit status, nothing changed on any host (a digest of the lab
host's /etc before and after), and a dry run that predicts the real run's verdict host by host."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_cli
from tests.integration.conftest import SUBSET_INVENTORY, fresh_lab, run_on, ssh_to

pytestmark = pytest.mark.lab

LAB, PORT_BASE = "pytest-frontdoor", 20200
ETC_DIGEST = "find /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum"

BAD_DATA = {
    "typo in a setting name": ({"orthanc_harden_allowed_cidr": ["10.0.0.0/8"]},
                               "orthanc_harden_allowed_cidr is not an orthanc-harden setting: "
                               "did you mean orthanc_harden_allowed_cidrs?"),
    "typo that would remove users": ({"orthanc_harden_users_mod": "merge"},
                                     "did you mean orthanc_harden_users_mode?"),
    "invalid network": ({"orthanc_harden_allowed_cidrs": ["10.0.0.300/8"]},
                        "'10.0.0.300/8' is not an IPv4 or IPv6 network"),
    "a string for a list": ({"orthanc_harden_allowed_cidrs": "10.0.0.0/8"},
                            "orthanc_harden_allowed_cidrs must be a list, not str"),
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    data = fresh_lab(LAB, 1, 0, PORT_BASE)
    work = tmp_path_factory.mktemp("frontdoor")
    users = work / "users.json"
    users.write_text(json.dumps({"radiology": "Front-door-canary-1"}))
    users.chmod(0o600)
    inventory = work / "inventory.py"
    inventory.write_text(SUBSET_INVENTORY)
    data.update(work=work, inventory=str(inventory), env={
        "ORTHANC_HARDEN_LAB": LAB, "ORTHANC_HARDEN_LAB_USERS_REF": f"file:{users}",
        "OH_TEST_HOSTS": data["hosts"][0]["name"]})
    yield data
    run_cli("lab", "down", "--lab", LAB)


def _digest(lab) -> str:
    client = ssh_to(lab, lab["hosts"][0])
    try:
        return run_on(client, ETC_DIGEST)[1]
    finally:
        client.close()


def _one_line_error(proc, expected: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stdout[-1000:] + proc.stderr[-2000:]
    assert lines == [lines[0]] and expected in lines[0], proc.stderr
    assert proc.stdout.strip() == "", "no table for a run that contacted no host"


def test_inventory_that_does_not_exist_is_not_all_compliant(lab, tmp_path):
    before = _digest(lab)
    for command in (("audit",), ("remediate",), ("remediate", "--dry")):
        _one_line_error(run_cli(*command, "nonexist.py"), "inventory nonexist.py does not exist")
    broken = tmp_path / "broken.py"
    broken.write_text("package_hosts = [('a', {)]\n")
    _one_line_error(run_cli("audit", str(broken)), f"inventory {broken}:1:")
    failing_import = tmp_path / "imports.py"
    failing_import.write_text("import no_such_module_here\n")
    _one_line_error(run_cli("remediate", str(failing_import)), "ModuleNotFoundError: No module named")
    _one_line_error(run_cli("remediate", lab["inventory"], "--limit", "no-such-host", env=lab["env"]),
                    "has no host matching --limit no-such-host")
    reports = tmp_path / "reports"
    reports.mkdir()
    scheduled = run_cli("scheduled-run", "remediate", "nonexist.py", "--report-dir", str(reports))
    assert scheduled.returncode == 2 and "inventory nonexist.py does not exist" in scheduled.stdout + scheduled.stderr
    assert _digest(lab) == before


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_settings_fail_the_host_alike_in_dry_and_real_runs(lab, case):
    data, expected = BAD_DATA[case]
    env = {**lab["env"], "OH_TEST_DATA": json.dumps({lab["hosts"][0]["name"]: data})}
    before = _digest(lab)
    verdicts = {}
    for mode in ("dry", "real"):
        report = lab["work"] / f"{mode}.json"
        proc = run_cli("remediate", lab["inventory"], "--json", str(report), *(["--dry"] if mode == "dry" else []),
                       env=env)
        (row,) = json.loads(report.read_text())["hosts"]
        verdicts[mode] = (proc.returncode, row["status"], row["reason"])
        assert expected in row["reason"], row
        assert "Traceback" not in proc.stdout + proc.stderr
    assert verdicts["dry"] == verdicts["real"], verdicts
    assert verdicts["real"][:2] == (2, "failed")
    audit = run_cli("audit", lab["inventory"], "--json", "-", env=env)
    assert audit.returncode == 2 and expected in audit.stdout, audit.stdout[-2000:]
    assert _digest(lab) == before, "nothing may change on a host with bad settings"


def test_a_mistyped_setting_stops_pyinfras_own_deploy_too(lab):
    name = lab["hosts"][0]["name"]
    env = {**os.environ, **lab["env"],
           "OH_TEST_DATA": json.dumps({name: {"orthanc_harden_users_mod": "merge"}})}
    before = _digest(lab)
    for deploy in ("deploys/harden.py", "deploys/audit.py"):
        proc = subprocess.run([sys.executable, "-m", "pyinfra", "-y", lab["inventory"], deploy],
                              capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "did you mean orthanc_harden_users_mode?" in output, (deploy, output[-2000:])
    assert _digest(lab) == before
