"""The command lines the bench measures, and what each tool says about its own run.

Every command names files (inventory, playbook, report, users), never a secret: the users come from an
owner-only file, encrypted or not (a vault's password file is named by ANSIBLE_VAULT_PASSWORD_FILE).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
PLAYBOOK = Path(__file__).resolve().parent / "ansible" / "harden.yml"
ANSIBLE_CFG = PLAYBOOK.with_name("ansible.cfg")
_RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def floor(inventory: Path, parallel: int) -> list[str]:
    """The cheapest thing pyinfra can do on every host: connect and run one command."""
    return [str(BIN / "pyinfra"), "-y", "--parallel", str(parallel), str(inventory), "exec", "--", "true"]


def orthanc_harden(command: str, inventory: Path, parallel: int, report: Path) -> list[str]:
    """`orthanc-harden audit|remediate`, as an operator runs it."""
    return [str(BIN / "orthanc-harden"), command, str(inventory), "--parallel", str(parallel), "--json", str(report)]


def ansible(inventory: Path, parallel: int, users_file: Path, check: bool) -> list[str]:
    """The peer playbook with forks = --parallel; check mode is Ansible's audit (what would change)."""
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), "-f", str(parallel),
            "-e", f"orthanc_users_file={users_file}", str(PLAYBOOK)]
    return argv + ["--check"] if check else argv


def ansible_env(workdir: Path, control_dir: Path) -> dict[str, str]:
    """Ansible's settings file, and its scratch space in the run's directory rather than ~/.ansible.
    The ControlPath directory is short (/tmp): a unix socket path must fit in 108 bytes."""
    return {"ANSIBLE_CONFIG": str(ANSIBLE_CFG), "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
            "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"), "ANSIBLE_HOME": str(workdir / "ansible-home")}


def ansible_recap(log: Path) -> dict[str, int]:
    """PLAY RECAP totals: hosts, tasks ok/changed, unreachable and failed hosts."""
    totals = {"hosts": 0, "ok": 0, "changed": 0, "unreachable": 0, "failed": 0}
    for match in _RECAP.finditer(log.read_text(errors="replace")):
        totals["hosts"] += 1
        for key, value in zip(("ok", "changed", "unreachable", "failed"), match.groups()[1:], strict=True):
            totals[key] += int(value)
    return totals


def orthanc_harden_summary(report: Path) -> dict | None:
    """The JSON report's per-status counts (no host details, no secrets)."""
    if not report.exists():
        return None
    return json.loads(report.read_text()).get("summary")
