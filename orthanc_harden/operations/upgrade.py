"""Upgrade package-installed Orthanc, with its plugins, to a version that fixes CVE-2025-0896."""

from __future__ import annotations

import shlex

from pyinfra import host, state
from pyinfra.api import FunctionCommand, OperationValueError, operation

from .. import outcomes, planned
from ..orthanc import CONFIG_DIR, FLOOR, HTTP_PORT, version_tuple
from ..facts.packages import APT_STAMP, RPM_STAMP, OrthancPackages, OrthancPackagesOffered
from ..versions import at_least, matches_pin, newer, sort_key
from ..checks import verify
from .isolation import host_step
from .verdict import failing


CONTROL = "upgrade"

_HOLD_HINT = {
    "apt": "apt-mark hold",
    "dnf": "dnf versionlock",
    "yum": "yum versionlock",
    "zypper": "zypper addlock",
}


def refresh_command(manager: str, lock_timeout: int) -> str:
    """Refresh the package index; a repository that fails is an error, not a warning."""
    if manager == "apt":
        return (f"apt-get update -q -o DPkg::Lock::Timeout={lock_timeout} -o APT::Update::Error-Mode=any "
                f"&& touch {APT_STAMP}")
    stamp_dir = RPM_STAMP.rsplit("/", 1)[0]
    refresh = {"dnf": "dnf -q makecache", "yum": "yum -q makecache", "zypper": "zypper -n -q refresh"}[manager]
    return f"{refresh} && mkdir -p {stamp_dir} && touch {RPM_STAMP}"


def install_command(manager: str, targets: dict[str, str], lock_timeout: int, held: list[str] = ()) -> str:
    """One transaction for Orthanc and its plugins, each at an exact version, keeping edited configuration.
    `held`: apt packages upgraded through their hold, which is put back afterwards (it is the admin's)."""
    names = sorted(targets)
    if manager == "apt":
        specs = " ".join(shlex.quote(f"{name}={targets[name]}") for name in names)
        allow = " --allow-change-held-packages" if held else ""
        rehold = f" && apt-mark hold {' '.join(sorted(held))} >/dev/null" if held else ""
        return ("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --only-upgrade --no-install-recommends"
                f"{allow} -o DPkg::Lock::Timeout={lock_timeout} -o Dpkg::Options::=--force-confdef "
                f"-o Dpkg::Options::=--force-confold {specs}{rehold}")
    if manager == "zypper":
        specs = " ".join(shlex.quote(f"{name}={targets[name]}") for name in names)
        return f"zypper -n install --no-recommends {specs}"
    specs = " ".join(shlex.quote(f"{name}-{targets[name]}") for name in names)
    return f"{manager} -y -q upgrade {specs}"


def restart_command(services: list[str]) -> str:
    """Restart each running Orthanc unit once, unless the package's own scripts already did (its PID changed)."""
    parts = []
    for service in services:
        unit = shlex.quote(service)
        parts.append(f'[ "$(systemctl show -p MainPID --value {unit})" = "$before_{len(parts)}" ] '
                     f"&& systemctl try-restart {unit}")
    return "; ".join(parts)


POLICY_RC = "/usr/sbin/policy-rc.d"
# Debian's maintainer scripts stop, start and (by trigger) restart Orthanc again: that is up to three restarts.
# A policy-rc.d that refuses only Orthanc's actions leaves the one restart to us; an existing policy is kept.
_POLICY = ('#!/bin/sh\n# orthanc-harden: Orthanc restarts once, after its upgrade\n'
           'case "$1" in orthanc|orthanc.service) exit 101;; esac\nexit 0\n')


def upgrade_script(manager: str, install: str, services: list[str]) -> str:
    """The install, then one restart of each running unit the package's scripts did not restart themselves."""
    lines = [f"before_{i}=$(systemctl show -p MainPID --value {shlex.quote(service)} 2>/dev/null)"
             for i, service in enumerate(services)]
    if manager == "apt":
        lines.append(f"own=; if [ ! -e {POLICY_RC} ]; then printf %s {shlex.quote(_POLICY)} > {POLICY_RC} "
                     f"&& chmod 755 {POLICY_RC} && own=1; fi")
        lines.append(f"trap '[ -n \"$own\" ] && rm -f {POLICY_RC}' EXIT")
    lines.append(f"{install} || exit $?")
    if services:
        lines.append(restart_command(services) + "; true")
    return "\n".join(lines)


