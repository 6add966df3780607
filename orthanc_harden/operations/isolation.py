"""One host's error fails that host alone, in one line; every other host runs every later step.

pyinfra lets an exception escape an operation's generator body: at prepare time it aborts the whole plan, and at
execution it ends ``run_ops`` for every host (the greenlet's error is re-raised), so one malformed host would
leave the rest of the fleet without firewall or final compliance check. An exception raised in a
``FunctionCommand`` callback is printed with its traceback. The operations and deploys of this package are wrapped
here: any exception becomes a failing command of that host (``[host] control: cause``); the traceback goes to
pyinfra's ``-v`` (``--debug`` otherwise) and to the JSON reports, never to the terminal by default.
"""

from __future__ import annotations

import functools
import inspect
import traceback
from typing import Callable

from paramiko import SSHException
from pyinfra import logger
from pyinfra.api import FunctionCommand

from .. import outcomes


def _scrubbed(text: str) -> str:
    from ..secrets import resolved_values

    for secret in resolved_values():
        text = text.replace(secret, "*MASKED*")
    return text


def one_line(err: BaseException) -> str:
    """The cause as one line: connection problems named as such, others by type when the message is unclear."""
    text = _scrubbed(" ".join(str(err).split()))[:300]
    if isinstance(err, (SSHException, EOFError, ConnectionError, TimeoutError)):
        return f"connection lost or timed out ({type(err).__name__}{': ' + text if text else ''})"
    if type(err).__name__ in ("OperationError", "OperationValueError") and text:
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def details(err: BaseException) -> str:
    """The traceback, without any password of this run's secret store."""
    return _scrubbed("".join(traceback.format_exception(type(err), err, err.__traceback__)))


def _log_details(host, text: str) -> None:
    from pyinfra.context import ctx_state

    state = ctx_state.get() if ctx_state.isset() else None
    log = logger.info if state is not None and state.print_noop_info else logger.debug  # -v
    log(f"{getattr(host, 'print_prefix', f'[{host.name}] ')}{text}")


def _failed_by_pyinfra(host) -> bool:
    """pyinfra failed the host already (a fact command that failed or lost its connection returns no data)."""
    from pyinfra.context import ctx_state

    state = ctx_state.get() if ctx_state.isset() else None
    return bool(state is not None and host in getattr(state, "failed_hosts", ()))


def record_failure(host, control: str, err: BaseException, status: str = "failed") -> str:
    """Keep the failure (message and traceback) for reports; the one-line message."""
    message = f"{control}: {one_line(err)}"
    if _failed_by_pyinfra(host):
        message = f"{control}: the host stopped answering, or a command reading its state failed"
    text = details(err)
    outcomes.record(host.name, control, status, message, traceback=text)
    _log_details(host, text)
    return message


class IsolatedCommand(FunctionCommand):
    """A callback whose exception fails this host with one line (pyinfra would print its traceback). The same
    ``function``, ``args`` and connector arguments as the command it stands for."""

    def __init__(self, command: FunctionCommand, step: str):
        super().__init__(command.function, command.args, command.kwargs, **command.connector_arguments)
        self.step = step

    def execute(self, state, host, connector_arguments):
        from .verdict import fail_host

        try:
            return super().execute(state, host, connector_arguments)
        except Exception as err:  # noqa: BLE001 - any error of this host's step fails this host alone
            return fail_host(host, self.step, record_failure(host, self.step, err))


def host_step(control: str | Callable[..., str]):
    """Decorate an operation's generator (below ``@operation()``): an exception in its body or in one of its
    callbacks fails this host with one line instead of stopping the run. `control` names the step in reports;
    a callable gets the operation's arguments (``lambda container, **_: f"container {container}"``)."""

    def decorator(func):
        signature = inspect.signature(func)

        def name_of(args, kwargs) -> str:
            if not callable(control):
                return control
            try:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                return control(**bound.arguments)
            except (TypeError, KeyError):
                return func.__name__

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            from pyinfra import host

            from .verdict import failing

            step = name_of(args, kwargs)
            try:
                for command in func(*args, **kwargs):
                    if isinstance(command, FunctionCommand) and not isinstance(command, IsolatedCommand):
                        command = IsolatedCommand(command, step)
                    yield command
            except Exception as err:  # noqa: BLE001 - see the module docstring
                message = record_failure(host, step, err)
                yield failing(step, message)

        return wrapper

    return decorator


def host_deploy(control: str):
    """Decorate a deploy function (below ``@deploy(...)``): an exception while it plans this host (a fact that
    cannot be read...) fails this host with one line instead of aborting every host's plan."""

    def decorator(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            from pyinfra import host

            from .verdict import failed

            try:
                return func(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - see the module docstring
                message = record_failure(host, control, err)
                failed(name=f"{control} could not be planned", control=control, message=message)
                return None

        return wrapper

    return decorator
