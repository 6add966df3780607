"""Restrict Orthanc's HTTP and DICOM ports to allowed networks with the host's own firewall."""

from __future__ import annotations

import json
import secrets
from io import StringIO

from pyinfra import host
from pyinfra.api import FunctionCommand, OperationValueError, QuoteString, StringCommand, operation

from .. import fresh_ssh, outcomes, planned, prechecked, settings
from ..settings import FIREWALL_BACKENDS as BACKENDS
from ..docker.connector import DockerEngineConnector
from ..facts.orthanc import OrthancFirewallPlan
from ..remote import program
from . import hostcmd
from .isolation import host_step
from .verdict import fail_host, failing

CONTROL = "firewall"


def request_for(ports, cidrs, backend, enable, allow_empty, ssh_port, docker=False) -> str:
    """Validated on the control node too, so bad input stops before any host is asked anything."""
    if backend not in BACKENDS:
        raise OperationValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    clean_ports = []
    for port in ports:
        if not settings.tcp_port(port):
            raise OperationValueError(f"port {port!r} is not a TCP port (1-65535)")
        clean_ports.append(port)
    networks = []
    for cidr in cidrs:
        network = settings.network(cidr)
        if network is None:
            raise OperationValueError(f"{cidr!r} is not an IPv4 or IPv6 network (CIDR)")
        networks.append(network)
    if not networks and not allow_empty:
        raise OperationValueError("no allowed CIDRs: that cuts off every client; pass allow_empty=True to mean it")
    if ssh_port is not None and not settings.tcp_port(ssh_port):
        raise OperationValueError(f"ssh_port {ssh_port!r} is not a TCP port (1-65535)")
    if ssh_port in clean_ports:
        raise OperationValueError(f"port {ssh_port} is SSH's: restricting it could lock everyone out")
    if not clean_ports and not docker:
        raise OperationValueError("no ports to restrict")
    return json.dumps({"ports": sorted(set(clean_ports)), "cidrs": networks, "backend": backend, "enable": enable,
                       "allow_empty": allow_empty, "ssh_port": ssh_port, "docker": bool(docker)})


def _unreachable(state, host, message: str) -> bool:
    """Fail the host as not compliant: left as it was for a stated reason. Recorded as the host's compliance
    verdict too, so that reports say not-compliant, as they do when ``verdict.compliant`` fails a host."""
    outcomes.record(host.name, "compliance", "not-compliant", message)
    return fail_host(host, CONTROL, message, status="not-compliant")


def _program(host, mode: str, request: dict) -> tuple[bool, dict]:
    """Run the firewall program on the host with the operation's connector arguments; (ok, its JSON answer)."""
    ok, output = hostcmd.run(host, StringCommand("python3", "-c", QuoteString(program("firewall")), mode),
                             _stdin=StringIO(json.dumps(request)), _timeout=300)
    lines = [line for line in output.stdout_lines if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"error": "the firewall program printed nothing"}
    return ok and "error" not in result, result


def _confirmed(host, result: dict, token: str) -> str | None:
    """Commit confirmed: a fresh SSH connection keeps the change (the armed revert is disarmed); without one the
    change is put back now, over the running session, or by the host's own timer when that session is gone too.
    None when kept, otherwise the one line that fails the host."""
    problem = fresh_ssh.connect_again(host)
    if problem is None:
        ok, answer = _program(host, "confirm", {"token": token})
        return None if ok else f"firewall: {answer.get('error') or 'the change could not be confirmed'}"
    ok, answer = _program(host, "revert", {"token": token})
    back = ("the change was reverted" if ok else
            f"reverting over the running session failed ({answer.get('error', 'no answer')}): the host's "
            f"{result['armed']} reverts it")
    return f"firewall: a fresh SSH connection failed after the {result['backend']} change ({problem}); {back}"


def _apply(state, host, mode: str, request: str, confirm_timeout: int) -> bool:
    payload = json.loads(request)
    token = None
    if mode == "apply" and fresh_ssh.applies(host):
        token = secrets.token_hex(8)
        payload.update(token=token, confirm_seconds=confirm_timeout)
    ok, result = _program(host, mode, payload)
    if not ok:
        return fail_host(host, CONTROL, f"firewall: {result.get('error') or 'failed'}; see the host's firewall state")
    if result.get("armed"):
        failure = _confirmed(host, result, token)
        if failure:
            return fail_host(host, CONTROL, failure)
    message = "; ".join(_changes(mode, result) + result.get("notes", []))
    if result.get("blocked"):
        host.log_styled(message, fg="yellow")
        return _unreachable(state, host, f"firewall: {message}; INPUT not changed: {result['blocked']}")
    outcomes.record(host.name, CONTROL, "changed", message)
    host.log_styled(message, fg="yellow" if result.get("notes") else "green")
    return True


def _changes(mode: str, result: dict) -> list[str]:
    if mode == "remove":
        return [f"Orthanc ports removed ({', '.join(result.get('removed', [])) or 'none'})"]
    done = [f"Orthanc ports restricted with {result['backend']}"] if result.get("input_changed") else []
    docker = result.get("docker") or {}
    if docker.get("changed"):
        ports = sorted({b["host_port"] for b in docker.get("bindings", [])})
        done.append(f"Docker-published Orthanc ports {', '.join(map(str, ports))} filtered in DOCKER-USER"
                    if ports else "DOCKER-USER rules of Orthanc containers no longer published removed")
    return done


