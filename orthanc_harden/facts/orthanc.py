"""pyinfra facts for Orthanc on a host reached over SSH (or any pyinfra connector)."""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase

from ..remote import bundle, program

def _json_document(output: list[str], program_name: str) -> dict:
    """Remote programs print one JSON document; anything else on stdout (a login banner) is skipped."""
    for line in output:
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"{program_name} printed no JSON")


NO_PYTHON = {"probe": 0, "error": "python3 is not installed on the host; orthanc-harden reads configuration with it"}


class OrthancHostState(FactBase):
    """
    Everything orthanc-harden needs to know about the Orthancs of one host, in one round trip: package and plugin
    versions, held packages, `Orthanc --version` of every binary, systemd units running Orthanc with the
    configuration path from their effective ExecStart (drop-ins included), other Orthanc processes, every
    configuration file's owner, mode, hash, top-level keys and non-secret values, RegisteredUsers names (never
    passwords), and the host firewall. The configuration is parsed on the host, so passwords never leave it.

    .. code:: python

        from orthanc_harden.facts.orthanc import OrthancHostState
        state = host.get_fact(OrthancHostState)
        state["binaries"]  # {"/usr/sbin/Orthanc": "1.10.1"}
    """

    def command(self) -> str:
        return (f"if command -v python3 >/dev/null 2>&1; then python3 -c {shlex.quote(program('probe'))}; "
                f"else echo {shlex.quote(json.dumps(NO_PYTHON))}; fi")

    def process(self, output: list[str]) -> dict:
        return _json_document(output, "the Orthanc probe")


class OrthancHostCheck(FactBase):
    """
    ``OrthancHostState`` and, for what it finds, the plans of ``OrthancAuthPlan`` (one per unit) and
    ``OrthancFirewallPlan`` (``mode="check"``), from one program run: what ``remediate`` reads before planning.
    The request (``_stdin``, never the command line) holds what the host data says, passwords included; each
    plan comes back with the request it answers, without the passwords (kept by ``prechecked``).

    .. code:: python

        found = host.get_fact(OrthancHostCheck, _stdin=SecretStdin(json.dumps({"auth": {...}, "firewall": None})))
        found["state"], found["auth"], found["firewall"]
    """

    def command(self) -> str:
        return (f"if command -v python3 >/dev/null 2>&1; then python3 -c {shlex.quote(bundle())}; "
                f"else echo {shlex.quote(json.dumps({'state': NO_PYTHON}))}; fi")

    def process(self, output: list[str]) -> dict:
        return _json_document(output, "the Orthanc check")


class OrthancAuthPlan(FactBase):
    """
    What ``operations.auth.authentication`` would change: files, user names added/removed/updated, whether
    authentication gets enabled, or an ``error``. The request, passwords included, must come as ``_stdin`` (never
    on the command line); the plan is made on the host, so current passwords never leave it.

    .. code:: python

        plan = host.get_fact(OrthancAuthPlan, _stdin=json.dumps(request))
    """

    def command(self) -> str:
        return f"python3 -c {shlex.quote(program('auth'))} check"

    def process(self, output: list[str]) -> dict:
        return _json_document(output, "the authentication planner")


class OrthancFirewallPlan(FactBase):
    """
    What ``operations.firewall.restrict`` (``mode="check"``) or its removal (``mode="remove-check"``) would
    change: the backend in use, whether the tagged rules differ, conflicting foreign rules, notes, or an
    ``error``. The request comes as ``_stdin``; it holds ports and CIDRs only.

    .. code:: python

        plan = host.get_fact(OrthancFirewallPlan, mode="check", _stdin=StringIO(json.dumps(request)))
    """

    def command(self, mode: str = "check") -> str:
        return f"python3 -c {shlex.quote(program('firewall'))} {shlex.quote(mode)}"

    def process(self, output: list[str]) -> dict:
        return _json_document(output, "the firewall planner")
