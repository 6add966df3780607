"""Packaged pyinfra deploys: use them from any deploy file, driven by host and group data (see ``settings``).

.. code:: python

    from orthanc_harden.deploys import harden
    harden()
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api.deploy import deploy

from . import settings
from .facts.orthanc import OrthancHostState
from .operations import auth, report, upgrade
from .secrets import RUN_CACHE, SecretError

PACKAGED_BINARY = "/usr/sbin/Orthanc"


def _http_port(state: dict, config_path: str) -> int:
    port = 8042
    for entry in state.get("configs", {}).get(config_path, {}).get("files", []):
        port = entry.get("values", {}).get("HttpPort", port)
    return port


def _usable_data() -> bool:
    problems = settings.validate(host.data)
    if problems:
        report.failed(name="orthanc-harden settings", control="settings", message=f"host data: {problems[0]}")
    return not problems


def _package_host() -> bool:
    return not settings.get(host.data, "orthanc_harden_docker_url")


@deploy("Orthanc package upgrade")
def upgrade_packages(state: dict | None = None):
    """
    Upgrade package-installed Orthanc and its plugins to ``orthanc_harden_min_version`` or the pinned
    ``orthanc_harden_upgrade_version``, restarting the units that run the packaged binary.
    """
    if not _usable_data() or not _package_host():
        return
    state = state if state is not None else host.get_fact(OrthancHostState)
    units = sorted(u["unit"] for u in state.get("units", []) if u.get("binary") == PACKAGED_BINARY)
    packaged = [u for u in state.get("units", []) if u["unit"] in units]
    http_port = _http_port(state, packaged[0]["config_path"]) if packaged else 8042
    upgrade.package(
        name="Orthanc package at the version floor",
        floor=settings.get(host.data, "orthanc_harden_min_version"),
        version=settings.get(host.data, "orthanc_harden_upgrade_version"),
        cache_time=settings.get(host.data, "orthanc_harden_upgrade_cache_time"),
        allow_held=settings.get(host.data, "orthanc_harden_upgrade_allow_held"),
        lock_timeout=settings.get(host.data, "orthanc_harden_upgrade_lock_timeout"),
        services=units,
        probe_url=settings.get(host.data, "orthanc_harden_probe_url"),
        http_port=http_port,
    )


@deploy("Orthanc authentication")
def authentication(state: dict | None = None):
    """
    ``AuthenticationEnabled: true`` with the users of ``orthanc_harden_users_ref`` on every Orthanc unit of a
    package host. The reference is resolved once per run on the control node; when it does not resolve, this host
    fails with the cause and is left unchanged.
    """
    if not _usable_data() or not _package_host():
        return
    ref = settings.get(host.data, "orthanc_harden_users_ref")
    if not ref:
        report.failed(name="Orthanc users", control="auth",
                      message="orthanc_harden_users_ref is not set: no users to enable authentication with")
        return
    try:
        users = RUN_CACHE.users(ref)
    except SecretError as err:
        report.failed(name="Orthanc users", control="auth", message=str(err))
        return
    state = state if state is not None else host.get_fact(OrthancHostState)
    # The same sorted order on every host keeps pyinfra 3.10's position-based operation order consistent.
    for unit in sorted(state.get("units", []), key=lambda u: u["unit"]):
        auth.authentication(
            name=f"Orthanc authentication on ({unit['unit']})",
            users=users,
            config_path=unit["config_path"],
            service=unit["unit"],
            users_mode=settings.get(host.data, "orthanc_harden_users_mode"),
            disable_remote_access=settings.get(host.data, "orthanc_harden_disable_remote_access"),
            probe_url=settings.get(host.data, "orthanc_harden_probe_url"),
            http_port=_http_port(state, unit["config_path"]),
        )


@deploy("Orthanc hardening")
def harden():
    """
    Every control the host data switches on, in order: upgrade, authentication; then fail the host when a control
    found something it cannot fix (no package reaches the floor), so the exit status says it is not compliant.
    One round trip reads the host's Orthanc state for all of them.

    **Example:**

    .. code:: python

        from orthanc_harden.deploys import harden
        harden(name="Harden Orthanc")
    """
    if not _usable_data():
        return
    state = host.get_fact(OrthancHostState) if _package_host() else {}
    if settings.get(host.data, "orthanc_harden_upgrade_enabled"):
        upgrade_packages(state=state)
    if settings.get(host.data, "orthanc_harden_auth_enabled"):
        authentication(state=state)
    report.compliant(name="Orthanc compliant")
