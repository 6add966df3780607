"""Restart Orthanc once, prove it healthy, and roll the configuration back when it is not.

Runs as a pyinfra FunctionCommand, so it executes at the right point of the operation, on the control node,
with the host's connector for remote commands. Never leaves an Orthanc stopped that was running.
"""

from __future__ import annotations

import json
import shlex
import time

import requests

from pyinfra.api import QuoteString, StringCommand

from .. import direct_http, outcomes, restarts
from ..masking import SecretStdin
from ..remote import program
from ..operations import hostcmd
from ..operations.verdict import fail_host

GATE_TIMEOUT = 60.0


def gate_target(probe_url: str | None, http_port: int, ssl_certificate: str | None = None,
                probe_verify: bool | str = True) -> dict:
    """Where Orthanc is asked whether it is healthy: `probe_url` from the control node (TLS verified by default,
    `probe_verify` a CA bundle or False), else 127.0.0.1 on the host, over https trusting the Orthanc's own
    certificate file alone when it has one (SslEnabled)."""
    if probe_url:
        return {"url": probe_url.rstrip("/"), "verify": probe_verify}
    scheme = "https" if ssl_certificate else "http"
    return {"url": None, "local_url": f"{scheme}://127.0.0.1:{http_port}", "ca": ssl_certificate}


def wait_for_auth(url: str, user: str, password: str, timeout: float, verify: bool | str = True) -> tuple[bool, str]:
    """Bounded wait until anonymous GET /system answers 401 and `user` 200; (ok, password-free detail)."""
    deadline = time.monotonic() + timeout
    detail = f"{url} did not answer within {timeout:.0f}s"
    while time.monotonic() < deadline:
        try:
            anonymous = direct_http.get(f"{url}/system", verify=verify, timeout=5).status_code
            # UTF-8, as Orthanc compares it: requests would send str credentials as Latin-1.
            credentials = (user.encode("utf-8"), password.encode("utf-8"))
            with_user = direct_http.get(f"{url}/system", verify=verify, auth=credentials, timeout=5).status_code
        except requests.RequestException:
            time.sleep(1)
            continue
        if anonymous == 401 and with_user == 200:
            return True, f"anonymous 401, user {user} 200"
        detail = (f"anonymous GET /system answered {anonymous} (expected 401), "
                  f"user {user} answered {with_user} (expected 200)")
        time.sleep(1)
    return False, detail


