"""The findings catalogue: stable IDs, severity and remediation text, in one place, and their evaluation.

A control is evaluated only when what it needs is known: a missing version, configuration or probe never passes
or fails a control by guess. `compliant` means no failing finding of severity critical or high; medium and lower
findings (the Orthanc Book's checklist) are advisories.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from . import readme_table
from .orthanc import FLOOR, version_tuple
from .statuses import FindingStatus, Severity

SEVERITIES = tuple(Severity)
BLOCKING = (Severity.CRITICAL, Severity.HIGH)
# Why medium and lower findings are reported but never enforced: each can be what a working setup needs.
ADVISED = "Advised only (a working setup may need it): never changed by the tool, never blocking compliance."
BEGIN, END = "<!-- BEGIN FINDINGS -->", "<!-- END FINDINGS -->"


@dataclass(frozen=True)
class Control:
    id: str
    severity: str
    title: str
    remediation: str
    short: str  # the few words a table shows after the ID
    since: str | None = None  # first Orthanc version that has the option


@dataclass(frozen=True)
class Result:
    control: Control
    status: FindingStatus
    detail: str
    waiver: str | None = None

    def as_dict(self) -> dict:
        return {"id": self.control.id, "severity": self.control.severity, "title": self.control.title,
                "short": self.control.short, "status": self.status, "detail": self.detail, "waiver": self.waiver,
                "remediation": self.control.remediation}


CATALOGUE = {c.id: c for c in [
    Control("ORTH-001", "critical", "Orthanc version below the floor (CVE-2025-0896 below 1.5.8)",
            "Upgrade the orthanc package (and orthanc-* plugins) or the image to the floor or newer; until then "
            "set AuthenticationEnabled: true with real users (control `upgrade`).",
            short="Orthanc too old (CVE-2025-0896)"),
    Control("ORTH-002", "critical", "Remote access allowed with HTTP authentication off",
            "Set \"AuthenticationEnabled\": true explicitly and register users from the secret store "
            "(control `auth`), or set RemoteAccessAllowed: false.",
            short="remote access without authentication"),
    Control("ORTH-003", "high", "Authentication on without real users, or with well-known default credentials",
            "Register users from the secret store in exact mode; Orthanc >= 1.5.8 otherwise creates orthanc/orthanc "
            "(\"Your setup is INSECURE\").",
            short="no real users or default credentials"),
    Control("ORTH-004", "high", "A file holding RegisteredUsers is readable or writable beyond the service",
            "chmod 0640 (or stricter), owner root, group the service's group (Debian: root:orthanc).",
            short="credentials file readable by others"),
    Control("ORTH-005", "high", "Orthanc's HTTP or DICOM port is open to every source",
            "Allow only the networks that need Orthanc with the host firewall (control `firewall`); for Docker, "
            "filter in DOCKER-USER or publish on a specific address.",
            short="port open to every source"),
    Control("ORTH-006", "high", "A top-level key is defined in two configuration files (Orthanc refuses to start)",
            "Keep each top-level key in one file of the configuration directory.",
            short="key defined in two files"),
    Control("ORTH-007", "high", "A configuration file does not parse (Orthanc fails at its next start)",
            "Fix the JSON syntax of the named file; a running Orthanc keeps its old configuration until restart.",
            short="configuration does not parse"),
    Control("ORTH-008", "high", "An Orthanc process runs a binary or configuration that a non-root user controls",
            "Run Orthanc from the package or a root-owned path through a systemd unit; the probe never executes "
            "or reads such paths, so this instance's version and configuration are unknown.",
            short="runs files a non-root user controls"),
    Control("ORTH-101", "medium", "HTTPS off while remote access is allowed",
            "Enable SslEnabled with a certificate, or put Orthanc behind a TLS reverse proxy.",
            short="HTTPS off"),
    Control("ORTH-102", "low", "WebDAV enabled", "Set WebDavEnabled: false unless WebDAV is used.",
            short="WebDAV on"),
    Control("ORTH-103", "medium", "Lua execution through the REST API enabled (/tools/execute-script)",
            "Set ExecuteLuaEnabled: false.", short="Lua through REST on", since="1.5.8"),
    Control("ORTH-104", "low", "DICOM AlwaysAllow* accepts any modality",
            "Set DicomAlwaysAllowEcho/Store/Find/Get/Move to false and declare DicomModalities.",
            short="DICOM accepts any modality"),
    Control("ORTH-105", "low", "DicomCheckCalledAet off", "Set DicomCheckCalledAet: true.",
            short="called AET not checked"),
    Control("ORTH-106", "info", "HTTP errors are described to clients", "Set HttpDescribeErrors: false.",
            short="HTTP errors described"),
    Control("ORTH-107", "medium", "The REST API may write to the file system",
            "Set RestApiWriteToFileSystemEnabled: false.", short="REST may write files", since="1.12.0"),
    Control("ORTH-108", "critical", "Anonymous GET /system answered 200 from the control node (live exposure)",
            "Enable authentication (control `auth`) and restrict the port (control `firewall`).",
            short="anonymous access answered"),
]}


def _config_checks(instance: dict, version: tuple | None):
    config = instance.get("config")
    if not config or config.get("unknown"):
        return
    if config.get("parse_errors"):
        path, message = next(iter(sorted(config["parse_errors"].items())))
        more = len(config["parse_errors"]) - 1
        yield "ORTH-007", f"{path}: {message}" + (f" (and {more} more)" if more else "")
    if config.get("duplicates"):
        key, files = next(iter(sorted(config["duplicates"].items())))
        yield "ORTH-006", f"{key!r} is defined in {', '.join(files)}"
    eff = config.get("effective", {})
    remote, auth = eff.get("RemoteAccessAllowed"), eff.get("AuthenticationEnabled")
    if remote and auth is False:
        how = "explicitly false" if "AuthenticationEnabled" in config.get("explicit", []) else "off by default"
        yield "ORTH-002", f"RemoteAccessAllowed is true and AuthenticationEnabled is {how}"
    if auth:
        if not config.get("users"):
            yield "ORTH-003", "authentication is on but no user is registered (Orthanc creates orthanc/orthanc)"
        elif config.get("default_credentials"):
            yield "ORTH-003", f"well-known default password for user(s) {', '.join(config['default_credentials'])}"
    for entry in config.get("user_files", []):
        mode = int(entry.get("mode") or "0", 8)
        service_group = config.get("service_group")
        if mode & 0o006 or mode & 0o020 or (mode & 0o040 and service_group and entry.get("group") != service_group):
            yield "ORTH-004", f"{entry['path']} is {entry.get('mode')} {entry.get('owner')}:{entry.get('group')}"
            break
    if remote and eff.get("SslEnabled") is False:
        yield "ORTH-101", "SslEnabled is false with RemoteAccessAllowed true"
    if eff.get("WebDavEnabled"):
        yield "ORTH-102", "WebDavEnabled is true"
    if eff.get("ExecuteLuaEnabled"):
        yield "ORTH-103", "ExecuteLuaEnabled is true"
    always = [k for k in ("Echo", "Store", "Find", "Get", "Move") if eff.get(f"DicomAlwaysAllow{k}")]
    if always and eff.get("DicomServerEnabled", True):
        yield "ORTH-104", "DicomAlwaysAllow" + "/".join(always) + " true"
    if eff.get("DicomCheckCalledAet") is False and eff.get("DicomServerEnabled", True):
        yield "ORTH-105", "DicomCheckCalledAet is false"
    if eff.get("HttpDescribeErrors"):
        yield "ORTH-106", "HttpDescribeErrors is true"
    if eff.get("RestApiWriteToFileSystemEnabled") and version and version >= version_tuple("1.12.0"):
        yield "ORTH-107", "RestApiWriteToFileSystemEnabled is true"


def _checks(instance: dict, min_version: str):
    if instance.get("untrusted"):
        yield "ORTH-008", instance["untrusted"]
    version = version_tuple(instance.get("version"))
    floor = version_tuple(min_version) or version_tuple(FLOOR)
    if version is not None and version < floor:
        why = "CVE-2025-0896" if version < (1, 5, 8) else f"below the configured floor {min_version}"
        yield "ORTH-001", f"version {instance['version']} ({why})"
    yield from _config_checks(instance, version)
    firewall = instance.get("firewall") or {}
    eff = (instance.get("config") or {}).get("effective", {})
    open_ports = firewall.get("ports_open_to_all")
    if open_ports and eff.get("RemoteAccessAllowed", True) is not False:
        yield "ORTH-005", f"port(s) {', '.join(map(str, open_ports))} open to every source ({firewall.get('backend')})"
    probe = instance.get("probe") or {}
    if probe.get("anonymous_status") == 200:
        yield "ORTH-108", f"{probe.get('url')}/system answered 200 without credentials"
    if probe.get("default_credentials_accepted"):
        users = ", ".join(probe["default_credentials_accepted"])
        yield "ORTH-003", f"{probe.get('url')} accepts the default credentials of {users}"


def evaluate(instance: dict, waivers: dict[str, str] | None = None, min_version: str = FLOOR) -> list[Result]:
    """Failing and waived controls for one Orthanc instance (one result per control, first detail kept)."""
    waivers = waivers or {}
    results: dict[str, Result] = {}
    for control_id, detail in _checks(instance, min_version):
        if control_id in results:
            continue
        control = CATALOGUE[control_id]
        reason = waivers.get(control_id)
        status = FindingStatus.WAIVED if reason else FindingStatus.FAIL
        results[control_id] = Result(control, status, detail, reason or None)
    return sorted(results.values(), key=lambda r: (SEVERITIES.index(r.control.severity), r.control.id))


def summarise(results: list[Result]) -> dict:
    failed = [r for r in results if r.status == FindingStatus.FAIL]
    return {
        "compliant": not any(r.control.severity in BLOCKING for r in failed),
        "worst": failed[0].control.severity if failed else None,
        "failed": [r.control.id for r in failed],
        "waived": [r.control.id for r in results if r.status == FindingStatus.WAIVED],
    }


def handling(control: Control) -> str:
    """How a finding is fixed, or why it is only advised."""
    return control.remediation if control.severity in BLOCKING else f"{ADVISED} {control.remediation}"


def catalogue() -> list[dict]:
    """The catalogue for people and machines: ID, severity, title, short title, how it is fixed or why advised."""
    return [{"id": c.id, "severity": c.severity, "blocking": c.severity in BLOCKING, "title": c.title,
             "short": c.short, "handling": handling(c), **({"since": c.since} if c.since else {})}
            for c in sorted(CATALOGUE.values(), key=lambda c: (SEVERITIES.index(c.severity), c.id))]


def markdown_table() -> str:
    lines = ["| ID | severity | finding | fixed by, or why only advised |", "| --- | --- | --- | --- |"]
    for entry in sorted(catalogue(), key=lambda e: e["id"]):
        cells = [entry["id"], entry["severity"], entry["title"], entry["handling"]]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def update_readme(path: Path) -> bool:
    """Rewrite the table between the markers; True when the file changed."""
    return readme_table.update(path, BEGIN, END, markdown_table())


if __name__ == "__main__":
    readme_table.command_line(sys.argv[1:], BEGIN, END, markdown_table)
