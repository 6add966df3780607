"""Restrict Orthanc's HTTP and DICOM ports to allowed networks with the host's own firewall."""

from __future__ import annotations

import ipaddress
import json
from io import StringIO

from pyinfra import host
from pyinfra.api import FunctionCommand, OperationValueError, QuoteString, StringCommand, operation

from .. import outcomes
from ..settings import FIREWALL_BACKENDS as BACKENDS
from ..facts.orthanc import OrthancFirewallPlan
from ..remote import program
from .isolation import host_step
from .report import fail_host, failing

CONTROL = "firewall"


def request_for(ports, cidrs, backend, enable, allow_empty, ssh_port) -> str:
    """Validated on the control node too, so bad input stops before any host is asked anything."""
    if backend not in BACKENDS:
        raise OperationValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    clean_ports = []
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise OperationValueError(f"port {port!r} is not a TCP port (1-65535)")
        clean_ports.append(port)
    networks = []
    for cidr in cidrs:
        try:
            networks.append(str(ipaddress.ip_network(cidr, strict=False)))
        except ValueError:
            raise OperationValueError(f"{cidr!r} is not an IPv4 or IPv6 network (CIDR)") from None
    if not networks and not allow_empty:
        raise OperationValueError("no allowed CIDRs: that cuts off every client; pass allow_empty=True to mean it")
    if ssh_port in clean_ports:
        raise OperationValueError(f"port {ssh_port} is SSH's: restricting it could lock everyone out")
    return json.dumps({"ports": sorted(set(clean_ports)), "cidrs": networks, "backend": backend, "enable": enable,
                       "allow_empty": allow_empty, "ssh_port": ssh_port})


def _apply(state, host, mode: str, request: str) -> bool:
    ok, output = host.run_shell_command(StringCommand("python3", "-c", QuoteString(program("firewall")), mode),
                                        _stdin=StringIO(request), _timeout=300)
    lines = [line for line in output.stdout_lines if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"error": "the firewall program printed nothing"}
    if not ok or "error" in result:
        return fail_host(host, CONTROL, f"firewall: {result.get('error') or 'failed'}; see the host's firewall state")
    what = "removed" if mode == "remove" else f"restricted with {result['backend']}"
    message = "; ".join([f"Orthanc ports {what}"] + result.get("notes", []))
    outcomes.record(host.name, CONTROL, "changed", message)
    host.log_styled(message, fg="yellow" if result.get("notes") else "green")
    return True


@operation()
@host_step(CONTROL)
def restrict(
    ports: list[int],
    cidrs: list[str],
    backend: str = "auto",
    enable: bool = False,
    allow_empty: bool = False,
    ssh_port: int = 22,
    present: bool = True,
):
    """
    Allow Orthanc's ports from ``cidrs`` only, with the firewall the host already uses.

    + ports: Orthanc's TCP ports, from its configuration (``HttpPort``, ``DicomPort``)
    + cidrs: allowed IPv4/IPv6 networks; everything else is dropped on those ports
    + backend: ``auto`` (running firewalld, active ufw, nftables with a persistent configuration, iptables in
      use, in that order) or one of ``firewalld``, ``ufw``, ``nftables``, ``iptables``
    + enable: enable an installed but inactive ufw, allowing ``ssh_port`` first; otherwise such a host is reported
      and left alone
    + allow_empty: accept an empty ``cidrs`` (it cuts off every client)
    + ssh_port: never restricted; allowed first when enabling a firewall
    + present: ``False`` takes away every rule, table, file and include line the tool added, exactly

    Only rules carrying the tool's tag are managed (firewalld policy ``orthanc-harden``, evaluated before every
    zone; ufw comment ``orthanc-harden``, nftables table
    ``inet orthanc_harden`` in ``/etc/orthanc-harden/nftables.nft`` included from ``/etc/nftables.conf``, iptables
    chain ``ORTHANC-HARDEN``); foreign rules stay untouched. A foreign ufw rule opening a port to everyone is
    reported, not removed.

    **Example:**

    .. code:: python

        from orthanc_harden.operations import firewall
        firewall.restrict(name="Orthanc ports from the PACS network only",
                          ports=[8042, 4242], cidrs=["10.20.0.0/16", "fd00:20::/48"])
    """
    if present:
        request = request_for(ports, cidrs, backend, enable, allow_empty, ssh_port)
        mode, check = "apply", "check"
    else:
        request, mode, check = json.dumps({}), "remove", "remove-check"
    plan = host.get_fact(OrthancFirewallPlan, mode=check, _stdin=StringIO(request))
    if plan.get("unsupported") or plan.get("problems"):
        reason = plan.get("error") or plan["problems"][0]
        outcomes.record(host.name, CONTROL, "not-compliant", reason)
        host.noop(f"firewall not changed: {reason}")
        return
    if "error" in plan:
        yield failing(CONTROL, f"firewall: {plan['error']}")
        return
    if not plan["changed"]:
        outcomes.record(host.name, CONTROL, "ok", "firewall rules in place" if present else "no rules of ours")
        host.noop(f"firewall ({plan.get('backend', 'any')}): rules already as wanted"
                  if present else "firewall: no orthanc-harden rules to remove")
        return
    yield FunctionCommand(_apply, (mode, request), {})
