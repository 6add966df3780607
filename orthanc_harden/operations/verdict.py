"""Operations that turn a host's problems and compliance into pyinfra's own verdict: success or failure."""

from __future__ import annotations


from pyinfra import host, logger
from pyinfra.api import FunctionCommand, operation

from .. import outcomes, planned
from .isolation import host_step



def fail_host(host, control: str, message: str, status: str = "failed") -> bool:
    """Record `message` for reports and print it as ``[host] message``; False fails the running command."""
    outcomes.record(host.name, control, status, message)
    host.log_styled(message, fg="red", log_func=logger.error)
    return False


def _fail(state, host, control: str, message: str, status: str) -> bool:
    return fail_host(host, control, message, status)


def failing(control: str, message: str, status: str = "failed") -> FunctionCommand:
    """A command that fails the host with `message` when it runs (``args``: control, message, status). The
    outcome is recorded already when the operation plans it, so that a dry run reports the failure the real run
    will have."""
    outcomes.record(host.name, control, status, message)
    return FunctionCommand(_fail, (control, message, status), {})


@operation(is_idempotent=False)
def failed(control: str, message: str):
    """
    Fail this host with a one-line message before anything changes on it; other hosts go on.

    + control: what could not run (``settings``, ``auth``, ``upgrade``, ...)
    + message: the cause, shown as ``[host] message`` and kept for reports

    **Example:**

    .. code:: python

        verdict.failed(name="Secret store", control="auth", message="vault:kv/pacs#users: permission denied")
    """
    yield failing(control, message)


@operation()
@host_step("compliance")
def compliant(controls: tuple[str, ...] = ("upgrade", "auth", "firewall")):
    """
    Fail the host, at the end of a run, when a control (or a container) found something it could not fix (for
    example no package reaching the version floor), so that the run's exit status says the host is not compliant.

    **Example:**

    .. code:: python

        verdict.compliant(name="Orthanc compliant")
    """
    found = outcomes.for_host(host.name)
    open_items = [f"{control}: {entry['message']}" for control, entry in found.items()
                  if (control in controls or control.startswith("container "))
                  and entry["status"] == "not-compliant"]
    # Container operations go on past a failed container (_continue_on_error); the host still fails here.
    failed = [entry["message"] for control, entry in found.items()
              if control.startswith("container ") and entry["status"] == "failed"]
    if failed:
        message = "failed: " + "; ".join(failed + open_items)
    elif open_items:
        message = "not compliant: " + "; ".join(open_items)
    else:
        return
    if planned.dry():  # a verdict, not a change: a dry run's plan lists only what would change
        outcomes.record(host.name, "compliance", "not-compliant", message)
        return
    yield failing("compliance", message, status="not-compliant")


@operation()
def not_compliant(control: str, message: str):
    """
    Record that a control cannot be applied as configured (no change, no failure here); ``compliant`` then fails
    the host at the end of the run.

    **Example:**

    .. code:: python

        verdict.not_compliant(name="Firewall", control="firewall", message="no allowed networks configured")
    """
    outcomes.record(host.name, control, "not-compliant", message)
    host.noop(message)
    return
    yield  # a generator, as pyinfra operations are
