"""Quiet failures (#19): what paramiko, pyinfra and gevent report about an expected failure reaches the terminal
not at all by default, as one line with -v, whole with --debug; the run's secrets masked at every level."""

from __future__ import annotations

import io
import json
import logging

import gevent
import pytest

from orthanc_harden import terminal_logs
from orthanc_harden.secrets import RUN_CACHE

CANARY = "Canary-terminal-8c1d"


def _paramiko_banner_error() -> None:
    """What paramiko's transport thread logs when a host stops answering: the exception, then its traceback one
    line per record (paramiko.util.tb_strings)."""
    log = logging.getLogger("paramiko.transport")
    log.error("Exception (client): Error reading SSH protocol banner")
    for line in ["Traceback (most recent call last):", '  File "paramiko/transport.py", line 2363, in _check_banner',
                 "EOFError", "", "During handling of the above exception, another exception occurred:",
                 "paramiko.ssh_exception.SSHException: Error reading SSH protocol banner"]:
        log.error(line)


def _pyinfra_callback_error() -> None:
    try:
        raise RuntimeError(f"callback failed with password {CANARY}")
    except RuntimeError:
        import traceback

        logging.getLogger("pyinfra").warning(traceback.format_exc())


def _greenlet_error() -> None:
    def step():
        raise OSError("host gone")

    gevent.joinall([gevent.spawn(step)])


@pytest.fixture
def terminal(tmp_path):
    """Set up the levels on a stream of our own; the process's logging and hub are restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hub = gevent.get_hub()
    stream = io.StringIO()
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"radiology": CANARY}))
    users.chmod(0o600)
    ref = f"file:{users}"
    RUN_CACHE.users(ref)  # resolved as a run resolves its store's passwords: masked from then on

    def configure(verbosity):
        stream.seek(0)
        stream.truncate()
        terminal_logs.setup(verbosity, stream=stream)
        _paramiko_banner_error()
        _pyinfra_callback_error()
        _greenlet_error()
        return stream.getvalue()

    yield configure
    RUN_CACHE._resolved.pop(ref, None)
    root.handlers[:] = handlers
    root.setLevel(level)
    hub.__dict__.pop("print_exception", None)


def test_quiet_by_default(terminal, capsys):
    assert terminal(terminal_logs.QUIET) == ""
    assert "Traceback" not in capsys.readouterr().err, "nothing through the hub's own stream either"


def test_verbose_gives_one_line_each(terminal, capsys):
    text = terminal(terminal_logs.DETAILS)
    assert text.splitlines() == [
        "paramiko: Exception (client): Error reading SSH protocol banner",
        "paramiko: EOFError",
        "paramiko: paramiko.ssh_exception.SSHException: Error reading SSH protocol banner",
        "pyinfra: RuntimeError: callback failed with password *MASKED*",
        "gevent: a greenlet ended with OSError: host gone",
    ]
    assert "Traceback" not in text + capsys.readouterr().err


def test_debug_shows_the_tracebacks_without_secrets(terminal, capsys):
    text = terminal(terminal_logs.DEBUG) + capsys.readouterr().err
    assert "Traceback (most recent call last):" in text and "_check_banner" in text
    assert "OSError: host gone" in text and "failed with OSError" in text
    assert CANARY not in text and "*MASKED*" in text
