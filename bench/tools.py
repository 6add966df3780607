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


def orthanc_harden_three_programs(command: str, inventory: Path, parallel: int, report: Path) -> list[str]:
    """The same, checking each host with three programs as before issue #24's last step (``three_programs``)."""
    return [sys.executable, "-m", "bench.three_programs", command, str(inventory), "--parallel", str(parallel),
            "--json", str(report)]


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


_TASK = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(.+?)\]", re.M)
_RESULT = re.compile(r"^(changed|ok|skipping|fatal|failed): \[([^\]]+)\](?:.*?=> (.*))?$")


def ansible_tasks(log: Path) -> dict:
    """What each task did on how many hosts (from the default callback's output), and every failure with its
    message: why a peer run did not leave its hosts compliant. no_log tasks print no values."""
    changed: dict[str, int] = {}
    failures: list[str] = []
    task = None
    for line in log.read_text(errors="replace").splitlines():
        found = _TASK.match(line)
        if found:
            task = found.group(1)
            changed.setdefault(task, 0)
            continue
        result = _RESULT.match(line)
        if not (result and task):
            continue
        if result.group(1) == "changed":
            changed[task] += 1
        elif result.group(1) in ("fatal", "failed"):
            message = result.group(3) or ""
            try:
                message = json.loads(message).get("msg") or message
            except (ValueError, AttributeError):
                pass
            failures.append(f"{task} on {result.group(2)}: {str(message)[:200]}")
    return {"changed_per_task": changed, "failures": failures}


def orthanc_harden_summary(report: Path) -> dict | None:
    """The JSON report's per-status counts (no host details, no secrets)."""
    if not report.exists():
        return None
    return json.loads(report.read_text()).get("summary")


def not_compliant(report: Path) -> list[str]:
    """Hosts an orthanc-harden audit report shows as not compliant, with their failed findings' ids."""
    if not report.exists():
        return ["no audit report"]
    out = []
    for instance in json.loads(report.read_text()).get("instances", []):
        if instance.get("status") != "compliant":
            codes = sorted({f["id"] for f in instance.get("findings", []) if f.get("status") == "fail"})
            out.append(f"{instance.get('host')} {instance.get('status')} ({', '.join(codes[:4])})")
    return out
