"""How engines are reached, on real engines: a second dockerd that answers only TLS clients with a certificate
from its own CA, and several engine hosts served at the same time under pyinfra's gevent.
"""

from __future__ import annotations

import itertools
import json
import os
import stat

import pytest

from orthanc_harden.docker.engine import connect
from orthanc_harden.lab import app_images, engine, tls_engine
from tests.conftest import unavailable
from tests.integration.dockerlab import ENGINES_INVENTORY, clean, config_dir, rows as host_rows, run_engines, wait_http

pytestmark = pytest.mark.lab

LABEL = "orthanc-harden.test"
KIND = "engines"
TLS_PORT = 31560
TLS_BRIDGE = "oh-test-tls0"
TLS_GATEWAY = "172.31.252.1/24"
PORTS = {"t-tls": 31561, "t-par-1": 31562, "t-par-2": 31563, "t-par-3": 31564}
CANARY = "Canary-engines-31d9-\"q'"
TRACE_SECONDS = 2  # how long each traced `Orthanc --version` holds its caller


def _clean(client) -> None:
    clean(client, LABEL, KIND)


def _orthanc(client, name: str, image: str, tmp, **extra):
    """A jodogne-style Orthanc 1.10.1 left open on purpose, its store on a named volume."""
    client.volumes.create(f"{name}-db", labels={LABEL: KIND})
    volumes = {config_dir(tmp, name, "/var/lib/orthanc/db"): {"bind": "/etc/orthanc", "mode": "rw"},
               f"{name}-db": {"bind": "/var/lib/orthanc/db", "mode": "rw"}, **extra.pop("volumes", {})}
    return client.containers.run(image, name=name, detach=True, labels={LABEL: KIND, f"{LABEL}-role": name},
                                 ports={"8042/tcp": ("127.0.0.1", PORTS[name])}, volumes=volumes, **extra)


def _run(work, command: str, engines: dict, *args: str) -> tuple[int, str, dict]:
    return run_engines(command, work / "engines.py", work / f"{command}.json", engines, CANARY, *args)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    work = tmp_path_factory.mktemp("engines")
    try:
        client = engine.ensure_engine(lambda _m: None)
        _clean(client)
        images = app_images.build_all(client, lambda _m: None)
    except Exception as err:  # noqa: BLE001 - any lab failure must fail the module loudly, with its cause
        unavailable(f"Docker engine or test images: {err}")
    users = work / "users.json"
    users.write_text(json.dumps({"radiology": CANARY}))
    users.chmod(0o600)
    (work / "engines.py").write_text(ENGINES_INVENTORY)
    try:
        yield {"client": client, "image": images["jodogne-fixed"], "work": work, "users": users}
    finally:
        _clean(client)


def _host(lab, role: str, url: str, tls: dict | None = None) -> dict:
    data = {"orthanc_harden_docker_url": url, "orthanc_harden_docker_filters": {"label": f"{LABEL}-role={role}"},
            "orthanc_harden_users_ref": f"file:{lab['users']}",
            "orthanc_harden_probe_urls": {name: f"http://127.0.0.1:{port}" for name, port in PORTS.items()}}
    if tls:
        data["orthanc_harden_docker_tls"] = {key: tls[key] for key in ("ca", "cert", "key")}
    return data


def test_tls_engine_with_client_certificates_is_remediated_and_strangers_are_refused(lab, tmp_path):
    directory = tmp_path / "tls-engine"
    try:
        url, tls = tls_engine.start(directory, TLS_PORT, TLS_BRIDGE, TLS_GATEWAY, lambda _m: None)
    except Exception as err:  # noqa: BLE001
        unavailable(f"a second, TLS-only dockerd: {err}")
    try:
        assert stat.S_IMODE(os.stat(tls["key"]).st_mode) == 0o600
        remote = connect(url, tls)
        remote.images.load(lab["client"].api.get_image(lab["image"]))
        container = _orthanc(remote, "t-tls", lab["image"], tmp_path)
        assert wait_http(PORTS["t-tls"], want=200) == 200, "open before the run"
        stranger = tls_engine.certificates(tmp_path / "stranger", "a stranger's CA")
        engines = {
            "tls": _host(lab, "t-tls", url, tls),
            # Trusts the engine, but its client certificate comes from another CA: the engine refuses it.
            "badclient": _host(lab, "t-tls", url, {**stranger, "ca": tls["ca"]}),
            # Its CA did not sign the engine's certificate: we refuse the engine.
            "badserver": _host(lab, "t-tls", url, stranger),
            "plain": _host(lab, "t-tls", url),
        }
        code, output, report = _run(lab["work"], "remediate", engines)
        rows = host_rows(report)
        assert rows["@dockerengine/tls"]["status"] == "changed", output[-3000:]
        assert code == 2, output[-3000:]
        for name in ("badclient", "badserver"):
            reason = rows[f"@dockerengine/{name}"]["reason"]
            assert reason.startswith(f"unreachable: Docker engine {url} not reachable: "), reason
            assert "\n" not in reason and "Traceback" not in output
        assert "CERTIFICATE_VERIFY_FAILED" in rows["@dockerengine/badserver"]["reason"]
        assert "BAD_CERTIFICATE" in rows["@dockerengine/badclient"]["reason"]
        # Plain tcp:// is refused before any connection (#18.2): users files would cross the network in clear.
        assert "is plain TCP without TLS" in rows["@dockerengine/plain"]["reason"]
        assert wait_http(PORTS["t-tls"], want=401) == 401
        assert wait_http(PORTS["t-tls"], auth=("radiology", CANARY.encode()), want=200) == 200
        container.reload()
        started = container.attrs["State"]["StartedAt"]

        code, output, report = _run(lab["work"], "remediate", {"tls": engines["tls"]})
        assert code == 0 and host_rows(report)["@dockerengine/tls"]["changes"] == [], output[-2000:]
        container.reload()
        assert container.attrs["State"]["StartedAt"] == started, "not restarted the second time"
    finally:
        tls_engine.stop(directory, TLS_BRIDGE)