def targets_for(packages: dict, floor: str, version: str | None) -> tuple[dict[str, str] | None, str]:
    """The exact versions to install, or None and why not. Plugins follow Orthanc to their own candidates."""
    installed = packages["installed"]
    current = installed["orthanc"]
    if version:
        offered = [v for v in packages["available"].get("orthanc", []) + [packages["candidates"].get("orthanc")]
                   if v and matches_pin(v, version)]
        if not offered:
            return None, f"cannot upgrade: orthanc {version} is not offered by the configured repositories"
        target = max(offered, key=sort_key)
    else:
        target = packages["candidates"].get("orthanc")
        if not target or not at_least(target, floor):
            newest = target or "nothing"
            return None, f"cannot upgrade: newest available orthanc is {newest}, below {floor}"
    if not newer(target, current):
        return None, f"cannot upgrade: orthanc {target} is not newer than the installed {current} (never downgrades)"
    targets = {"orthanc": target}
    for name, have in installed.items():
        candidate = packages["candidates"].get(name)
        if name != "orthanc" and candidate and newer(candidate, have):
            targets[name] = candidate
    return targets, ""


def _nothing_to_do(current: str | None, floor: str, version: str | None) -> bool:
    """No package, or one already at the floor or pin (never downgrades): noted as this host's outcome."""
    if not current:
        message = "no orthanc package installed"
    elif version and not matches_pin(current, version) and newer(current, version):
        message = f"orthanc {current} is newer than the pinned {version}: never downgrades"
    elif matches_pin(current, version) if version else at_least(current, floor):
        message = f"orthanc {current} is already at {version or 'or above ' + floor}"
    else:
        return False
    outcomes.record(host.name, CONTROL, "ok", f"orthanc {current}" if current else message)
    host.noop(message)
    return True


