"""Authentication on every package-installed Orthanc: `pyinfra -y INVENTORY deploys/auth.py`.

Users come from the host's `orthanc_harden_users_ref` (see README, Settings), resolved on the control node once
per run. A reference that does not resolve stops the run while pyinfra is still preparing, before any host is
changed. Every Orthanc unit the `OrthancHostState` fact finds gets `operations.auth.authentication`.
"""

from pyinfra import host
from pyinfra.api.exceptions import PyinfraError

from orthanc_harden import settings
from orthanc_harden.facts.orthanc import OrthancHostState
from orthanc_harden.operations import auth
from orthanc_harden.secrets import RUN_CACHE, SecretError

_problems = settings.validate(host.data)
if _problems:
    raise PyinfraError(f"{host.name}: host data: {_problems[0]}")
_ref = settings.get(host.data, "orthanc_harden_users_ref")
if settings.get(host.data, "orthanc_harden_auth_enabled") and not settings.get(host.data, "orthanc_harden_docker_url"):
    if not _ref:
        raise PyinfraError(f"{host.name}: orthanc_harden_users_ref is not set: no users to enable authentication with")
    try:
        _users = RUN_CACHE.users(_ref)
    except SecretError as err:
        raise PyinfraError(f"{host.name}: {err}") from None
    _state = host.get_fact(OrthancHostState)
    for _unit in _state.get("units", []):
        _port = 8042
        for _file in _state["configs"].get(_unit["config_path"], {}).get("files", []):
            _port = _file.get("values", {}).get("HttpPort", _port)
        auth.authentication(
            name=f"Orthanc authentication on ({_unit['unit']})",
            users=_users,
            config_path=_unit["config_path"],
            service=_unit["unit"],
            users_mode=settings.get(host.data, "orthanc_harden_users_mode"),
            disable_remote_access=settings.get(host.data, "orthanc_harden_disable_remote_access"),
            probe_url=settings.get(host.data, "orthanc_harden_probe_url"),
            http_port=_port,
        )
