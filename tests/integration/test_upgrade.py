"""operations.upgrade.package on real lab hosts: a stand-in Orthanc 1.5.7 package upgraded to Debian's 1.10.1 from
a local apt repository; edits kept, one restart, idempotent; held package, dpkg lock, broken repository, no fixed
package offered."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import docker
import pytest
import requests

from orthanc_harden.lab import oldpackage
from tests.conftest import ROOT, run_cli, unavailable
from tests.integration.conftest import SUBSET_INVENTORY, fresh_lab, ssh_to

pytestmark = pytest.mark.lab

LAB = "pytest-upgrade"
OLD = oldpackage.STANDIN_VERSION
NEW_UPSTREAM = "1.10.1"
CANARY = "Upgrade-Canary-4b7d"


@pytest.fixture(scope="module")
def upgrade_lab(lab, tmp_path_factory):  # `lab` first: the engine and images exist
    work = tmp_path_factory.mktemp("packages")
    try:
        real = oldpackage.fetch_debian_package(work)
        standin = oldpackage.build_standin(real, work)
        repo = oldpackage.build_repository([real], work / "repo")
    except Exception as err:  # noqa: BLE001 - any failure here means the lab cannot be built
        unavailable(f"cannot build the lab packages: {err}")
    data = fresh_lab(LAB, 3, 0, 28200)
    client = docker.from_env()
    for entry in data["hosts"]:
        oldpackage.plant(client.containers.get(entry["container"]), standin, repo)
    inventory = work / "inventory.py"
    inventory.write_text(SUBSET_INVENTORY)
    data["inventory"] = str(inventory)
    yield data
    run_cli("lab", "down", "--lab", LAB)


def _deploy(lab: dict, hosts: list[str], deploy: str = "deploys/upgrade.py", data: dict | None = None,
            extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "ORTHANC_HARDEN_LAB": LAB, "OH_TEST_HOSTS": ",".join(hosts),
           "OH_TEST_DATA": json.dumps(data or {})}
    return subprocess.run([sys.executable, "-m", "pyinfra", "-y", "-v", *extra, lab["inventory"], deploy],
                          capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)


def _sh(client, command: str) -> str:
    _, stdout, _ = client.exec_command(command)
    out = stdout.read().decode()
    stdout.channel.recv_exit_status()
    return out


def _host(lab: dict, index: int):
    entry = lab["hosts"][index]
    return entry, ssh_to(lab, entry), f"http://127.0.0.1:{entry['http_port']}"


def _package(client) -> str:
    return _sh(client, "dpkg-query -W -f '${Version}' orthanc")


def _starts(client) -> int:
    return int(_sh(client, "journalctl --no-pager -o cat -u orthanc | grep -c '^Started orthanc' || true").strip())


def _untouched(client, index: bool = True) -> str:
    """What a failed or refused upgrade must leave exactly as it was (with `index`, the package index stamp too)."""
    stamp = "; ls -l --time-style=+%s /var/lib/apt/periodic" if index else ""
    return _sh(client, "dpkg-query -W -f '${Version}\\n' orthanc; sha256sum /etc/orthanc/*; "
                       f"systemctl show -p MainPID orthanc{stamp}")


def test_upgrade_keeps_edits_restarts_once_is_idempotent_and_a_held_host_is_left_alone(upgrade_lab):
    first, client, url = _host(upgrade_lab, 0)
    held, held_client, _ = _host(upgrade_lab, 1)
    assert _package(client) == OLD
    assert _sh(client, "Orthanc --version | head -n 1").split()[-1] == "1.5.7"
    instances = requests.get(f"{url}/instances", timeout=10).json()
    assert sorted(instances) == sorted(first["seeded_instances"])
    _sh(held_client, "apt-mark hold orthanc")
    held_before = _untouched(held_client)
    starts = _starts(client)

    proc = _deploy(upgrade_lab, [first["name"], held["name"]])
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, "a held host must fail the run"
    assert (f"[{held['name']}] cannot upgrade: orthanc held by apt-mark hold; set "
            "orthanc_harden_upgrade_allow_held: true for this host to upgrade it anyway") in output
    assert _untouched(held_client) == held_before

    assert f"[{first['name']}] orthanc upgraded to {NEW_UPSTREAM}" in output
    assert "your configuration was kept, the package's new version is in /etc/orthanc/orthanc.json.dpkg-dist" \
        in output
    assert _package(client).startswith(NEW_UPSTREAM + "+")
    assert _sh(client, "Orthanc --version | head -n 1").split()[-1] == NEW_UPSTREAM
    assert requests.get(f"{url}/system", timeout=10).json()["Version"] == NEW_UPSTREAM
    # The administrator's edits survived the conffile conflict; the packaged file sits beside it, unused.
    config = _sh(client, "cat /etc/orthanc/orthanc.json")
    assert '"Name" : "EDITED-BY-ADMIN",' in config and "lab stand-in" in config
    assert "EDITED-BY-ADMIN" not in _sh(client, "cat /etc/orthanc/orthanc.json.dpkg-dist")
    assert _starts(client) == starts + 1, "Orthanc must restart exactly once"
    assert not _sh(client, "ls /usr/sbin/policy-rc.d 2>/dev/null").strip()
    assert sorted(requests.get(f"{url}/instances", timeout=10).json()) == sorted(instances)

    stamp = _sh(client, "stat -c %Y /var/lib/apt/periodic/update-success-stamp")
    again = _deploy(upgrade_lab, [first["name"]])
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"[{first['name']}] No changes" in again.stderr
    assert "apt-get update" not in again.stdout + again.stderr
    assert _sh(client, "stat -c %Y /var/lib/apt/periodic/update-success-stamp") == stamp
    assert _starts(client) == starts + 1

    forced = _deploy(upgrade_lab, [held["name"]], data={held["name"]: {"orthanc_harden_upgrade_allow_held": True}})
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert _package(held_client).startswith(NEW_UPSTREAM + "+")
    assert _sh(held_client, "apt-mark showhold").split() == ["orthanc"], "the hold itself stays the admin's"
    client.close()
    held_client.close()


def test_dpkg_lock_and_broken_repository_fail_that_host_unchanged(upgrade_lab):
    entry, client, _ = _host(upgrade_lab, 2)
    before = _untouched(client, index=False)
    # Another package run holds dpkg's frontend lock (apt takes it with fcntl, so must we).
    _sh(client, "nohup python3 -c 'import fcntl, time; f = open(\"/var/lib/dpkg/lock-frontend\", \"w\"); "
                "fcntl.lockf(f, fcntl.LOCK_EX); time.sleep(120)' >/dev/null 2>&1 & echo $! > /root/lock.pid; sleep 1")
    try:
        proc = _deploy(upgrade_lab, [entry["name"]],
                       data={entry["name"]: {"orthanc_harden_upgrade_lock_timeout": 3}})
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert f"[{entry['name']}] installing orthanc 1.10.1" in output
        assert "failed, nothing upgraded: E: " in output and "/var/lib/dpkg/lock-frontend" in output
    finally:
        _sh(client, "kill $(cat /root/lock.pid)")
    assert _untouched(client, index=False) == before  # the refresh before the install may have run

    _sh(client, "echo 'deb [trusted=yes] file:/srv/no-such-repository ./' > /etc/apt/sources.list.d/broken.list")
    try:
        stale = _untouched(client)
        proc = _deploy(upgrade_lab, [entry["name"]], data={entry["name"]: {"orthanc_harden_upgrade_cache_time": 0}})
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert f"[{entry['name']}] refreshing the package index failed, nothing upgraded: E: " in output
        assert "no-such-repository" in output
        assert _untouched(client) == stale
    finally:
        _sh(client, "rm -f /etc/apt/sources.list.d/broken.list")
    client.close()


def test_no_fixed_package_offered_applies_authentication_and_reports_not_compliant(upgrade_lab, tmp_path):
    entry, client, url = _host(upgrade_lab, 2)
    # The repository now offers nothing newer than what is installed.
    _sh(client, f"cp {oldpackage.REPO_DIR}/Packages /root/Packages.lab && : > {oldpackage.REPO_DIR}/Packages")
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"radiology": CANARY}))
    users.chmod(0o600)
    data = {entry["name"]: {"orthanc_harden_users_ref": f"file:{users}", "orthanc_harden_upgrade_cache_time": 0}}
    try:
        assert requests.get(f"{url}/system", timeout=10).status_code == 200
        proc = _deploy(upgrade_lab, [entry["name"]], deploy="deploys/harden.py", data=data)
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0, "a host left below the floor must not pass as compliant"
        assert (f"[{entry['name']}] not compliant: upgrade: cannot upgrade: newest available orthanc is {OLD}, "
                "below 1.5.8") in output
        assert _package(client) == OLD
        assert requests.get(f"{url}/system", timeout=10).status_code == 401
        assert requests.get(f"{url}/system", auth=("radiology", CANARY), timeout=10).status_code == 200
        assert CANARY not in output

        starts = _starts(client)
        again = _deploy(upgrade_lab, [entry["name"]], deploy="deploys/harden.py",
                        data={entry["name"]: {"orthanc_harden_users_ref": f"file:{users}"}})
        assert again.returncode != 0 and "not compliant: upgrade" in again.stdout + again.stderr
        assert "authentication already on" in again.stdout + again.stderr
        assert _starts(client) == starts
    finally:
        _sh(client, f"cp /root/Packages.lab {oldpackage.REPO_DIR}/Packages")
        client.close()



def test_upgrade_and_authentication_together_restart_orthanc_once(upgrade_lab, tmp_path):
    """harden on a 1.5.7 host: the upgrade leaves its restart to authentication, one health-gated restart
    for both; the second run restarts nothing."""
    entry, client, url = _host(upgrade_lab, 2)  # still at the stand-in after the tests above
    assert _package(client) == OLD
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"cardiology": CANARY + "-2"}))
    users.chmod(0o600)
    data = {entry["name"]: {"orthanc_harden_users_ref": f"file:{users}"}}
    starts = _starts(client)
    proc = _deploy(upgrade_lab, [entry["name"]], deploy="deploys/harden.py", data=data)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert f"[{entry['name']}] orthanc upgraded to {NEW_UPSTREAM}" in output
    assert "restarted with the authentication change" in output
    assert _starts(client) == starts + 1, "upgrade and authentication together restart Orthanc once"
    assert requests.get(f"{url}/system", timeout=10).status_code == 401
    served = requests.get(f"{url}/system", auth=("cardiology", CANARY + "-2"), timeout=10)
    assert served.status_code == 200 and served.json()["Version"] == NEW_UPSTREAM
    assert CANARY not in output

    again = _deploy(upgrade_lab, [entry["name"]], deploy="deploys/harden.py", data=data)
    assert again.returncode == 0 and f"[{entry['name']}] No changes" in again.stderr, again.stderr[-2000:]
    assert _starts(client) == starts + 1
    client.close()


def test_an_orthanc_still_running_a_replaced_binary_is_restarted_once(upgrade_lab):
    """An upgrade made outside the tool, with no restart: the package is at the floor but the running process
    is the old code. Replacing the file stands in for that upgrade."""
    entry, client, _ = _host(upgrade_lab, 0)
    assert _deploy(upgrade_lab, [entry["name"]]).returncode == 0  # at the floor (the first test got it there)
    assert _package(client).startswith(NEW_UPSTREAM + "+")
    # As a package manager does: a new file renamed over the old one. Root in the lab's containers has no
    # CAP_SYS_PTRACE, so the probe cannot read /proc/PID/exe and compares the file's change time with the start.
    _sh(client, "sleep 3; cp -p /usr/sbin/Orthanc /usr/sbin/Orthanc.new && mv /usr/sbin/Orthanc.new /usr/sbin/Orthanc")
    starts = _starts(client)
    proc = _deploy(upgrade_lab, [entry["name"]])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
    assert "orthanc.service restarted: still ran the Orthanc binary an earlier upgrade replaced" in \
        proc.stdout + proc.stderr
    assert _starts(client) == starts + 1
    again = _deploy(upgrade_lab, [entry["name"]])
    assert again.returncode == 0 and f"[{entry['name']}] No changes" in again.stderr
    assert _starts(client) == starts + 1
    client.close()
