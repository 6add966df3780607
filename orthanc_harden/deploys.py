"""Packaged pyinfra deploys: use them from any deploy file, driven by host and group data (see ``settings``).

.. code:: python

    from orthanc_harden.deploys import harden
    harden()
"""

from __future__ import annotations

import posixpath

from pyinfra import host
from pyinfra.api import OperationValueError
from pyinfra.api.deploy import deploy


from docker.errors import DockerException

from . import hostkeys, outcomes, settings
from .docker import assess, engine, inspection
from .facts.orthanc import OrthancHostState
from .operations import auth, container, firewall, verdict, schedule, upgrade
from .operations.isolation import host_deploy
from .orthanc import HTTP_PORT
from .remote import orthanc_config
from .secrets import RUN_CACHE, SecretError

PACKAGED_BINARY = "/usr/sbin/Orthanc"


def _values(state: dict, config_path: str) -> dict:
    """The non-secret values of one Orthanc's configuration files, merged as Orthanc reads them."""
    values: dict = {}
    for entry in state.get("configs", {}).get(config_path, {}).get("files", []):
        values.update(entry.get("values", {}))
    return values


def _http_port(state: dict, config_path: str) -> int:
    return _values(state, config_path).get("HttpPort", HTTP_PORT)


def _probe_url(state: dict, unit: str | None) -> str | None:
    """Where the control node checks this unit's health: its entry in ``orthanc_harden_probe_urls``, else the
    host-wide ``orthanc_harden_probe_url`` on a host with one Orthanc unit, else None (checked on the host, on
    the unit's own port). Several units never share one URL: the gate of one would ask the other."""
    mapped = settings.get(host.data, "orthanc_harden_probe_urls").get(unit or "")
    if mapped:
        return mapped
    return settings.get(host.data, "orthanc_harden_probe_url") if len(state.get("units", [])) <= 1 else None


def _shared_probe_url(state: dict) -> str | None:
    """The one-line reason a host-wide probe URL cannot serve this host's several Orthanc units, or None."""
    units = sorted(u["unit"] for u in state.get("units", []))
    mapped = settings.get(host.data, "orthanc_harden_probe_urls")
    unmapped = [u for u in units if u not in mapped]
    if len(units) > 1 and unmapped and settings.get(host.data, "orthanc_harden_probe_url"):
        return (f"orthanc_harden_probe_url names one URL for {len(units)} Orthanc units ({', '.join(units)}): "
                f"map each unit to its own URL in orthanc_harden_probe_urls, or unset it to check each unit "
                f"on the host on its own port")
    return None


def _ssl_certificate(state: dict, config_path: str) -> str | None:
    """The certificate file of an Orthanc with SslEnabled (relative paths are the configuration directory's)."""
    values = _values(state, config_path)
    path = values.get("SslCertificate") if values.get("SslEnabled") is True else None
    if not isinstance(path, str) or not path:
        return None
    kind = state.get("configs", {}).get(config_path, {}).get("kind")
    base = config_path if kind == "dir" else posixpath.dirname(config_path)
    return posixpath.join(base, path)


def _probe_verify() -> bool | str:
    if not settings.get(host.data, "orthanc_harden_probe_tls_verify"):
        return False
    return settings.get(host.data, "orthanc_harden_probe_ca") or True


def _usable_data() -> bool:
    problems = settings.validate(host.data)
    if problems:
        verdict.failed(name="orthanc-harden settings", control="settings", message=f"host data: {problems[0]}")
    return not problems


def _package_host() -> bool:
    return not settings.get(host.data, "orthanc_harden_docker_url")


def _store_users() -> dict | None:
    """The users of ``orthanc_harden_users_ref``, resolved once per run on the control node; None when they cannot
    be had, after failing this host with the cause."""
    ref = settings.get(host.data, "orthanc_harden_users_ref")
    if not ref:
        verdict.failed(name="Orthanc users", control="auth",
                      message="orthanc_harden_users_ref is not set: no users to enable authentication with")
        return None
    try:
        users = RUN_CACHE.users(ref)
        auth.check_users(users, settings.get(host.data, "orthanc_harden_users_mode"))
        return users
    except (SecretError, OperationValueError) as err:
        verdict.failed(name="Orthanc users", control="auth", message=str(err))
        return None


