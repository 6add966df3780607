"""Every host/group-data setting of orthanc-harden, with its default, in one place (the README table is made here).

Settings are flat and prefixed ``orthanc_harden_``, dev-sec style. Each control has one switch; switching one
off needs a written reason in ``orthanc_harden_waivers``, and waived controls are reported as waived.

    python -m orthanc_harden.settings          # print the Markdown table
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from . import readme_table
from .orthanc import FLOOR

PREFIX = "orthanc_harden_"
FIREWALL_BACKENDS = ("auto", "firewalld", "ufw", "nftables", "iptables")

CONTROLS = ("upgrade", "auth", "firewall")
# Waivable beside the controls and finding IDs: a scheduled run over SSH hosts whose keys are not pinned.
HOST_KEYS_WAIVER = "ssh_host_keys"
BEGIN, END = "<!-- BEGIN SETTINGS -->", "<!-- END SETTINGS -->"


@dataclass(frozen=True)
class Setting:
    name: str
    default: object
    type: type
    description: str


SETTINGS = {s.name: s for s in [
    Setting("orthanc_harden_min_version", FLOOR, str,
            "Lowest acceptable Orthanc version (CVE-2025-0896 is fixed in 1.5.8; raise it, e.g. to `1.12.0`)."),
    Setting("orthanc_harden_upgrade_version", None, str,
            "Pin the package version to upgrade to (`1.10.1` or an exact `1.10.1+dfsg-2+deb12u1`) instead of the "
            "newest the repositories offer. Never downgrades."),
    Setting("orthanc_harden_upgrade_cache_time", 3600, int,
            "Refresh the package index before an upgrade only when it is older than this many seconds."),
    Setting("orthanc_harden_upgrade_allow_held", False, bool,
            "Upgrade an `apt-mark hold` Orthanc anyway; by default a hold stops the upgrade with a message."),
    Setting("orthanc_harden_upgrade_lock_timeout", 120, int,
            "Seconds to wait for another apt/dpkg run to release its lock before failing the host."),
    Setting("orthanc_harden_users_ref", None, str,
            "Secret reference holding the users (name -> password): `env:VAR`, `file:/path`, `vault:mount/path#key`, "
            "`sops:/path#key`, `ansible-vault:/path#key`, `pass:name`."),
    Setting("orthanc_harden_users_mode", "exact", str,
            "`exact`: the secret store is the truth (unknown and default users removed); `merge`: add/update only."),
    Setting("orthanc_harden_disable_remote_access", False, bool,
            "Also set `RemoteAccessAllowed: false` (Orthanc then answers localhost only)."),
    Setting("orthanc_harden_allowed_cidrs", [], list,
            "CIDRs (IPv4/IPv6) allowed to reach Orthanc's HTTP and DICOM ports; everything else is refused."),
    Setting("orthanc_harden_firewall_backend", "auto", str,
            "`auto` (running firewalld, active ufw, nftables with an enabled service, iptables in use, in that "
            "order) or `firewalld`, `ufw`, `nftables`, `iptables`."),
    Setting("orthanc_harden_firewall_enable", False, bool,
            "Enable an installed but inactive ufw, allowing SSH first (every port sshd listens on and the port of "
            "the session); otherwise the host fails as not compliant, unchanged."),
    Setting("orthanc_harden_firewall_allow_empty", False, bool,
            "Accept an empty `orthanc_harden_allowed_cidrs` (it cuts off every client of Orthanc)."),
    Setting("orthanc_harden_firewall_ssh_port", None, int,
            "One more SSH port to keep open, added to those found on the host (every port sshd listens on, the "
            "port of the session): never restricted, allowed first when enabling a firewall."),
    Setting("orthanc_harden_firewall_confirm_timeout", 120, int,
            "Seconds after a firewall change before the host puts its firewall back, unless a fresh SSH "
            "connection from the control node confirmed the change first (commit confirmed)."),
    Setting("orthanc_harden_firewall_docker", True, bool,
            "Also filter the ports the host's Docker engine publishes for Orthanc containers beyond loopback, in "
            "Docker's `DOCKER-USER` chain (published ports bypass INPUT), kept after every Docker start by "
            "`orthanc-harden-docker-user.service`; no recreate, compose files untouched."),
    Setting("orthanc_harden_firewall_remove", False, bool,
            "Removal mode: take away every rule, table and file the tool added, exactly."),
    Setting("orthanc_harden_probe_url", None, str,
            "URL the control node probes for anonymous access and health; default `http://<host>:<HttpPort>`. A "
            "host with several Orthanc units refuses it: map each unit in `orthanc_harden_probe_urls` instead."),
    Setting("orthanc_harden_probe_ca", None, str,
            "CA bundle (a path on the control node) that an `https://` probe URL's certificate is verified against; "
            "default the system's CAs. On-host checks of an Orthanc with `SslEnabled` trust its own certificate."),
    Setting("orthanc_harden_probe_tls_verify", True, bool,
            "Verify the certificate of an `https://` probe URL. Off sends the store's password to whoever answers "
            "there: waive it only for a lab."),
    Setting("orthanc_harden_docker_url", None, str,
            "Docker Engine API of a container host: `unix://`, `ssh://`, or `tcp://` with TLS."),
    Setting("orthanc_harden_docker_tls", None, dict,
            "TLS client files for a `tcp://` engine: `{\"ca\": ..., \"cert\": ..., \"key\": ...}`."),
    Setting("orthanc_harden_docker_insecure", False, bool,
            "Accept a `tcp://` engine without `orthanc_harden_docker_tls`. INSECURE: users files (passwords) and "
            "the whole engine API then cross the network in clear and unauthenticated; for an isolated lab only."),
    Setting("orthanc_harden_docker_filters", None, dict,
            "Docker list filters that scope which containers of the engine are managed, e.g. "
            "`{\"label\": \"pacs=prod\"}`; default: every Orthanc container."),
    Setting("orthanc_harden_docker_images", {}, dict,
            "Images an Orthanc container below the minimum version is recreated from, by image family: "
            "`{\"orthancteam\": \"orthancteam/orthanc:24.1.2\", \"osimis\": ..., \"jodogne\": ..., \"other\": ...}` "
            "(a private mirror's references work too); a container without one is reported."),
    Setting("orthanc_harden_docker_compose", "refuse", str,
            "`refuse`: leave compose-managed containers to their compose file and report the change to make; "
            "`recreate`: recreate them too, keeping every compose label (the next `docker compose up` reverts a "
            "compose file that was not changed)."),
    Setting("orthanc_harden_docker_publish_address", None, str,
            "Publish Orthanc's HTTP and DICOM ports only on this address (`127.0.0.1`, a LAN address), by "
            "recreating the container when they are published elsewhere: Docker's published ports bypass the "
            "host firewall's INPUT rules. Default: leave the bindings as they are."),
    Setting("orthanc_harden_probe_urls", {}, dict,
            "`{\"container or unit\": \"http://...\"}` where the control node checks each Orthanc: containers "
            "(default: the published HTTP port on the engine's address) and systemd units of package hosts "
            "(default: checked on the host, on the unit's own HttpPort)."),
    Setting("orthanc_harden_schedule_inventory", None, str,
            "`deploys/schedule.py`: absolute path of the inventory the scheduled run uses (required there)."),
    Setting("orthanc_harden_schedule_mode", "remediate", str,
            "`deploys/schedule.py`: `remediate` (fix drift) or `audit` (report only)."),
    Setting("orthanc_harden_schedule_on_calendar", "hourly", str,
            "`deploys/schedule.py`: systemd `OnCalendar=` of the timer."),
    Setting("orthanc_harden_schedule_cron", "17 * * * *", str,
            "`deploys/schedule.py`: cron schedule used where the control node runs no systemd."),
    Setting("orthanc_harden_schedule_report_dir", "/var/lib/orthanc-harden/reports", str,
            "`deploys/schedule.py`: where each run's JSON report is written (0600)."),
    Setting("orthanc_harden_schedule_keep", 48, int, "`deploys/schedule.py`: reports kept per mode; older ones go."),
    Setting("orthanc_harden_schedule_environment_file", None, str,
            "`deploys/schedule.py`: file of variables the secret references need (e.g. `VAULT_TOKEN`), read at run "
            "time, never copied into the unit."),
    Setting("orthanc_harden_schedule_remove", False, bool, "`deploys/schedule.py`: remove the timer or cron file."),
    Setting("orthanc_harden_shard_key", None, str,
            "`--shard`: hosts with the same key land in the same shard (default: the host's name; a Docker engine "
            "at `ssh://` or `tcp://`, the name of its machine). Give it to hosts that must be audited in one run, "
            "such as an engine and the SSH host of its machine when their names differ."),
    Setting("orthanc_harden_schedule_shard", None, str,
            "`deploys/schedule.py`: run only shard `I/N` of the inventory (`--shard`): N control nodes, each with its "
            "own timer and shard, cover every host once; `orthanc-harden report merge` joins their reports."),
    Setting("orthanc_harden_upgrade_enabled", True, bool, "Control `upgrade`: bring Orthanc to the minimum version."),
    Setting("orthanc_harden_auth_enabled", True, bool,
            "Control `auth`: `AuthenticationEnabled: true` with the secret store's users."),
    Setting("orthanc_harden_firewall_enabled", True, bool,
            "Control `firewall`: restrict Orthanc's ports to `orthanc_harden_allowed_cidrs`."),
    Setting("orthanc_harden_waivers", {}, dict,
            "Written reasons for switched-off controls and accepted findings: `{\"firewall\": \"...\", "
            "\"ORTH-102\": \"...\"}`. Waived items are reported as waived, never hidden. `ssh_host_keys`: "
            "let `deploys/schedule.py` accept SSH hosts without strict host key checking and a known_hosts file."),
]}


def get(data, name: str):
    """The value from host data (a pyinfra HostData, a dict, anything with ``.get``) or the default."""
    default = SETTINGS[name].default
    value = data.get(name, None) if data is not None else None
    if value is None:
        return default.copy() if isinstance(default, (list, dict)) else default
    return value


def waived_controls(data) -> dict[str, str]:
    """Controls switched off in this host's data, with their written reasons."""
    reasons = get(data, "orthanc_harden_waivers")
    return {control: reasons.get(control, "") for control in CONTROLS
            if not get(data, f"orthanc_harden_{control}_enabled")}


