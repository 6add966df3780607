"""Read a package host before planning: its Orthanc state and the authentication and firewall plans the harden
deploy will ask for, with one SSH command and one Python start (``OrthancHostCheck``); the plans go to
``prechecked``, where the operations find them.

The request is the host data's (users from the store, CIDRs, backend...); the host adds what it found (each
unit's configuration and service, the ports it serves), as the deploy does, and sends each plan back with its
request. A request the deploy then makes differently simply finds no plan: the operation asks the host itself.
"""

from __future__ import annotations

import json

from pyinfra.api import OperationValueError

from .. import prechecked, settings
from ..facts.orthanc import OrthancHostCheck, OrthancHostState
from ..masking import SecretStdin
from ..operations import auth, firewall
from ..secrets import RUN_CACHE, SecretError


def wanted(data) -> dict:
    """What this host's data asks of the authentication and firewall controls, as the deploy will ask it (None
    for a control that is off, or whose input the deploy will refuse: it reports that itself, for this host)."""
    found = {}
    for control, request in (("auth", _auth), ("firewall", _firewall)):
        try:
            found[control] = request(data)
        except Exception:  # noqa: BLE001 - never the run's: the deploy meets it again and fails this host alone
            found[control] = None
    return found


def _auth(data) -> dict | None:
    ref = settings.get(data, "orthanc_harden_users_ref")
    if not settings.get(data, "orthanc_harden_auth_enabled") or not ref:
        return None
    mode = settings.get(data, "orthanc_harden_users_mode")
    try:
        users = RUN_CACHE.users(ref)
        auth.check_users(users, mode)
    except (SecretError, OperationValueError):
        return None
    # keep_backups: the deploy restarts (and gates) after a change, which keeps the backups.
    return {"users": {name: password.unmask() for name, password in users.items()}, "users_mode": mode,
            "disable_remote_access": settings.get(data, "orthanc_harden_disable_remote_access"),
            "keep_backups": True}


def _firewall(data) -> dict | None:
    if not settings.get(data, "orthanc_harden_firewall_enabled") or settings.get(
            data, "orthanc_harden_firewall_remove"):
        return None
    try:  # validated and normalised as the operation does; the host adds the ports
        request = json.loads(firewall.request_for(
            [], settings.get(data, "orthanc_harden_allowed_cidrs"),
            settings.get(data, "orthanc_harden_firewall_backend"), settings.get(data, "orthanc_harden_firewall_enable"),
            settings.get(data, "orthanc_harden_firewall_allow_empty"),
            settings.get(data, "orthanc_harden_firewall_ssh_port"), docker=True))
    except OperationValueError:
        return None
    del request["ports"]
    request["docker"] = bool(settings.get(data, "orthanc_harden_firewall_docker"))
    return request


def read(host, request: dict) -> dict:
    """The host's ``OrthancHostState``; its plans recorded in ``prechecked`` on the way."""
    from pyinfra.api.arguments import pop_global_arguments

    if not request["auth"] and not request["firewall"]:
        return host.get_fact(OrthancHostState)
    found = host.get_fact(OrthancHostCheck, _stdin=SecretStdin(json.dumps(request)))
    arguments, _ = pop_global_arguments(host.state, host, {})
    users = (request["auth"] or {}).get("users")
    for entry in found.get("auth") or []:
        if entry.get("plan") is not None:
            prechecked.record(host.name, "auth", dict(entry["request"], users=users), arguments, entry["plan"],
                              state=host.state)
    entry = found.get("firewall")
    if entry and entry.get("plan") is not None:
        prechecked.record(host.name, "firewall", entry["request"], arguments, entry["plan"], state=host.state)
    return found["state"]