@deploy("Orthanc package upgrade")
@host_deploy("upgrade")
def upgrade_packages(state: dict | None = None, restart: bool = True, compliance_follows: bool = False):
    """
    Upgrade package-installed Orthanc and its plugins to ``orthanc_harden_min_version`` or the pinned
    ``orthanc_harden_upgrade_version``, restarting the units that run the packaged binary (``restart=False``:
    ``authentication`` follows and restarts them, once for both changes).
    """
    if not _usable_data() or not _package_host():
        return
    state = state if state is not None else host.get_fact(OrthancHostState)
    units = sorted(u["unit"] for u in state.get("units", []) if u.get("binary") == PACKAGED_BINARY)
    packaged = [u for u in state.get("units", []) if u["unit"] in units]
    http_port = _http_port(state, packaged[0]["config_path"]) if packaged else HTTP_PORT
    upgrade.package(
        name="Orthanc package at the version floor",
        floor=settings.get(host.data, "orthanc_harden_min_version"),
        version=settings.get(host.data, "orthanc_harden_upgrade_version"),
        cache_time=settings.get(host.data, "orthanc_harden_upgrade_cache_time"),
        allow_held=settings.get(host.data, "orthanc_harden_upgrade_allow_held"),
        lock_timeout=settings.get(host.data, "orthanc_harden_upgrade_lock_timeout"),
        services=units,
        probe_url=_probe_url(state, packaged[0]["unit"] if packaged else None),
        http_port=http_port,
        ssl_certificate=_ssl_certificate(state, packaged[0]["config_path"]) if packaged else None,
        probe_verify=_probe_verify(),
        fail_if_unreachable=not compliance_follows,
        installed=(state.get("package") or {}).get("version") or "",
        replaced=[u["unit"] for u in packaged if u.get("binary_replaced")],
        restart=restart,
    )


@deploy("Orthanc authentication")
@host_deploy("auth")
def authentication(state: dict | None = None):
    """
    ``AuthenticationEnabled: true`` with the users of ``orthanc_harden_users_ref`` on every Orthanc unit of a
    package host. The reference is resolved once per run on the control node; when it does not resolve, this host
    fails with the cause and is left unchanged.
    """
    if not _usable_data() or not _package_host():
        return
    users = _store_users()
    if users is None:
        return
    state = state if state is not None else host.get_fact(OrthancHostState)
    shared = _shared_probe_url(state)
    if shared:
        verdict.failed(name="Orthanc health check address", control="auth", message=shared)
        return
    # The same sorted order on every host keeps pyinfra 3.10's position-based operation order consistent.
    for unit in sorted(state.get("units", []), key=lambda u: u["unit"]):
        auth.authentication(
            name=f"Orthanc authentication on ({unit['unit']})",
            users=users,
            config_path=unit["config_path"],
            service=unit["unit"],
            users_mode=settings.get(host.data, "orthanc_harden_users_mode"),
            disable_remote_access=settings.get(host.data, "orthanc_harden_disable_remote_access"),
            probe_url=_probe_url(state, unit["unit"]),
            http_port=_http_port(state, unit["config_path"]),
            ssl_certificate=_ssl_certificate(state, unit["config_path"]),
            probe_verify=_probe_verify(),
        )