def plain_tcp_engine(url, tls, insecure) -> str | None:
    """Why a Docker engine URL may not be used as given, or None: over tcp:// without TLS the users files travel in
    clear (put_archive) to whoever answers, and anyone on the path may drive the engine."""
    if isinstance(url, str) and url.startswith(("tcp://", "http://")) and not tls and insecure is not True:
        return (f"orthanc_harden_docker_url {url} is plain TCP without TLS: set orthanc_harden_docker_tls, or "
                f"orthanc_harden_docker_insecure: true to accept passwords crossing the network in clear")
    return None


def _keys(data) -> list[str]:
    if data is None:
        return []
    if hasattr(data, "dict"):  # pyinfra's HostData: host, groups and deploy data merged
        return list(data.dict())
    return list(data) if isinstance(data, dict) else []


def unknown_settings(data) -> list[str]:
    """A mistyped setting is never ignored: left alone, `orthanc_harden_users_mod: merge` would leave the default
    `exact` in force and remove every user the store does not list."""
    problems = []
    for key in sorted(k for k in _keys(data) if isinstance(k, str) and k.startswith(PREFIX) and k not in SETTINGS):
        close = difflib.get_close_matches(key, list(SETTINGS), n=1, cutoff=0.75)
        problems.append(f"{key} is not an orthanc-harden setting" + (f": did you mean {close[0]}?" if close else ""))
    return problems


