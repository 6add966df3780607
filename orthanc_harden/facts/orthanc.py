"""pyinfra facts for Orthanc on a host reached over SSH (or any pyinfra connector)."""

from __future__ import annotations

import json
from importlib import resources

from pyinfra.api import FactBase

_MARK = "__ORTHANC_HARDEN_PROBE__"
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
        script = resources.files("orthanc_harden.facts").joinpath("host_probe.py").read_text()
        fallback = json.dumps(NO_PYTHON)
        return (f"if command -v python3 >/dev/null 2>&1; then python3 - <<'{_MARK}'\n{script}\n{_MARK}\n"
                f"else echo '{fallback}'; fi")

    def process(self, output: list[str]) -> dict:
        for line in output:
            if line.startswith("{"):
                return json.loads(line)
        raise ValueError("the Orthanc probe printed no JSON")