@deploy("Orthanc firewall")
@host_deploy("firewall")
def firewall_rules(state: dict | None = None):
    """
    Restrict the HTTP and DICOM ports of every Orthanc of a package host (from its configuration) to
    ``orthanc_harden_allowed_cidrs`` with the host's firewall, or remove the tool's rules in removal mode.
    """
    if not _usable_data() or not _package_host():
        return
    data = host.data
    if settings.get(data, "orthanc_harden_firewall_remove"):
        firewall.restrict(name="Orthanc firewall rules removed", ports=[], cidrs=[], present=False)
        return
    state = state if state is not None else host.get_fact(OrthancHostState)
    ports = orthanc_config.served_ports(state)  # the host's combined check derives them the same way
    # The probe names a Docker engine only where one answers: hosts without one ask nothing more.
    docker = settings.get(data, "orthanc_harden_firewall_docker") and bool(state.get("docker"))
    cidrs = settings.get(data, "orthanc_harden_allowed_cidrs")
    allow_empty = settings.get(data, "orthanc_harden_firewall_allow_empty")
    if not ports and not docker:
        return
    if not cidrs and not allow_empty:
        verdict.not_compliant(name="Orthanc firewall", control="firewall",
                             message="orthanc_harden_allowed_cidrs is empty: list the networks that may "
                                     "reach Orthanc, or waive the firewall control")
        return
    firewall.restrict(
        name="Orthanc ports from allowed networks only",
        ports=ports,
        cidrs=cidrs,
        backend=settings.get(data, "orthanc_harden_firewall_backend"),
        enable=settings.get(data, "orthanc_harden_firewall_enable"),
        allow_empty=allow_empty,
        ssh_port=settings.get(data, "orthanc_harden_firewall_ssh_port"),
        confirm_timeout=settings.get(data, "orthanc_harden_firewall_confirm_timeout"),
        docker=docker,
    )


def _container_probe_url(data, attrs: dict) -> str | None:
    """Where host data says the control node checks a container; None: the port it is published on after the
    change (the operation reads it from the running container)."""
    configured = settings.get(data, "orthanc_harden_probe_urls").get(attrs["Name"].lstrip("/"))
    return configured.rstrip("/") if configured else None


@deploy("Orthanc containers")
@host_deploy("docker")
def containers_fixed():
    """
    Every Orthanc container of a container host (``orthanc_harden_docker_url``, scoped by
    ``orthanc_harden_docker_filters``): upgraded from ``orthanc_harden_docker_images`` when below the minimum
    version, authentication on with the users of ``orthanc_harden_users_ref``, in the order of their names.
    """
    data = host.data
    if not _usable_data() or _package_host():
        return
    upgrade_on = settings.get(data, "orthanc_harden_upgrade_enabled")
    users = None
    if settings.get(data, "orthanc_harden_auth_enabled"):
        users = _store_users()
        if users is None:
            return
    try:
        client = engine.shared_for(host)
        found = client.containers.list(all=True, filters=settings.get(data, "orthanc_harden_docker_filters") or {})
    except (engine.EngineError, DockerException) as err:
        verdict.failed(name="Docker engine", control="docker", message=str(err).splitlines()[0])
        return
    images = settings.get(data, "orthanc_harden_docker_images")
    # A container parked by an interrupted recreate belongs to the one it was parked for: alone, it is resumed.
    names = {c.name for c in found}
    targets = {}
    for item in found:
        base = item.name.removesuffix(assess.PARKED_SUFFIX)
        if base == item.name or base not in names:
            targets.setdefault(base, item)
    for name, item in sorted(targets.items()):
        kind = inspection.family(item)
        if kind is None:
            continue
        container.orthanc(
            name=f"Orthanc container ({name})",
            container=name,
            users=users,
            image=images.get(kind),
            floor=settings.get(data, "orthanc_harden_min_version"),
            users_mode=settings.get(data, "orthanc_harden_users_mode"),
            compose=settings.get(data, "orthanc_harden_docker_compose"),
            publish_address=settings.get(data, "orthanc_harden_docker_publish_address"),
            upgrade=upgrade_on,
            probe_url=_container_probe_url(data, {"Name": name}),
            engine=client,
            # One container's failure must not stop the others; `compliant` fails the host at the end.
            _continue_on_error=True,
        )


