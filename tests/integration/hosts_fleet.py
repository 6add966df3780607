"""Host variants for fleet tests, set up as root over SSH on real lab hosts: a malformed host among healthy ones,
drift on a healthy host, and what a test reads back (restarts, DICOM instances, the tool's firewall rules)."""

from __future__ import annotations

import time

import requests

from tests.integration.conftest import run_on, ssh_to

CONFIG = "/etc/orthanc/orthanc.json"
GOOD_COPY = "/root/orthanc.json.fleet-test-good"


def on(lab: dict, entry: dict, command: str) -> tuple[int, str]:
    client = ssh_to(lab, entry)
    try:
        return run_on(client, command)
    finally:
        client.close()


def break_config(lab: dict, entry: dict) -> str:
    """Make the host's main configuration unparsable (a copy is kept for `repair_config`); its sha256 now."""
    code, out = on(lab, entry, f"cp -p {CONFIG} {GOOD_COPY} && echo '{{ broken' >> {CONFIG} && sha256sum {CONFIG}")
    assert code == 0, out
    return out.split()[0]


def repair_config(lab: dict, entry: dict) -> None:
    on(lab, entry, f"[ -e {GOOD_COPY} ] && cp -p {GOOD_COPY} {CONFIG} && rm -f {GOOD_COPY}")


def config_sum(lab: dict, entry: dict) -> str:
    return on(lab, entry, f"sha256sum {CONFIG}")[1].split()[0]


def orthanc_starts(lab: dict, entry: dict) -> int:
    """How many times systemd has started Orthanc on the host."""
    return int(on(lab, entry, "journalctl --no-pager -o cat -u orthanc | grep -c '^Started orthanc' || true")[1])


def tool_rules(lab: dict, entry: dict) -> list[str]:
    """The host's ufw rules carrying the tool's tag."""
    return [line for line in on(lab, entry, "ufw status")[1].splitlines() if "# orthanc-harden" in line
            and "ssh" not in line]


def drop_one_tool_rule(lab: dict, entry: dict) -> None:
    """Firewall drift: one of the tool's ufw rules deleted by hand."""
    code, out = on(lab, entry, "n=$(ufw status numbered | grep -m1 '# orthanc-harden$' | "
                               "sed 's/^\\[ *\\([0-9]*\\)\\].*/\\1/') && [ -n \"$n\" ] && ufw --force delete $n")
    assert code == 0, out


def auth_off(lab: dict, entry: dict) -> None:
    """Authentication drift: switched off by hand, Orthanc restarted."""
    code, out = on(lab, entry, "sed -i 's/\"AuthenticationEnabled\" *: *true/\"AuthenticationEnabled\" : false/' "
                               f"{CONFIG} && systemctl restart orthanc")
    assert code == 0, out


def anonymous(entry: dict, timeout: float = 60) -> int:
    """Anonymous GET /system, waiting (bounded) for an Orthanc that is still restarting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(f"http://127.0.0.1:{entry['http_port']}/system", timeout=10).status_code
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def instances(entry: dict, auth) -> set[str]:
    """The DICOM instances Orthanc serves now (an Orthanc without authentication ignores the credentials)."""
    anonymous(entry)
    answer = requests.get(f"http://127.0.0.1:{entry['http_port']}/instances", auth=auth, timeout=10)
    answer.raise_for_status()
    return set(answer.json())


# python3 earlier in PATH than Debian's: the SSH session dies when the authentication plan (`... check`) runs.
# The first thing a run asks a host is its state (one `python3 -c PROGRAM`, with the auth and firewall plans when
# remediating): the connection dies there, in the middle of the host's first step, with the session killed.
_SESSION_KILLER = """#!/bin/sh
[ "$#" -eq 2 ] && [ "$1" = "-c" ] && pkill -KILL -f 'sshd: root'
exec /usr/bin/python3 "$@"
"""


def lose_connection_reading_state(lab: dict, entry: dict) -> None:
    code, out = on(lab, entry, f"cat > /usr/local/bin/python3 <<'EOS'\n{_SESSION_KILLER}EOS\n"
                               "chmod 755 /usr/local/bin/python3")
    assert code == 0, out


def connection_kept(lab: dict, entry: dict) -> None:
    on(lab, entry, "rm -f /usr/local/bin/python3")
