"""schedule.timer names its units after `timer_name` on a real systemd host, from a deploy of the operator's own
run by the pyinfra CLI (#22): `name=` is pyinfra's label of the operation and never reached a parameter of that
name. Installed, then a second run that changes nothing, then removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import run_cli
from tests.integration.conftest import SUBSET_INVENTORY, fresh_lab, output_of

pytestmark = pytest.mark.lab

LAB = "h22b-sched"
DEPLOY = textwrap.dedent("""
    import os

    from orthanc_harden.operations import schedule

    schedule.timer(
        name="Nightly drift correction",
        inventory="/etc/orthanc-harden/fleet.py",
        timer_name="pacs-nightly",
        on_calendar="*-01-01 03:00:00",  # never due while the test runs
        command="/usr/local/bin/orthanc-harden",
        present=os.environ["OH_TEST_PRESENT"] == "1",
    )
""")
STATE = ("for f in pacs-nightly.service pacs-nightly.timer orthanc-harden-remediate.service "
         "orthanc-harden-remediate.timer; do [ -e /etc/systemd/system/$f ] && echo \"file $f $(stat -c %Y "
         "/etc/systemd/system/$f)\"; done; echo \"enabled $(systemctl is-enabled pacs-nightly.timer 2>/dev/null)\"; "
         "echo \"active $(systemctl is-active pacs-nightly.timer 2>/dev/null)\"; "
         "echo \"since $(systemctl show -p ActiveEnterTimestampMonotonic --value pacs-nightly.timer)\"")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    data = fresh_lab(LAB, 1, 0, 2300)
    work = tmp_path_factory.mktemp("timer-name")
    (work / "inventory.py").write_text(SUBSET_INVENTORY)
    (work / "deploy.py").write_text(DEPLOY)
    data["work"] = work
    yield data
    run_cli("lab", "down", "--lab", LAB)


def _deploy(lab, present: bool) -> tuple[str, dict]:
    """The pyinfra CLI on the lab host: (output, the --json results)."""
    env = {**os.environ, "ORTHANC_HARDEN_LAB": LAB, "OH_TEST_HOSTS": lab["hosts"][0]["name"],
           "OH_TEST_PRESENT": "1" if present else "0"}
    proc = subprocess.run([sys.executable, "-m", "pyinfra", "-y", "--json", "inventory.py", "deploy.py"],
                          capture_output=True, text=True, timeout=600, cwd=lab["work"], env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc.stdout + proc.stderr, json.loads(proc.stdout)


def _state(lab) -> dict:
    lines = output_of(lab, 0, STATE).splitlines()
    return {line.split(" ", 2)[1]: line.split(" ", 2)[2] if line.startswith("file ") else None
            for line in lines if line.startswith("file ")} | \
        {line.split(" ", 1)[0]: line.split(" ", 1)[1].strip() for line in lines if not line.startswith("file ")}


def _changed(results: dict) -> list:
    return [op for op in results["results"]["operations"] if not op.get("no_change", False)]


def test_the_units_are_named_after_timer_name_and_a_second_run_changes_nothing(lab):
    output, results = _deploy(lab, present=True)
    assert "Nightly drift correction" in output
    installed = _state(lab)
    assert set(k for k in installed if k.endswith((".service", ".timer"))) == {"pacs-nightly.service",
                                                                                "pacs-nightly.timer"}, installed
    assert installed["enabled"] == "enabled" and installed["active"] == "active", installed
    assert _changed(results), results

    _, results = _deploy(lab, present=True)
    assert _changed(results) == [], results
    assert _state(lab) == installed, "no unit rewritten, the timer not restarted"

    _, results = _deploy(lab, present=False)
    removed = _state(lab)
    assert not any(k.endswith((".service", ".timer")) for k in removed), removed
    assert removed["active"] != "active"
