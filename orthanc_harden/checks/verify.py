"""Execution-time steps of the package upgrade: run a package command with a one-line error, prove the result."""

from __future__ import annotations

import shlex

import requests

from pyinfra.api import StringCommand

from .. import direct_http, outcomes, restarts
from ..orthanc import reported_version
from ..versions import at_least
from ..operations import hostcmd
from .health import _answering, _log_tail, gate_target, restart_answering
from ..operations.verdict import fail_host

CONTROL = "upgrade"
ANSWER_TIMEOUT = 90.0


def _fail(host, message: str) -> bool:
    return fail_host(host, CONTROL, message)


def _cause(lines: list[str]) -> str:
    """The line a sysadmin needs from apt/dnf/zypper output: the first error, else the last line."""
    text = [line.strip() for line in lines if line.strip()]
    for line in text:
        if line.startswith(("E:", "Error:", "error:", "Problem:")):
            return line
    return text[-1] if text else "no output"


def run(state, host, command: str, what: str, timeout: int) -> bool:
    """Run one package-manager command; on failure record and print a single line naming the cause."""
    ok, output = hostcmd.run(host, StringCommand(command), _timeout=timeout)
    if ok:
        return True
    return _fail(host, f"{what} failed, nothing upgraded: {_cause(output.stderr_lines + output.stdout_lines)}")


def _system_version(url: str, verify: bool | str = True) -> str | None:
    try:
        response = direct_http.get(f"{url}/system", verify=verify, timeout=5)
    except requests.RequestException:
        return None
    if response.status_code != 200:
        return None  # authentication already on: Orthanc --version is the proof then
    return response.json().get("Version")


_NO_TAKER = "upgrade.package(restart=False), but no auth.authentication follows for it in this run"


def _deferrable(host, units: list[str]) -> tuple[list[str], list[str]]:
    """The units whose restart an authentication operation later in this run takes (restart=False), and the
    others, which restart now: Orthanc must never be left on the binary an upgrade replaced."""
    left = [unit for unit in units if restarts.taken_after(host, unit)]
    return left, [unit for unit in units if unit not in left]


def _restart_now(host, units: list[str], gate: dict) -> bool:
    for unit in units:
        host.log_styled(f"{unit}: {_NO_TAKER}: restarting it now", fg="yellow")
        if not restart_answering(host, unit, gate, ANSWER_TIMEOUT):
            return _fail(host, f"orthanc installed but {unit} does not answer after its restart; Orthanc log: "
                               f"{_log_tail(host, unit)}")
    return True


def upgraded(state, host, binary: str, config_dir: str, target: str, floor: str, probe_url: str | None,
             http_port: int, manager: str, services: list[str], restarted: bool = True,
             ssl_certificate: str | None = None, probe_verify: bool | str = True) -> bool:
    """After the transaction: the binary's own version, Orthanc answering, /system's version, new conffiles.
    Not `restarted`: the units' restart is left to the authentication change (checked there)."""
    reported, new_files, active = _installed(host, binary, config_dir, manager, services)
    if not at_least(reported, floor):
        return _fail(host, f"after installing orthanc {target}, {binary} --version says {reported or 'nothing'}")
    gate = gate_target(probe_url, http_port, ssl_certificate, probe_verify)
    message = f"orthanc upgraded to {reported} ({target})"
    if not restarted:  # a stopped unit stays stopped, as try-restart would leave it
        ok, handed_over = _hand_over(host, active, gate)
        if not ok:
            return False
        message += handed_over
    else:
        problem = _not_serving(host, reported, floor, services, probe_url, gate, probe_verify)
        if problem:
            return _fail(host, problem)
    if new_files:
        message += f"; your configuration was kept, the package's new version is in {', '.join(new_files)}"
    outcomes.record(host.name, CONTROL, "changed", message)
    host.log_styled(message, fg="green" if not new_files else "yellow")
    return True


def _hand_over(host, active: list[str], gate: dict) -> tuple[bool, str]:
    """Not restarted here: the active units' restart goes to the authentication change that follows them, and a
    unit no authentication takes restarts now. (ok, what the outcome message gets)."""
    left, now = _deferrable(host, active)
    restarts.defer(host.name, left)
    if now and not _restart_now(host, now, gate):
        return False, ""
    return True, (("; restarted with the authentication change" if left else "") +
                  (f"; {', '.join(now)} restarted now ({_NO_TAKER})" if now else ""))


def _installed(host, binary: str, config_dir: str, manager: str,
               services: list[str]) -> tuple[str, list[str], list[str]]:
    """In one round trip: the version the binary reports ("" for none), the package's new conffiles beside the
    configuration, and which of `services` are active."""
    new_suffix = ".dpkg-dist" if manager == "apt" else ".rpmnew"
    active = " ".join(shlex.quote(s) for s in services)
    ok, output = hostcmd.run(
        host,
        f"{shlex.quote(binary)} --version 2>&1 | head -n 1; "
        f"for f in {shlex.quote(config_dir)}/*{new_suffix}; do [ -e \"$f\" ] && echo \"new-conffile $f\"; done; "
        f"for u in {active}; do systemctl is-active --quiet \"$u\" && echo \"active-unit $u\"; done; true",
        _timeout=60)
    lines = output.stdout_lines
    reported = (reported_version(lines[0]) if lines else None) or ""
    new_files = [line.split(" ", 1)[1] for line in lines[1:] if line.startswith("new-conffile ")]
    active_units = [line.split(" ", 1)[1] for line in lines[1:] if line.startswith("active-unit ")]
    return reported, new_files, active_units


def _not_serving(host, reported: str, floor: str, services: list[str], probe_url: str | None, gate: dict,
                 probe_verify: bool | str) -> str | None:
    """Why the restarted Orthanc does not serve the new binary (not answering, or /system reports an older
    version), or None."""
    if services and not _answering(host, gate, ANSWER_TIMEOUT):
        tail = _log_tail(host, services[0])
        return f"orthanc {reported} installed but Orthanc is not answering; Orthanc log: {tail}"
    if probe_url:
        served = _system_version(probe_url, probe_verify)
        if served and not at_least(served, floor):
            return f"orthanc {reported} installed but /system still reports {served}: not restarted?"
    return None


def restart_replaced(state, host, units: list[str], restart: bool, probe_url: str | None, http_port: int,
                     ssl_certificate: str | None = None, probe_verify: bool | str = True) -> bool:
    """Units running a binary an earlier upgrade replaced: restart each (or leave it to the authentication change
    that follows) and check Orthanc answers."""
    names = ", ".join(units)
    gate = gate_target(probe_url, http_port, ssl_certificate, probe_verify)
    left, now = _deferrable(host, units) if not restart else ([], units)
    if left:
        restarts.defer(host.name, left)
        if not now:
            outcomes.record(host.name, CONTROL, "changed", f"{names} still ran the replaced Orthanc binary; "
                                                           "restarted with the authentication change")
            return True
    for unit in now:
        if not restart_answering(host, unit, gate, ANSWER_TIMEOUT):
            return _fail(host, f"{unit} ran the replaced Orthanc binary and does not answer after its restart; "
                               f"Orthanc log: {_log_tail(host, unit)}")
    message = f"{', '.join(now)} restarted: still ran the Orthanc binary an earlier upgrade replaced"
    if not restart:
        message += f" ({_NO_TAKER})"
    if left:
        message = f"{', '.join(left)} restarted with the authentication change; {message}"
    outcomes.record(host.name, CONTROL, "changed", message)
    host.log_styled(message, fg="green")
    return True