@operation()
@host_step(CONTROL)
def package(
    floor: str = FLOOR,
    version: str | None = None,
    cache_time: int = 3600,
    allow_held: bool = False,
    lock_timeout: int = 120,
    services: tuple[str, ...] | list[str] = ("orthanc.service",),
    binary: str = "/usr/sbin/Orthanc",
    config_dir: str = CONFIG_DIR,
    probe_url: str | None = None,
    http_port: int = HTTP_PORT,
    installed: str | None = None,
    replaced: tuple[str, ...] | list[str] = (),
    restart: bool = True,
    ssl_certificate: str | None = None,
    probe_verify: bool | str = True,
    fail_if_unreachable: bool = True,
):
    """
    Upgrade the ``orthanc`` package and its installed ``orthanc-*`` plugins together when Orthanc is below ``floor``.

    + floor: the lowest acceptable Orthanc version (1.5.8 fixes CVE-2025-0896); hosts at or above it are left alone
    + version: pin a version instead (``1.10.1`` or an exact ``1.10.1+dfsg-2+deb12u1``); never downgrades
    + cache_time: refresh the package index only when it is older than this many seconds (0: always, if upgrading)
    + allow_held: upgrade a held package anyway (apt only; otherwise a hold stops the upgrade with a message)
    + lock_timeout: seconds to wait for another apt/dpkg to release its lock, then fail
    + services: systemd units running the packaged binary, restarted once unless the package restarted them
    + binary, config_dir: checked after the upgrade (``Orthanc --version``) and searched for new conffiles
    + probe_url: where the control node checks ``/system`` afterwards; without it the check runs on the host
    + installed: the installed ``orthanc`` package version when the caller has read it already (the
      ``OrthancHostState`` fact's ``package.version``; ``""``: none): a host with nothing to do then costs no
      further command
    + replaced: units still running an Orthanc binary that an earlier upgrade replaced on disk (the
      ``OrthancHostState`` fact's ``binary_replaced``): restarted even when the package is at the floor
    + restart: ``False`` installs without restarting and leaves the restart of ``services`` to
      ``auth.authentication`` on each of them later in the same run (``harden`` does this): Orthanc then restarts
      once, health-gated, for both changes; a unit no such operation follows on the host is restarted here, as
      with ``True``, and the output says why (never left running the replaced binary)
    + ssl_certificate: an Orthanc with ``SslEnabled``: its certificate file on the host, which the on-host check
      trusts alone over https
    + probe_verify: TLS verification of an https ``probe_url``: ``True`` (the system's CAs), a CA bundle path on
      the control node, or ``False``
    + fail_if_unreachable: no package reaches the floor (or the pin): fail the host here (default), or only record
      it as not compliant for a later ``verdict.compliant`` (``harden`` does this, so that authentication and the
      firewall still close the door on an Orthanc that cannot be upgraded yet)

    Works with apt (``--force-confold``: edited configuration is kept and a newer packaged file is reported as
    ``*.dpkg-dist``), dnf, yum and zypper (``*.rpmnew`` reported). When no offered version reaches the floor the
    host is reported as not compliant and nothing is installed: apply ``operations.auth.authentication``, the
    advisory's fallback. A failed upgrade is not rolled back (packages cannot be downgraded reliably); it is
    reported with Orthanc's log.

    **Example:**

    .. code:: python

        from orthanc_harden.operations import upgrade
        upgrade.package(name="Orthanc at 1.5.8 or newer", floor="1.5.8", cache_time=3600)
    """
    if not version_tuple(floor):
        raise OperationValueError(f"floor {floor!r} is not a version like 1.5.8")
    if version is not None and not version_tuple(version):
        raise OperationValueError(f"version {version!r} is not a version like 1.10.1")
    if cache_time < 0 or lock_timeout < 0:
        raise OperationValueError("cache_time and lock_timeout must not be negative")
    tls = {"ssl_certificate": ssl_certificate, "probe_verify": probe_verify}

    if installed is not None and _nothing_to_do(installed, floor, version):
        yield from _restart_replaced(list(replaced), restart, probe_url, http_port, tls)
        return
    packages = host.get_fact(OrthancPackages)
    if _nothing_to_do(packages["installed"].get("orthanc"), floor, version):
        yield from _restart_replaced(list(replaced), restart, probe_url, http_port, tls)
        return
    current = packages["installed"]["orthanc"]
    manager = packages["manager"]
    if manager is None:
        yield failing(CONTROL, f"orthanc {current} is installed but no apt, dnf, yum or zypper was found to upgrade it")
        return
    names = sorted(packages["installed"])
    held = sorted(set(packages["held"]) & set(names))
    if held and not (allow_held and manager == "apt"):
        hint = ("set orthanc_harden_upgrade_allow_held: true for this host to upgrade it anyway" if manager == "apt"
                else "remove the lock to upgrade it")
        yield failing(CONTROL, f"cannot upgrade: {', '.join(held)} held by {_HOLD_HINT[manager]}; {hint}")
        return

    age = packages["index_age"]
    stale = age is None or age >= cache_time
    if not state.is_executing:  # pyinfra plans up to the first command: the refresh, when the index is stale
        _record_plan(packages, floor, version, stale)
    if stale:
        yield FunctionCommand(verify.run, (refresh_command(manager, lock_timeout), "refreshing the package index",
                                           lock_timeout + 600), {})
        # Commands run as they are yielded: at execution this reads the refreshed index.
        packages = host.get_fact(OrthancPackages)

    targets, reason = targets_for(packages, floor, version)
    if targets is None:
        # The floor cannot be reached: never "No changes" (#17); the control's switch and a waiver skip it.
        if fail_if_unreachable:
            yield failing(CONTROL, reason, status="not-compliant")
            return
        outcomes.record(host.name, CONTROL, "not-compliant", reason)
        host.noop(reason)
        return
    script = upgrade_script(manager, install_command(manager, targets, lock_timeout, held),
                            list(services) if restart else [])
    yield FunctionCommand(verify.run, (script, f"installing orthanc {targets['orthanc']}", lock_timeout + 1800), {})
    yield FunctionCommand(verify.upgraded, (binary, config_dir, targets["orthanc"], floor, probe_url, http_port,
                                            manager, list(services), restart),
                          tls)


def _record_plan(packages: dict, floor: str, version: str | None, stale: bool) -> None:
    """Each package's version from and to, for a dry run, from the index as it is (a dry run refreshes nothing)."""
    note = ""
    if stale and planned.dry() and packages["manager"] == "apt":
        offered = host.get_fact(OrthancPackagesOffered, names=sorted(packages["installed"]))
        if "error" in offered:
            note = f"what the repositories offer could not be read: {offered['error']}"
        else:
            packages = {**packages, **offered}
            note = "as the repositories offer now; the host's package index is refreshed first"
    elif stale:
        note = f"the package index is refreshed first; it offers {packages['candidates'].get('orthanc')} now"
    targets, reason = targets_for(packages, floor, version)
    if targets is None:
        targets, note = {"orthanc": None}, "; ".join(filter(None, [reason, note]))
    for name, target in sorted(targets.items()):
        planned.record(host.name, "packages", name, {"name": name, "from": packages["installed"][name],
                                                      "to": target, "note": note if name == "orthanc" else ""})


def _restart_replaced(units: list[str], restart: bool, probe_url: str | None, http_port: int, tls: dict):
    """Units still running a replaced binary: restarted now, or left to the authentication change that follows."""
    if units:
        yield FunctionCommand(verify.restart_replaced, (units, restart, probe_url, http_port), tls)
