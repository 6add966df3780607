"""Turn on Orthanc's HTTP authentication (CVE-2025-0896) with users from a secret store."""

from __future__ import annotations

import functools
import inspect
import json

from pyinfra import host
from pyinfra.api import FunctionCommand, HiddenValue, OperationValueError, QuoteString, StringCommand, operation

from .. import outcomes, planned, prechecked, restarts, settings
from ..facts.orthanc import OrthancAuthPlan
from ..checks.health import GATE_TIMEOUT, gate_target, restart_after_upgrade, restart_and_gate
from ..masking import SecretStdin
from ..orthanc import CONFIG_DIR, HTTP_PORT
from ..remote import program
from .isolation import host_step
from .verdict import failing


def check_users(users: dict, users_mode: str) -> None:
    """Refuse, before any fact or change, what would leave Orthanc without a usable user or leak a password."""
    if users_mode not in ("exact", "merge"):
        raise OperationValueError(f"users_mode must be 'exact' or 'merge', not {users_mode!r}")
    if not isinstance(users, dict) or not users:
        raise OperationValueError("no users: refusing to enable authentication without a user from the store "
                                  "(Orthanc would create orthanc/orthanc)")
    for name, password in users.items():
        if not isinstance(password, HiddenValue):
            raise OperationValueError(f"the password of user {name!r} must be a pyinfra HiddenValue")
        if not settings.user_name(name) or not password.unmask():
            raise OperationValueError(f"user {name!r}: names must be non-empty without ':' and passwords non-empty")
        for what, value in (("name", name), ("password", password.unmask())):
            problem = _unwritable(value)
            if problem:
                # The password itself is never named, only what is wrong with it.
                raise OperationValueError(f"user {name.encode('utf-8', 'backslashreplace').decode()!r}: the {what} "
                                          f"{problem}; nothing was changed")


def _unwritable(value) -> str | None:
    """Why Orthanc's UTF-8 JSON configuration (and HTTP basic authentication) cannot hold `value`, or None."""
    if not isinstance(value, str):
        return "is not text"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "holds a control character"
    return None


def _request(users: dict, config_path: str, users_mode: str, disable_remote_access: bool, service: str,
             keep_backups: bool) -> str:
    check_users(users, users_mode)
    return json.dumps({"config_path": config_path, "users_mode": users_mode, "service": service,
                       "disable_remote_access": disable_remote_access, "keep_backups": keep_backups,
                       "users": {name: password.unmask() for name, password in users.items()}})


