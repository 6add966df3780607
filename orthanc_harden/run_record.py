"""What one pyinfra run keeps between its operations, one record per pyinfra ``State``.

Operations of one run talk to each other through it: each control's outcome per host (``outcomes``), the restart
an upgrade leaves to the authentication change (``restarts``), what a dry run would change (``planned``), the
secret store's users resolved once (``secrets.RUN_CACHE``) and the Docker engines opened once (``docker.engine``).
Keying it by the ``State`` pyinfra sets while it plans and executes means that a deploy importing these operations
into its own pyinfra run starts with an empty record, and that two runs in one process (a test suite, a scheduled
run followed by another) never see each other's. The record goes when its ``State`` does.

Code that runs outside any pyinfra run (unit specs calling an operation's body, a library call) shares one
record of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary


@dataclass(eq=False)
class RunRecord:
    outcomes: dict[str, dict[str, dict]] = field(default_factory=dict)
    # unit -> hash of the operation that will restart it (auth.authentication), per host: see ``restarts``
    restart_takers: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    pending_restarts: dict[str, set[str]] = field(default_factory=dict)
    plans: dict[str, dict[str, dict[str, dict]]] = field(default_factory=dict)
    dry: bool = False
    secrets: Any = None  # secrets.SecretCache, made on first use (secrets imports this module)
    engines: dict[tuple[str, str], Any] = field(default_factory=dict)
    # host -> digest of a request -> the plan read ahead for it with the host's state: see ``prechecked``
    prechecked: dict[str, dict[str, dict]] = field(default_factory=dict)


_BY_STATE: WeakKeyDictionary = WeakKeyDictionary()
_OUTSIDE = RunRecord()


def of(state) -> RunRecord:
    """The record of one pyinfra ``State`` (None: the record of code running outside any run)."""
    if state is None:
        return _OUTSIDE
    record = _BY_STATE.get(state)
    if record is None:
        record = _BY_STATE[state] = RunRecord()
    return record


def current() -> RunRecord:
    """The record of the run pyinfra is planning or executing now."""
    from pyinfra.context import ctx_state

    return of(ctx_state.get())


def live() -> list[RunRecord]:
    """Every record still held: each run's and the one outside runs."""
    return [_OUTSIDE, *list(_BY_STATE.values())]
