"""Lab pieces that need no engine: port layout, keys, known_hosts, seed DICOM, vulnerable-config recipe."""

from __future__ import annotations

import io
import os
import stat

import paramiko
import pydicom
import pytest

from orthanc_harden.lab import fleet, keys, seed
from orthanc_harden.lab.errors import LabError


def test_ports_are_distinct_and_stable():
    spec = fleet.LabSpec(hosts=3, containers=2, port_base=22200)
    layout = {m.name: m.ports for m in fleet.members(spec)}
    assert layout["lab-pkg-1"] == {"ssh": 22210, "http": 22211, "dicom": 22212}
    assert layout["lab-docker-2"] == {"http": 22721, "dicom": 22722}
    every = [p for ports in layout.values() for p in ports.values()]
    assert len(every) == len(set(every))
    # Adding package hosts never moves a container host's ports.
    bigger = {m.name: m.ports for m in fleet.members(fleet.LabSpec(hosts=9, containers=2, port_base=22200))}
    assert bigger["lab-docker-2"] == layout["lab-docker-2"]


@pytest.mark.parametrize("kwargs, cause", [
    ({"hosts": 0}, "--hosts"), ({"containers": 10}, "--containers"), ({"port_base": 80}, "--port-base"),
    ({"port_base": 40000}, "--port-base"), ({"port_base": 32300, "containers": 9}, "highest port \\(32892\\)"),
    ({"lab": "a b"}, "lab name"),
])
def test_bad_spec_is_refused(kwargs, cause):
    with pytest.raises(LabError, match=cause):
        fleet.LabSpec(**kwargs).validate()


def test_a_small_lab_may_start_close_below_the_ephemeral_ports():
    spec = fleet.LabSpec(hosts=4, containers=1, port_base=32200)
    spec.validate()
    assert max(p for m in fleet.members(spec) for p in m.ports.values()) == 32712


def test_client_key_is_private_and_stable(tmp_path):
    path, public = keys.ensure_client_key(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public.startswith("ssh-ed25519 ")
    loaded = paramiko.Ed25519Key.from_private_key_file(str(path))
    assert f"{loaded.get_name()} {loaded.get_base64()}" == public
    assert keys.ensure_client_key(tmp_path) == (path, public)


def test_known_hosts_uses_bracketed_ports(tmp_path):
    _, public = keys.new_ed25519()
    target = tmp_path / "known_hosts"
    keys.write_known_hosts(target, [("127.0.0.1", 42210, public), ("10.0.0.1", 22, public)])
    host_keys = paramiko.HostKeys(str(target))
    assert host_keys.lookup("[127.0.0.1]:42210")["ssh-ed25519"].get_base64() == public.split()[1]
    assert host_keys.lookup("10.0.0.1") is not None
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_seed_instances_are_valid_and_deterministic():
    first = seed.make_instance("lab-pkg-1", 1)
    assert first == seed.make_instance("lab-pkg-1", 1)
    ds = pydicom.dcmread(io.BytesIO(first))
    assert ds.Modality == "CT" and ds.PatientID == "OHLAB-lab-pkg-1" and (ds.Rows, ds.Columns) == (16, 16)
    assert len(ds.PixelData) == 16 * 16 * 2
    other = pydicom.dcmread(io.BytesIO(seed.make_instance("lab-pkg-2", 1)))
    assert other.SOPInstanceUID != ds.SOPInstanceUID and other.StudyInstanceUID != ds.StudyInstanceUID


def test_stale_docker_pid_files_are_removed_and_live_ones_kept(tmp_path):
    from orthanc_harden.lab import engine

    stale = tmp_path / "docker.pid"
    stale.write_text("999999999\n")
    foreign = tmp_path / "foreign.pid"
    foreign.write_text(f"{os.getpid()}\n")  # alive, but not dockerd: a recycled pid
    empty = tmp_path / "empty.pid"
    empty.write_text("")
    missing = tmp_path / "missing.pid"
    removed = engine.clear_stale_pid_files((stale, foreign, empty, missing))
    assert removed == [stale, foreign, empty]
    assert not stale.exists() and not foreign.exists() and not empty.exists()


def test_engine_error_carries_the_log_tail(tmp_path):
    from orthanc_harden.lab import engine

    log = tmp_path / "dockerd.log"
    log.write_text("a\nb\nfailed to start daemon: pid file found\n")
    assert engine.log_tail(log, 2) == "b | failed to start daemon: pid file found"
    assert "no log" in engine.log_tail(tmp_path / "absent.log")


def test_schedule_files_run_the_scheduled_command_and_hold_no_secret():
    from orthanc_harden.operations import schedule

    line = schedule.run_line("/opt/oh/bin/orthanc-harden", "remediate", "/etc/oh/fleet inv.py", "/var/lib/oh", 5)
    assert line == "/opt/oh/bin/orthanc-harden scheduled-run remediate '/etc/oh/fleet inv.py' --report-dir " \
                   "/var/lib/oh --keep 5"
    unit = schedule.service_unit("remediate", line, "/etc/oh/fleet inv.py", "/etc/oh/secrets.env")
    assert f"ExecStart={line}\n" in unit and "EnvironmentFile=/etc/oh/secrets.env\n" in unit
    assert "Type=oneshot" in unit and "UMask=0077" in unit
    timer = schedule.timer_unit("audit", "*-*-* 02:30:00")
    assert "OnCalendar=*-*-* 02:30:00\n" in timer and "Persistent=true" in timer and "WantedBy=timers.target" in timer
    cron = schedule.cron_file("17 * * * *", line, "/etc/oh/secrets.env")
    assert cron.splitlines()[-1] == f"17 * * * * root set -a; . /etc/oh/secrets.env; set +a; exec {line}"