@deploy("Orthanc hardening")
@host_deploy("harden")
def harden(host_state: dict | None = None):
    """
    Every control the host data switches on, in order: upgrade, authentication, firewall; then fail the host
    when a control found something it cannot fix (no package reaches the floor, no firewall to use), so the exit
    status says it is not compliant.
    One round trip reads the host's Orthanc state for all of them.

    + host_state: the host's ``OrthancHostState`` fact when the caller has read it already (``remediate`` reads
      every host's at once); otherwise it is read here

    **Example:**

    .. code:: python

        from orthanc_harden.deploys import harden
        harden(name="Harden Orthanc")
    """
    if not _usable_data():
        return
    for control, reason in settings.waived_controls(host.data).items():
        outcomes.record(host.name, control, "waived", reason)
    if not _package_host():
        containers_fixed()
        verdict.compliant(name="Orthanc compliant")
        return
    state = host_state if host_state is not None else host.get_fact(OrthancHostState)
    auth_on = settings.get(host.data, "orthanc_harden_auth_enabled")
    # The users first: a store that cannot give them fails the host before anything on it changes.
    if auth_on and _store_users() is None:
        return
    if settings.get(host.data, "orthanc_harden_upgrade_enabled"):
        # With authentication following, Orthanc restarts once, in authentication's health gate.
        upgrade_packages(state=state, restart=not auth_on, compliance_follows=True)
    if auth_on:
        authentication(state=state)
    if settings.get(host.data, "orthanc_harden_firewall_enabled"):
        firewall_rules(state=state)
    verdict.compliant(name="Orthanc compliant")


def _unattended_host_keys(inventory: str, data) -> str | None:
    """Why the scheduled run may not use this inventory, or None (see ``hostkeys``)."""
    if settings.get(data, "orthanc_harden_schedule_remove") or settings.get(data, "orthanc_harden_waivers").get(
            settings.HOST_KEYS_WAIVER):
        return None
    try:
        unverified = hostkeys.unverified_ssh_hosts(inventory)
    except Exception as err:  # an inventory that does not load is the operator's to fix: one line, no traceback
        return f"orthanc_harden_schedule_inventory {inventory} does not load: {str(err).splitlines()[0][:300]}"
    if not unverified:
        return None
    names = ", ".join(unverified[:5]) + (f" and {len(unverified) - 5} more" if len(unverified) > 5 else "")
    return (f"{inventory}: {len(unverified)} SSH host(s) without strict host key checking against a known_hosts "
            f"file ({names}): an unattended run would send the store's passwords to any machine answering there; "
            f"set ssh_strict_host_key_checking: yes and ssh_known_hosts_file, or waive "
            f"{settings.HOST_KEYS_WAIVER!r} in orthanc_harden_waivers with a reason")


@deploy("orthanc-harden schedule")
@host_deploy("schedule")
def schedule_runs():
    """
    Install (or with ``orthanc_harden_schedule_remove`` remove) the scheduled ``remediate`` or ``audit`` run on
    this host, the control node, from the ``orthanc_harden_schedule_*`` settings.
    """
    if not _usable_data():
        return
    data = host.data
    inventory = settings.get(data, "orthanc_harden_schedule_inventory")
    if not inventory:
        verdict.failed(name="orthanc-harden schedule", control="schedule",
                      message="host data: orthanc_harden_schedule_inventory is not set (the inventory to run)")
        return
    refused = _unattended_host_keys(inventory, data)
    if refused:
        verdict.failed(name="orthanc-harden schedule", control="schedule", message=refused)
        return
    schedule.timer(
        name=f"Scheduled orthanc-harden {settings.get(data, 'orthanc_harden_schedule_mode')}",
        inventory=inventory,
        mode=settings.get(data, "orthanc_harden_schedule_mode"),
        on_calendar=settings.get(data, "orthanc_harden_schedule_on_calendar"),
        cron_schedule=settings.get(data, "orthanc_harden_schedule_cron"),
        report_dir=settings.get(data, "orthanc_harden_schedule_report_dir"),
        keep=settings.get(data, "orthanc_harden_schedule_keep"),
        environment_file=settings.get(data, "orthanc_harden_schedule_environment_file"),
        present=not settings.get(data, "orthanc_harden_schedule_remove"),
        shard=settings.get(data, "orthanc_harden_schedule_shard"),
    )
