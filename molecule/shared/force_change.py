"""A pyinfra deploy that is not idempotent on purpose: converge adds it when ORTHANC_HARDEN_MOLECULE_FORCE_CHANGE=1.

Its one operation always yields a command, so pyinfra always counts a change, and Molecule's idempotence step must
fail. A function command runs on the control node, so it works for SSH hosts and @dockerengine hosts alike.
"""

from pyinfra.api import FunctionCommand, operation


def _nothing() -> None:
    return None


@operation()
def always_changes():
    yield FunctionCommand(_nothing, (), {})


always_changes(name="molecule: forced change (breaks idempotence on purpose)")
