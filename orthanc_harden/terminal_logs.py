"""What the command line lets the libraries print on standard error: an expected failure without a traceback.

A host that stops answering, or an operation that fails, is one line in the report already (its row's reason;
the traceback of an unexpected error is in the JSON report). The libraries underneath report it too: paramiko's
transport thread logs the exception and then its traceback, line by line ("Error reading SSH protocol banner");
pyinfra logs a failed callback's traceback as a warning; gevent's hub prints the traceback of every greenlet that
ends with an exception. With nothing configured, Python's last-resort logging handler and the hub's exception
stream put all of that on the terminal, among the tables.

Levels: QUIET (default) prints none of the libraries' messages; DETAILS (`-v`) prints each as one line (the
exception line of a traceback); DEBUG (`--debug`) prints them whole, tracebacks included. Never the libraries'
debug logs: pyinfra's name the SSH password of an inventory that has one. The run's secrets are masked at every
level.
"""

from __future__ import annotations

import logging
import re
import sys

QUIET, DETAILS, DEBUG = 0, 1, 2
LIBRARIES = ("paramiko", "pyinfra", "gevent", "docker", "urllib3")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TRACEBACK_START = "Traceback (most recent call last)"


def _masked(text: str) -> str:
    from .operations.isolation import _scrubbed

    return _scrubbed(text)


def _one_line(message: str) -> str | None:
    """A message as one line: the exception of a traceback, else its first line; None for paramiko's traceback
    lines, which it logs one record each."""
    lines = [line for line in ANSI.sub("", message).splitlines() if line.strip()]
    if len(lines) > 1 and any(line.startswith(_TRACEBACK_START) for line in lines):
        return lines[-1].strip()  # a whole traceback: its exception
    if not lines or lines[0].startswith((_TRACEBACK_START, " ", "During handling of the above")):
        return None
    return lines[0].strip()


class _Terminal(logging.Handler):
    def __init__(self, level: int, stream=None):
        super().__init__(logging.WARNING)
        self.verbosity = level
        self.stream = stream or sys.stderr

    def emit(self, record: logging.LogRecord) -> None:
        try:
            library = record.name.split(".")[0] in LIBRARIES
            if library and self.verbosity == QUIET:
                return
            if self.verbosity >= DEBUG:
                text = ANSI.sub("", self.format(record))
            else:
                text = _one_line(record.getMessage())
                if text is None:
                    return
            prefix = f"{record.name.split('.')[0]}: " if library else ""
            self.stream.write(_masked(f"{prefix}{text}") + "\n")
            self.stream.flush()
        except Exception:  # noqa: BLE001 - a log line must never break the run
            self.handleError(record)


def _hub_printer(level: int, original):
    def print_exception(context, kind, value, tb):
        if level >= DEBUG:
            return original(context, kind, value, tb)
        if level == DETAILS:
            logging.getLogger("gevent.hub").warning(f"a greenlet ended with {getattr(kind, '__name__', kind)}: "
                                                    f"{' '.join(str(value).split())}"[:500])
        return None

    return print_exception


def setup(level: int = QUIET, stream=None) -> None:
    """Route every log record of this process, and gevent's greenlet tracebacks, through the levels above."""
    import gevent

    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Terminal)]:
        root.removeHandler(handler)
    root.addHandler(_Terminal(level, stream))
    # Libraries name their loggers (paramiko.transport...): below WARNING nothing reaches the handler.
    root.setLevel(logging.WARNING)
    for name in ("paramiko", "pyinfra"):
        logging.getLogger(name).setLevel(logging.WARNING)
    hub = gevent.get_hub()
    hub.print_exception = _hub_printer(level, type(hub).print_exception.__get__(hub))