def answering(url: str, timeout: float, verify: bool | str = True) -> tuple[bool, str]:
    """Bounded wait until Orthanc at `url` answers HTTP at all (any status); (ok, detail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return True, f"answering ({direct_http.get(f'{url}/system', verify=verify, timeout=5).status_code})"
        except requests.RequestException:
            time.sleep(1)
    return False, f"{url} did not answer within {timeout:.0f}s"


def _probe_on_host(host, gate: dict, user: str, password: str, timeout: float) -> tuple[bool, str]:
    request = SecretStdin(json.dumps({"url": gate["local_url"], "ca": gate.get("ca"), "user": user,
                                      "password": password, "timeout": timeout}))
    ok, output = hostcmd.run(host, StringCommand("python3", "-c", QuoteString(program("gate"))),
                                        _stdin=request, _timeout=int(timeout) + 30)
    lines = [line for line in output.stdout_lines if line.startswith("{")]
    if not (ok and lines):
        return False, "the on-host health check did not run"
    result = json.loads(lines[-1])
    return result["ok"], result["detail"]


def _answering(host, gate: dict, timeout: float) -> bool:
    """Bounded wait until Orthanc answers HTTP at all (any status), from the control node or on the host."""
    if gate.get("url"):
        return answering(gate["url"], timeout, gate.get("verify", True))[0]
    request = SecretStdin(json.dumps({"url": gate["local_url"], "ca": gate.get("ca"), "timeout": timeout,
                                      "answer_only": True}))
    ok, output = hostcmd.run(host, StringCommand("python3", "-c", QuoteString(program("gate"))),
                                        _stdin=request, _timeout=int(timeout) + 30)
    return ok and any('"ok": true' in line for line in output.stdout_lines)


def restart_answering(host, service: str, gate: dict, timeout: float) -> bool:
    """systemctl restart, then a bounded wait until Orthanc answers HTTP at all (any status)."""
    ok, _ = hostcmd.run(host, StringCommand("systemctl", "restart", QuoteString(service)), _timeout=120)
    return ok and _answering(host, gate, timeout)


def _log_tail(host, service: str) -> str:
    ok, output = hostcmd.run(
        host, f"journalctl -u {shlex.quote(service)} -n 5 --no-pager -o cat 2>/dev/null || "
              "tail -n 5 /var/log/orthanc/Orthanc.log 2>/dev/null", _timeout=30)
    return " | ".join(line.strip() for line in output.stdout_lines[-5:] if line.strip())


def restart_after_upgrade(state, host, service: str, gate: dict) -> bool:
    """The restart an upgrade left to an authentication change that cannot be made: Orthanc must not go on
    running the replaced binary. Fails when it does not answer afterwards."""
    restarts.done(host.name, service)
    if restart_answering(host, service, gate, gate.get("timeout", GATE_TIMEOUT)):
        host.log_styled(f"{service} restarted on the upgraded Orthanc", fg="yellow")
        return True
    return fail_host(host, "upgrade", f"{service} does not answer after its restart on the upgraded Orthanc; "
                                      f"Orthanc log: {_log_tail(host, service)}")


def _auth_program(host, mode: str, request: dict) -> bool:
    ok, _ = hostcmd.run(host, StringCommand("python3", "-c", QuoteString(program("auth")), mode),
                        _stdin=json.dumps(request), _timeout=60)
    return ok


def restart_and_gate(state, host, service: str, files: list[str], gate: dict, meta: dict | None = None) -> bool:
    """systemctl restart, then anonymous 401 + a store user 200; otherwise restore the backups (content, owner,
    group and mode: `meta`) and restart. `files` empty: only an upgrade earlier in the run changed something."""
    timeout = gate.get("timeout", GATE_TIMEOUT)
    restarts.done(host.name, service)
    ok, detail = _restart_with_auth(host, service, gate, timeout)
    if ok:
        return _healthy(host, files, detail)
    tail = _log_tail(host, service)
    if not files:
        return fail_host(host, "upgrade", f"health gate failed after the upgrade: {detail}; the configuration "
                                          f"was not changed; Orthanc log: {tail}")
    outcome = _roll_back(host, service, files, meta, gate, timeout)
    return fail_host(host, "auth", f"health gate failed: {detail}; {outcome}; Orthanc log: {tail}")


def _restart_with_auth(host, service: str, gate: dict, timeout: float) -> tuple[bool, str]:
    """systemctl restart, then wait for anonymous 401 and the store user's 200 (from the control node, or on
    the host); (ok, password-free detail)."""
    ok, _ = hostcmd.run(host, StringCommand("systemctl", "restart", QuoteString(service)), _timeout=120)
    if not ok:
        return False, f"systemctl restart {service} failed"
    user, password = gate["user"], gate["password"].unmask()
    if gate.get("url"):
        return wait_for_auth(gate["url"], user, password, timeout, gate.get("verify", True))
    return _probe_on_host(host, gate, user, password, timeout)


def _healthy(host, files: list[str], detail: str) -> bool:
    """Passed: the rollback copies go, the change is recorded."""
    if files and not _auth_program(host, "commit", {"files": files}):
        host.log_styled("the rollback copies (*.orthanc-harden-backup) could not be removed", fg="yellow")
    if files:
        outcomes.record(host.name, "auth", "changed", f"authentication on, Orthanc restarted and healthy: {detail}")
    host.log_styled(f"Orthanc healthy after restart: {detail}", fg="green")
    return True


def _roll_back(host, service: str, files: list[str], meta: dict | None, gate: dict, timeout: float) -> str:
    """Restore the backups and restart on them; what came of it, in words."""
    restored = _auth_program(host, "restore", {"files": files, "meta": meta or {}})
    back = restart_answering(host, service, gate, timeout)
    if not restored:
        return "RESTORE FAILED: check the *.orthanc-harden-backup files"
    if back:
        return "configuration restored and Orthanc restarted with it"
    return "configuration restored but Orthanc is NOT answering after its restart"