@operation()
@host_step(CONTROL)
def restrict(
    ports: list[int],
    cidrs: list[str],
    backend: str = "auto",
    enable: bool = False,
    allow_empty: bool = False,
    ssh_port: int | None = None,
    present: bool = True,
    confirm_timeout: int = 120,
    docker: bool = True,
):
    """
    Allow Orthanc's ports from ``cidrs`` only, with the firewall the host already uses.

    + ports: Orthanc's TCP ports, from its configuration (``HttpPort``, ``DicomPort``)
    + cidrs: allowed IPv4/IPv6 networks; everything else is dropped on those ports
    + backend: ``auto`` (running firewalld, active ufw, nftables with a persistent configuration, iptables in
      use, in that order) or one of ``firewalld``, ``ufw``, ``nftables``, ``iptables``
    + enable: enable an installed but inactive ufw, allowing SSH first (every port sshd listens on, the port this
      session came in on, and ``ssh_port``); otherwise such a host fails as not compliant, unchanged
    + allow_empty: accept an empty ``cidrs`` (it cuts off every client)
    + ssh_port: one more SSH port, added to those found on the host: never restricted, allowed when enabling
    + present: ``False`` takes away every rule, table, file and include line the tool added, exactly
    + confirm_timeout: seconds after which the host puts its firewall back unless a fresh SSH connection has
      confirmed the change
    + docker: also filter the Orthanc containers' ports that the host's Docker engine publishes beyond loopback,
      in Docker's ``DOCKER-USER`` chain (published ports never reach INPUT); ``ports`` may then be empty

    No SSH lockout: a change over SSH is "commit confirmed". The host arms a revert of what the change touches
    (a transient systemd timer, or a detached sleep without systemd) before changing anything; the control node
    then opens a fresh SSH connection (the host's own connection data and host key) and disarms the revert only
    when that works; otherwise the change is reverted and the host fails. A failed firewall command puts
    everything back at once. ``@local`` has no session to lose: its change is checked by re-reading the rules.
    A host whose firewall cannot be brought to the wanted state (inactive ufw without ``enable``, a foreign rule
    in the way) fails as not compliant with the reason, unchanged.

    Only rules carrying the tool's tag are managed (firewalld policy ``orthanc-harden``, evaluated before every
    zone; ufw comment ``orthanc-harden``, nftables table
    ``inet orthanc_harden`` in ``/etc/orthanc-harden/nftables.nft`` included from ``/etc/nftables.conf``, iptables
    chain ``ORTHANC-HARDEN``, and for Docker the chain ``ORTHANC-HARDEN-DOCKER`` jumped to first from
    ``DOCKER-USER``, matched on each connection's original destination port (conntrack ``--ctorigdstport``, DNATed
    connections only), kept by ``orthanc-harden-docker-user.service`` after every start of Docker); foreign rules
    stay untouched. A foreign ufw rule opening a port to everyone is
    reported, not removed.

    **Example:**

    .. code:: python

        from orthanc_harden.operations import firewall
        firewall.restrict(name="Orthanc ports from the PACS network only",
                          ports=[8042, 4242], cidrs=["10.20.0.0/16", "fd00:20::/48"])
    """
    if isinstance(host.connector, DockerEngineConnector):
        yield FunctionCommand(_unreachable, ("firewall: a Docker engine reached by its API has no shell to change "
                                             "a firewall with; add the engine's host as an SSH host (its DOCKER-USER "
                                             "chain then filters the published ports) or publish Orthanc on one "
                                             "address (orthanc_harden_docker_publish_address)",), {})
        return
    if present:
        request = request_for(ports, cidrs, backend, enable, allow_empty, ssh_port, docker)
        mode, check = "apply", "check"
    else:
        request, mode, check = json.dumps({}), "remove", "remove-check"
    plan = prechecked.plan_for(host, CONTROL, request) if present else None  # read ahead by remediate, if at all
    if plan is None:
        plan = host.get_fact(OrthancFirewallPlan, mode=check, _stdin=StringIO(request))
    if plan.get("unsupported") or plan.get("problems"):
        # The wanted state cannot be reached: never "No changes" (issue #17); switches and waivers skip a control.
        reason = plan.get("error") or plan["problems"][0]
        yield FunctionCommand(_unreachable, (f"firewall not changed: {reason}",), {})
        return
    if "error" in plan:
        yield failing(CONTROL, f"firewall: {plan['error']}")
        return
    if not plan["changed"] and plan.get("blocked"):
        yield FunctionCommand(_unreachable, (f"firewall not changed: {plan['blocked']}",), {})
        return
    if not plan["changed"]:
        outcomes.record(host.name, CONTROL, "ok", "firewall rules in place" if present else "no rules of ours")
        host.noop("; ".join([f"firewall ({plan.get('backend', 'any')}): rules already as wanted"
                             if present else "firewall: no orthanc-harden rules to remove"] + plan.get("notes", [])))
        return
    removed = [f"every orthanc-harden rule, table, file and include line of {backend}"
               for backend in plan.get("removed", [])]
    backends = [b for b in [plan.get("backend")] if b and b != "none"] + plan.get("removed", []) + (
        ["DOCKER-USER"] if plan.get("docker", {}).get("changed") else [])
    planned.record(host.name, "firewall", "rules", {
        "backend": ", ".join(backends) or "none", "add": plan.get("add", []),
        "remove": plan.get("remove", removed), "notes": plan.get("notes", [])})
    for path, diff in plan.get("diffs", {}).items():
        planned.show_diff(host, path, diff)
    yield FunctionCommand(_apply, (mode, request, confirm_timeout), {})
