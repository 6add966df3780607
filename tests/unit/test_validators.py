"""One check per input (#22): the settings and the operations refuse the same ports, networks, user names and
publish addresses; the container operation refuses 0.0.0.0 as the setting does."""

from __future__ import annotations

import pytest
from pyinfra.api import HiddenValue, OperationValueError
from pyinfra.context import ctx_host

from orthanc_harden import settings
from orthanc_harden.operations import container, firewall


@pytest.mark.parametrize("port, ok", [(1, True), (8042, True), (65535, True), (0, False), (65536, False),
                                      (True, False), ("8042", False), (None, False)])
def test_tcp_port(port, ok):
    assert settings.tcp_port(port) is ok
    if not ok:
        with pytest.raises(OperationValueError, match="is not a TCP port"):
            firewall.request_for([port], ["10.0.0.0/8"], "auto", False, False, None)


@pytest.mark.parametrize("cidr, network", [("10.1.2.3/8", "10.0.0.0/8"), ("fd00::1/48", "fd00::/48"),
                                           ("10.0.0.0/33", None), ("pacs", None), (None, None)])
def test_network_in_the_settings_and_the_firewall_operation(cidr, network):
    assert settings.network(cidr) == network
    problems = settings.validate({"orthanc_harden_allowed_cidrs": [cidr]})
    assert (f"orthanc_harden_allowed_cidrs: {cidr!r} is not an IPv4 or IPv6 network" in problems) is (network is None)
    if network is None:
        with pytest.raises(OperationValueError, match="is not an IPv4 or IPv6 network"):
            firewall.request_for([8042], [cidr], "auto", False, False, None)


@pytest.mark.parametrize("name, ok", [("radiology", True), ("", False), ("a:b", False), (7, False)])
def test_user_name(name, ok):
    assert settings.user_name(name) is ok


@pytest.mark.parametrize("address, problem", [("0.0.0.0", "0.0.0.0 is every address: name one"),
                                              ("::", ":: is every address: name one"),
                                              ("pacs", "'pacs' is not an IPv4 or IPv6 address"),
                                              ("10.1.2.3", None)])
def test_publish_address_in_the_settings_and_the_container_operation(address, problem):
    assert settings.publish_address_problem(address) == problem
    assert ([p for p in settings.validate({"orthanc_harden_docker_publish_address": address}) if "publish" in p]
            == ([f"orthanc_harden_docker_publish_address {problem}"] if problem else []))
    if problem:
        class NoEngine:
            name, data = "engine-01", {}
        with ctx_host.use(NoEngine()):  # refused before the engine is asked: the host fails with one line
            commands = list(container.orthanc._inner(container="pacs", users={"radiology": HiddenValue("pw")},
                                                     publish_address=address))
        assert [c.args[:2] for c in commands] == [("container pacs", f"container pacs: publish_address {problem}")]


def test_one_wait_for_orthanc_answering_serves_package_hosts_and_containers():
    """health.answering is the control node's one bounded wait for an answer (any status), package hosts and
    containers alike (#22); 127.0.0.1 only."""
    import http.server
    import socket
    import threading

    from orthanc_harden.checks import health
    from orthanc_harden.docker import replace

    class Locked(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server hook
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Locked)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert health.answering(url, 5) == (True, "answering (401)")
        assert health._answering(None, {"url": url}, 5) is True
        assert replace.answering is health.answering
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as sock:  # a port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
        assert health.answering(closed, 1.5) == (False, f"{closed} did not answer within 2s")
