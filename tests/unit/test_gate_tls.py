"""Issue #17: the on-host health gate of an Orthanc with SslEnabled speaks https and trusts exactly the Orthanc's
own certificate; it never goes through a proxy from the environment. Run against a real TLS server on 127.0.0.1."""

from __future__ import annotations

import base64
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading

import pytest

from orthanc_harden.checks.health import gate_target
from orthanc_harden.remote import program
from tests.listener import Listener
from tests.tls import self_signed_pem

USER, PASSWORD = "radiology", "Gate-TLS-canary-1"


class _Orthanc(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        self.send_response(200 if self.headers.get("Authorization") == expected else 401)
        self.end_headers()

    def log_message(self, *_args):
        pass


@pytest.fixture()
def orthanc_tls(tmp_path):
    pem = tmp_path / "certificate.pem"
    pem.write_text(self_signed_pem("pacs-01.example"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Orthanc)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"port": server.server_address[1], "pem": str(pem)}
    server.shutdown()
    server.server_close()


def _gate(request: dict, env: dict | None = None) -> dict:
    proc = subprocess.run([sys.executable, "-c", program("gate")], input=json.dumps(request), capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_gate_over_https_trusts_the_orthancs_own_certificate(orthanc_tls):
    trap = Listener()
    try:
        target = gate_target(None, orthanc_tls["port"], ssl_certificate=orthanc_tls["pem"])
        assert target["local_url"].startswith("https://")
        proxy = f"http://127.0.0.1:{trap.port}"
        result = _gate({"url": target["local_url"], "ca": target["ca"], "user": USER, "password": PASSWORD,
                        "timeout": 10}, env={"https_proxy": proxy, "HTTPS_PROXY": proxy, "no_proxy": ""})
    finally:
        trap.close()
    assert result == {"ok": True, "detail": f"anonymous 401, user {USER} 200"}
    assert trap.connections == 0


def test_gate_does_not_trust_an_unknown_certificate(orthanc_tls, tmp_path):
    other = tmp_path / "other.pem"
    other.write_text(self_signed_pem("someone-else"))
    result = _gate({"url": f"https://127.0.0.1:{orthanc_tls['port']}", "ca": str(other), "user": USER,
                    "password": PASSWORD, "timeout": 3})
    assert result["ok"] is False


def test_plain_http_gate_for_an_https_orthanc_was_the_bug(orthanc_tls):
    """Before: the gate always asked http://, which an Orthanc with SslEnabled never answers."""
    assert gate_target(None, 8042) == {"url": None, "local_url": "http://127.0.0.1:8042", "ca": None}
    result = _gate({"url": f"http://127.0.0.1:{orthanc_tls['port']}", "user": USER, "password": PASSWORD,
                    "timeout": 3})
    assert result["ok"] is False


def test_the_certificate_path_comes_from_the_units_own_configuration():
    from orthanc_harden.deploys import _ssl_certificate

    def state(kind, values):
        return {"configs": {"/etc/orthanc": {"kind": kind, "files": [{"values": values}]}}}

    on = {"SslEnabled": True, "SslCertificate": "certificate.pem"}
    assert _ssl_certificate(state("dir", on), "/etc/orthanc") == "/etc/orthanc/certificate.pem"
    absolute = {"SslEnabled": True, "SslCertificate": "/srv/tls/orthanc.pem"}
    assert _ssl_certificate(state("dir", absolute), "/etc/orthanc") == "/srv/tls/orthanc.pem"
    assert _ssl_certificate(state("dir", {"SslEnabled": False, "SslCertificate": "x.pem"}), "/etc/orthanc") is None
