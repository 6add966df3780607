"""Run a command on the host from inside an operation's Python callback, as the operation itself would.

pyinfra hands connector arguments (``_sudo``, ``_su_user``, ``_env``, ...) to the commands an operation yields,
not to ``host.run_shell_command`` calls made in a ``FunctionCommand``: without this, a fleet reached as a sudo
user edits files through the yielded commands and then restarts nothing.
"""

from __future__ import annotations

from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS

# Per-command settings: the caller decides these for each command, never the operation.
_PER_COMMAND = {"_stdin", "_success_exit_codes", "_retries", "_retry_delay", "_retry_until", "_timeout"}
PRIVILEGE_KEYS = tuple(k for k in CONNECTOR_ARGUMENT_KEYS if k not in _PER_COMMAND)


def connector_args(host, **overrides) -> dict:
    """The running operation's connector arguments (privilege, environment, shell), then `overrides`."""
    current = host.current_op_global_arguments or {}
    found = {key: current[key] for key in PRIVILEGE_KEYS if key in current}
    found.update(overrides)
    return found


def run(host, command, **overrides):
    """``host.run_shell_command`` with the running operation's connector arguments: (ok, output)."""
    return host.run_shell_command(command, **connector_args(host, **overrides))
