"""Fix an Orthanc container through the Docker Engine API: a fixed image, authentication, nothing lost."""

from __future__ import annotations

from docker.errors import DockerException
from pyinfra import host
from pyinfra.api import FunctionCommand, OperationValueError, operation

from .. import outcomes, planned, settings
from ..docker import engine as engines, replace
from ..docker.assess import assess
from ..docker.plan import describe
from ..orthanc import FLOOR
from .auth import check_users
from ..checks.health import GATE_TIMEOUT
from .isolation import host_step
from .verdict import fail_host, failing


def _plain(users: dict | None) -> dict[str, str] | None:
    return None if users is None else {name: password.unmask() for name, password in users.items()}


def _unnamed(message: str, container: str) -> str:
    """Reports put the control ("container NAME") in front of not-compliant messages already."""
    return message.removeprefix(f"container {container}: ")


def _apply(state, host, client, container: str, users, users_mode, floor, image, compose, upgrade, publish_address,
           probe_url, gate_timeout):
    control = f"container {container}"
    try:
        resumed = replace.resume_parked(client, container)
        plan = assess(client, container, _plain(users), users_mode, floor, image, compose, upgrade,
                      publish_address)
        if plan.error:
            return fail_host(host, control, "; ".join(filter(None, [resumed, plan.error])))
        if not plan.changes:  # changed between plan and execution, or only the resume was needed
            message = resumed or f"container {container}: nothing to change"
            outcomes.record(host.name, control, "changed" if resumed else "ok", message)
            if resumed:
                host.log_styled(f"container {container}: {resumed}", fg="yellow")
            return True
        first = sorted(users)[0] if users else None
        gate = {"user": first, "password": users[first] if users else None, "timeout": gate_timeout}
        if plan.recreate:
            detail = replace.recreate(client, plan, probe_url, gate, floor)
        else:
            detail = replace.in_place(client, plan, probe_url, gate)
    except (replace.ReplaceError, engines.EngineError) as err:
        return fail_host(host, control, f"container {container}: {err}")
    except DockerException as err:  # before the first change (inspecting the old image...): one line, no traceback
        return fail_host(host, control, f"container {container}: engine error: {str(err).splitlines()[0][:200]}")
    message = f"{'; '.join(([resumed] if resumed else []) + plan.summary)}: {detail}"
    # A refused upgrade next to in-place authentication stays open: the host is still not compliant.
    outcomes.record(host.name, control, "not-compliant" if plan.refusal else "changed",
                    f"{_unnamed(plan.refusal, container)}; done meanwhile: {message}" if plan.refusal else message)
    host.log_styled(f"container {container}: {message}", fg="green")
    return True