# One check per input, used by validate() and by the operations alike; each caller names its own key.
def tcp_port(value) -> bool:
    """A TCP port number, 1-65535 (a bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def network(value) -> str | None:
    """`value` as an IPv4 or IPv6 network (host bits allowed: "10.1.2.3/8" is 10.0.0.0/8), or None."""
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except (TypeError, ValueError):
        return None


def publish_address_problem(value: str) -> str | None:
    """What is wrong with an address to publish Orthanc's ports on, or None: it must be one address, not every one."""
    try:
        if ipaddress.ip_address(value).is_unspecified:
            return f"{value} is every address: name one"
    except ValueError:
        return f"{value!r} is not an IPv4 or IPv6 address"
    return None


def user_name(value) -> bool:
    """Usable as an Orthanc user name in HTTP basic authentication: non-empty text without ':'."""
    return isinstance(value, str) and bool(value) and ":" not in value


def validate(data) -> list[str]:
    """One line per problem in the host data; empty when it is usable."""
    from .findings import CATALOGUE

    problems = unknown_settings(data)
    refused = data.get("_ansible_refused", None) if data is not None else None  # see ansible_inventory.REFUSED
    if refused:
        problems.insert(0, refused)
    for name, setting in SETTINGS.items():
        value = data.get(name, None) if data is not None else None
        if value is not None and not isinstance(value, setting.type):
            problems.append(f"{name} must be a {setting.type.__name__}, not {type(value).__name__}")
    if get(data, "orthanc_harden_users_mode") not in ("exact", "merge"):
        problems.append("orthanc_harden_users_mode must be 'exact' or 'merge'")
    for name in ("orthanc_harden_upgrade_cache_time", "orthanc_harden_upgrade_lock_timeout"):
        value = get(data, name)
        if isinstance(value, int) and value < 0:
            problems.append(f"{name} must not be negative")
    confirm = get(data, "orthanc_harden_firewall_confirm_timeout")
    if isinstance(confirm, int) and not 10 <= confirm <= 3600:
        problems.append("orthanc_harden_firewall_confirm_timeout must be between 10 and 3600 seconds")
    cidrs = get(data, "orthanc_harden_allowed_cidrs")
    for cidr in cidrs if isinstance(cidrs, list) else []:
        if network(cidr) is None:
            problems.append(f"orthanc_harden_allowed_cidrs: {cidr!r} is not an IPv4 or IPv6 network")
    if get(data, "orthanc_harden_firewall_backend") not in FIREWALL_BACKENDS:
        problems.append(f"orthanc_harden_firewall_backend must be one of {', '.join(FIREWALL_BACKENDS)}")
    if get(data, "orthanc_harden_docker_compose") not in ("refuse", "recreate"):
        problems.append("orthanc_harden_docker_compose must be refuse or recreate")
    publish = get(data, "orthanc_harden_docker_publish_address")
    problem = publish_address_problem(publish) if isinstance(publish, str) else None
    if problem:
        problems.append(f"orthanc_harden_docker_publish_address {problem}")
    problem = plain_tcp_engine(get(data, "orthanc_harden_docker_url"), get(data, "orthanc_harden_docker_tls"),
                               get(data, "orthanc_harden_docker_insecure"))
    if problem:
        problems.append(problem)
    if get(data, "orthanc_harden_schedule_mode") not in ("remediate", "audit"):
        problems.append("orthanc_harden_schedule_mode must be remediate or audit")
    shard = get(data, "orthanc_harden_schedule_shard")
    if isinstance(shard, str):
        from .runs.shard import ShardError, parse

        try:
            parse(shard)
        except ShardError as err:
            problems.append(f"orthanc_harden_schedule_shard: {err}")
    for name in ("orthanc_harden_min_version", "orthanc_harden_upgrade_version"):
        value = get(data, name)
        if isinstance(value, str) and not re.match(r"^(\d+:)?\d+\.\d+", value):
            problems.append(f"{name} {value!r} is not a version like 1.5.8")
    waivers = get(data, "orthanc_harden_waivers")
    if isinstance(waivers, dict):
        for key, reason in waivers.items():
            if key not in CONTROLS and key not in CATALOGUE and key != HOST_KEYS_WAIVER:
                problems.append(f"orthanc_harden_waivers names {key!r}, which is neither a control nor a finding ID")
            elif not isinstance(reason, str) or not reason.strip():
                problems.append(f"orthanc_harden_waivers[{key!r}] needs a written reason")
        for control in CONTROLS:
            if get(data, f"orthanc_harden_{control}_enabled") is False and not str(waivers.get(control, "")).strip():
                problems.append(f"control {control!r} is switched off without a reason in orthanc_harden_waivers")
    return problems


def markdown_table() -> str:
    lines = ["| setting | default | what it does |", "| --- | --- | --- |"]
    for setting in SETTINGS.values():
        default = "`" + repr(setting.default).replace("'", '"') + "`"
        lines.append(f"| `{setting.name}` | {default} | {setting.description} |")
    return "\n".join(lines) + "\n"


def update_readme(path: Path) -> bool:
    """Rewrite the table between the markers; True when the file changed."""
    return readme_table.update(path, BEGIN, END, markdown_table())


if __name__ == "__main__":
    readme_table.command_line(sys.argv[1:], BEGIN, END, markdown_table)