TRACER = """#!/bin/sh
# Records when each `Orthanc --version` starts and ends, and holds its caller meanwhile.
if [ "$1" = "--version" ]; then
  echo "start $$ $(date +%s.%N)" >> /oh-trace/calls
  sleep {seconds}
  echo "end $$ $(date +%s.%N)" >> /oh-trace/calls
fi
exec /usr/sbin/Orthanc "$@"
"""


def _intervals(path) -> list[tuple[float, float]]:
    """(start, end) of every finished call, paired by the tracer's process id."""
    started, calls = {}, []
    for kind, pid, moment in (line.split() for line in path.read_text().splitlines()):
        if kind == "start":
            started[pid] = float(moment)
        elif pid in started:
            calls.append((started.pop(pid), float(moment)))
    return calls


def _overlaps(traces: dict[str, list[tuple[float, float]]]) -> int:
    """Pairs of calls on two different engines that were in progress at the same moment."""
    count = 0
    for a, b in itertools.combinations(traces.values(), 2):
        count += sum(1 for x, y in itertools.product(a, b) if max(x[0], y[0]) < min(x[1], y[1]))
    return count


def test_engine_hosts_are_served_at_the_same_time(lab, tmp_path):
    """Every engine call blocks on a socket; without gevent's monkey-patching before docker loads, the hosts'
    greenlets would wait for each other and no two `Orthanc --version` calls could overlap."""
    client = lab["client"]
    tracer = tmp_path / "tracer"
    tracer.write_text(TRACER.format(seconds=TRACE_SECONDS))
    tracer.chmod(0o755)
    engines, traces = {}, {}
    for name in ("t-par-1", "t-par-2", "t-par-3"):
        traces[name] = tmp_path / f"trace-{name}"
        traces[name].mkdir()
        # Entrypoint through the tracer, so the audit's and the operation's version reads go through it too.
        _orthanc(client, name, lab["image"], tmp_path, entrypoint=["/usr/local/bin/Orthanc"], command=["/etc/orthanc/"],
                 volumes={str(tracer): {"bind": "/usr/local/bin/Orthanc", "mode": "ro"},
                          str(traces[name]): {"bind": "/oh-trace", "mode": "rw"}})
        engines[name] = _host(lab, name, "unix:///var/run/docker.sock")
    for name in traces:
        assert wait_http(PORTS[name], want=200) == 200

    def calls() -> dict[str, list[tuple[float, float]]]:
        found = {name: _intervals(path / "calls") for name, path in traces.items()}
        for path in traces.values():
            (path / "calls").unlink()
        assert all(found.values()), f"every engine's version was read through the tracer: {found}"
        return found

    # The control: one host at a time can show no overlap, so the measure below can tell the difference.
    code, output, report = _run(lab["work"], "audit", engines, "--parallel", "1")
    assert code == 1 and len(report["instances"]) == 3, output[-2000:]
    serial = calls()
    assert _overlaps(serial) == 0, serial

    code, output, report = _run(lab["work"], "audit", engines)
    assert code == 1 and len(report["instances"]) == 3, output[-2000:]
    audited = calls()
    assert _overlaps(audited) >= 1, f"the audit served the engines one after another: {audited}"

    code, output, report = _run(lab["work"], "remediate", engines)
    assert code == 0, output[-3000:]
    served = calls()
    # Planning is one host after another in pyinfra; executing one operation runs it on every host at once.
    assert _overlaps(served) >= 1, f"the remediation served the engines one after another: {served}"