@operation()
@host_step(lambda container, **_: f"container {container}")
def orthanc(
    container: str,
    users: dict | None,
    image: str | None = None,
    floor: str = FLOOR,
    users_mode: str = "exact",
    compose: str = "refuse",
    upgrade: bool = True,
    publish_address: str | None = None,
    probe_url: str | None = None,
    gate_timeout: float = GATE_TIMEOUT,
    engine=None,
):
    """
    Bring one Orthanc container to a fixed version with authentication on, through a Docker engine.

    + container: the container's name
    + users: ``{name: HiddenValue(password)}``; ``None`` leaves authentication alone
    + image: the image to recreate from when Orthanc is below ``floor`` (a tag of ``orthancteam/orthanc``, a
      private mirror...); pulled only when missing locally or when the registry holds another digest
    + users_mode: ``exact`` (the store is the truth) or ``merge``
    + compose: ``refuse`` (default) leaves compose-managed containers to their compose file, with the change to
      make; ``recreate`` recreates them keeping every compose label
    + upgrade: act on the version; ``False`` only switches authentication on
    + publish_address: publish Orthanc's HTTP and DICOM ports on this address only (``127.0.0.1``, a LAN
      address), through a recreate: Docker's published ports bypass the host firewall's INPUT rules, so a
      ufw or firewalld rule alone does not restrict them
    + probe_url: where the control node checks health; without it Orthanc's ``HttpPort`` as the container
      publishes it after the change
    + gate_timeout: seconds the health gate waits for Orthanc to answer after the change
    + engine: the Docker engine holding the container, a ``docker.DockerClient``
      (``orthanc_harden.docker.engine.connect(url, tls, ssh)`` opens one and fails with one line when the engine
      does not answer); default: the engine of an ``@dockerengine`` host, which its connector opened

    The real version comes from ``Orthanc --version`` inside the container, never from the tag. Files-configured
    images (jodogne style) get ``AuthenticationEnabled: true`` and ``RegisteredUsers`` in their JSON files with the
    comment-keeping editor, then one restart: no recreate is needed for that. Env-configured images
    (osimis/orthancteam) get ``ORTHANC__AUTHENTICATION_ENABLED=true`` and their users in
    ``/etc/orthanc/orthanc-harden-users.json`` (owner-only, readable by the container's user), never in the
    environment, so ``docker inspect`` shows no password.

    A recreate keeps everything the user set (Watchtower style: the old image's defaults are subtracted) and
    re-attaches anonymous volumes, so the DICOM store stays. The old container is stopped and renamed, and kept
    until the new one passes the health gate; otherwise it is put back and started. Containers whose DICOM store
    is in the writable layer are never recreated (authentication is switched on in place when the image allows).

    **Example:**

    .. code:: python

        from pyinfra import host

        from orthanc_harden.docker import engine
        from orthanc_harden.operations import container
        from orthanc_harden.secrets import resolve_users

        # This SSH host's engine, reached over SSH (on an @dockerengine host, leave engine out)
        pacs_engine = engine.connect(f"ssh://root@{host.name}", ssh={
            "key": "/etc/orthanc-harden/id_ed25519", "known_hosts": "/etc/orthanc-harden/known_hosts"})
        container.orthanc(
            name="PACS container fixed",
            container="pacs",
            users=resolve_users("vault:secret/orthanc/prod"),
            image="registry.example.org/orthancteam/orthanc:24.1.2",
            engine=pacs_engine,
        )
    """
    if users is not None:
        check_users(users, users_mode)
    if compose not in ("refuse", "recreate"):
        raise OperationValueError(f"compose must be 'refuse' or 'recreate', not {compose!r}")
    problem = settings.publish_address_problem(publish_address) if publish_address is not None else None
    if problem:
        raise OperationValueError(f"publish_address {problem}")
    client = engine if engine is not None else engines.of_connector(host)
    if client is None:
        raise OperationValueError("no Docker engine: pass engine= (a docker.DockerClient, e.g. from "
                                  "orthanc_harden.docker.engine.connect) or run it on an @dockerengine host")
    control = f"container {container}"
    plan = assess(client, container, _plain(users), users_mode, floor, image, compose, upgrade, publish_address)
    if plan.error:
        outcomes.record(host.name, control, "failed", plan.error)
        yield failing(control, plan.error)
        return
    if not plan.changes:
        status, message = ("not-compliant", _unnamed(plan.refusal, container)) if plan.refusal else \
            ("ok", f"container {container}: Orthanc {plan.version}, nothing to change")
        outcomes.record(host.name, control, status, message)
        host.noop(message)
        return
    try:
        described, diffs = describe(client, plan)
    except DockerException as err:  # what a dry run shows is not worth failing the change for
        described, diffs = {"plan": {"from": "?", "to": f"not described: {str(err).splitlines()[0][:120]}"}}, {}
    planned.record(host.name, "containers", container, {"container": container, "settings": described})
    for path, diff in diffs.items():
        planned.show_diff(host, path, diff)
    yield FunctionCommand(_apply, (client, container, users, users_mode, floor, image, compose, upgrade,
                                   publish_address, probe_url, gate_timeout), {})