@operation()
@host_step("auth")
def authentication(
    users: dict,
    config_path: str = CONFIG_DIR,
    service: str = "orthanc.service",
    users_mode: str = "exact",
    disable_remote_access: bool = False,
    probe_url: str | None = None,
    http_port: int = HTTP_PORT,
    restart: bool = True,
    gate_timeout: float = GATE_TIMEOUT,
    ssl_certificate: str | None = None,
    probe_verify: bool | str = True,
):
    """
    Enable Orthanc's HTTP authentication with the given users, editing the configuration in place.

    + users: ``{name: HiddenValue(password)}``, e.g. from ``orthanc_harden.secrets``; plain strings are refused
    + config_path: the file or directory Orthanc is started with (see the ``OrthancHostState`` fact)
    + service: the systemd unit to restart once if something changed
    + users_mode: ``exact`` (the store is the truth: other and default users are removed) or ``merge``
    + disable_remote_access: also set ``RemoteAccessAllowed: false``
    + probe_url: where the control node checks health (anonymous 401, a user 200); without it the check runs
      on the host against ``http://127.0.0.1:<http_port>``
    + restart: restart and health-gate after a change (switch off only when something else restarts Orthanc);
      this also restarts, once, a unit whose restart an upgrade earlier in the run left to it (``restart=False``)
    + ssl_certificate: an Orthanc with ``SslEnabled``: its certificate file on the host; the on-host check then
      speaks https to 127.0.0.1 and trusts that certificate alone
    + probe_verify: TLS verification of an https ``probe_url``: ``True`` (the system's CAs), a CA bundle path on
      the control node, or ``False``

    ``RegisteredUsers`` goes in the file that already defines it (Debian: ``credentials.json``) and
    ``AuthenticationEnabled: true`` is set explicitly whatever the version. The plan and the edit run on the host
    (passwords travel on standard input, never on a command line, and current passwords never leave the host);
    comments, key order and untouched lines are kept. Each changed file is written atomically with its owner and
    mode (the users file loses any access by others), after an owner-only backup. When the health gate fails
    the backups are restored, Orthanc is restarted with them and the operation fails with the reason.

    **Example:**

    .. code:: python

        from orthanc_harden.operations import auth
        from orthanc_harden.secrets import resolve_users

        auth.authentication(
            name="Orthanc: authentication on",
            users=resolve_users("vault:secret/orthanc/prod"),
            probe_url="http://pacs-01.example.org:8042",
        )
    """
    request = _request(users, config_path, users_mode, disable_remote_access, service, keep_backups=restart)
    plan = prechecked.plan_for(host, "auth", request)  # read with the host's state by remediate, if at all
    if plan is None:
        plan = host.get_fact(OrthancAuthPlan, _stdin=SecretStdin(request))
    first = sorted(users)[0]
    gate = {"user": first, "password": users[first], "timeout": gate_timeout,
            **gate_target(probe_url, http_port, ssl_certificate, probe_verify)}
    # An upgrade earlier in this run may have left its restart to this operation (restarts.defer).
    upgraded = restart and restarts.pending(host.name, service)
    if "error" in plan:
        # A failing command, never an exception: raised here it would stop every other host's later steps.
        outcomes.record(host.name, "auth", "failed", plan["error"])
        if upgraded:  # the upgraded binary must not wait for a configuration this run cannot fix
            yield FunctionCommand(restart_after_upgrade, (service, gate), {})
        # Fails this host alone, when it runs: an exception here would stop the operation on every host.
        yield failing("auth", plan["error"])
        return
    if not plan["changed"]:
        outcomes.record(host.name, "auth", "ok", "authentication on with the store's users")
        if upgraded:
            yield FunctionCommand(restart_and_gate, (service, [], gate), {})
            return
        host.noop(f"authentication already on with the store's users in {config_path}")
        return
    for path in plan["files"]:
        planned.show_diff(host, path, plan.get("diffs", {}).get(path, ""))
    yield StringCommand("python3", "-c", QuoteString(program("auth")), "apply", _stdin=SecretStdin(request))
    # Commands run as they are yielded: reaching this line means the configuration was written.
    outcomes.record(host.name, "auth", "changed", f"authentication on in {config_path} (restart pending)"
                    if restart else f"authentication on in {config_path}; Orthanc not restarted (restart=False)")
    if restart:
        yield FunctionCommand(restart_and_gate, (service, plan["files"], gate), {"meta": plan.get("meta", {})})


def _takes_deferred_restarts(op):
    """Note, when the operation is called (planned), that it will restart its unit: an upgrade executed before it
    on the host may then leave that restart to it (``restarts``). Calls and ``_inner`` are pyinfra's own."""
    signature = inspect.signature(op._inner)
    parameters = signature.parameters

    @functools.wraps(op)
    def call(*args, **kwargs):
        order = getattr(host, "op_hash_order", [])
        before = len(order)
        meta = op(*args, **kwargs)
        own = {key: value for key, value in kwargs.items() if key in parameters}
        bound = signature.bind_partial(*args, **own).arguments
        if len(order) > before and bound.get("restart", parameters["restart"].default):
            restarts.will_restart(host.name, bound.get("service", parameters["service"].default), order[-1])
        return meta

    call._inner = op._inner
    return call


authentication = _takes_deferred_restarts(authentication)
