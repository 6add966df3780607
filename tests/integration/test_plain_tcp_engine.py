"""Issue #18.2: a tcp:// Docker engine without TLS would carry users files (passwords) in clear: refused before
any connection, unless the operator says orthanc_harden_docker_insecure: true."""

from __future__ import annotations

import json

from tests.conftest import run_cli
from tests.listener import Listener

CANARY = "Canary-tcp-5b1e"


def _inventory(tmp_path, port: int, extra: str = "") -> str:
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"radiology": CANARY}))
    users.chmod(0o600)
    inventory = tmp_path / "inventory.py"
    inventory.write_text(f"engines = [('@dockerengine/plain', {{'orthanc_harden_docker_url': 'tcp://127.0.0.1:{port}', "
                         f"'orthanc_harden_users_ref': 'file:{users}'{extra}}})]\n")
    return str(inventory)


def test_plain_tcp_engine_is_refused_and_never_contacted(tmp_path):
    engine = Listener()
    try:
        inventory = _inventory(tmp_path, engine.port)
        for command in (("audit",), ("remediate",), ("remediate", "--dry")):
            report = tmp_path / "report.json"
            proc = run_cli(*command, inventory, "--json", str(report), timeout=300)
            output = proc.stdout + proc.stderr
            assert proc.returncode == 2, output[-2000:]
            written = report.read_text()  # the table wraps long reasons; the JSON report does not
            assert "is plain TCP without TLS" in written and "Traceback" not in output, output[-2000:]
            assert CANARY not in output + written
        assert engine.connections == 0, "nothing may be sent to a plain-TCP engine"
    finally:
        engine.close()


def test_insecure_waiver_lets_the_connection_be_tried(tmp_path):
    engine = Listener()
    try:
        inventory = _inventory(tmp_path, engine.port, ", 'orthanc_harden_docker_insecure': True")
        report = tmp_path / "report.json"
        run_cli("audit", inventory, "--json", str(report), timeout=300)
        assert "is plain TCP without TLS" not in report.read_text()
        assert engine.connections > 0, "with the written waiver the engine is contacted"
    finally:
        engine.close()
