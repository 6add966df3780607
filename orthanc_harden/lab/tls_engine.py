"""A second Docker engine on 127.0.0.1:PORT that answers only TLS clients holding a certificate from its own CA.

It proves ``tcp://`` with TLS client certificates on a real engine. It has its own data root, exec root (so its
own containerd), pid file, configuration file and Linux bridge, and writes no iptables rule: its published ports
go through docker-proxy on 127.0.0.1. The main engine is never touched.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..docker import engine as engine_client
from . import engine
from .errors import LabError

START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
_CHILDREN: dict[int, subprocess.Popen] = {}


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(path: Path, key) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _sign(subject: str, key, issuer: str, issuer_key, *, ca: bool = False, server: bool = False):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               # The VM clock is unreliable: a day of slack either way.
               .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def certificates(directory: Path, ca_name: str = "orthanc-harden lab engine CA") -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate in `directory`; returns the client's
    files as ``orthanc_harden_docker_tls`` wants them ({"ca", "cert", "key"}), plus the server's."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _sign(ca_name, ca_key, ca_name, ca_key, ca=True)
    files = {"ca": directory / "ca.pem"}
    files["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    for role, server in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _sign(f"orthanc-harden lab {role}", key, ca_name, ca_key, server=server)
        files[f"{role}-cert"] = directory / f"{role}-cert.pem"
        files[f"{role}-cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{role}-key"] = directory / f"{role}-key.pem"
        _write_key(files[f"{role}-key"], key)
    return {"ca": str(files["ca"]), "cert": str(files["client-cert"]), "key": str(files["client-key"]),
            "server_cert": str(files["server-cert"]), "server_key": str(files["server-key"])}


def _bridge(name: str, gateway: str) -> None:
    """dockerd needs an existing bridge when it is not docker0 (that one belongs to the main engine)."""
    if subprocess.run(["ip", "link", "show", name], capture_output=True).returncode != 0:
        for command in (["ip", "link", "add", name, "type", "bridge"], ["ip", "addr", "add", gateway, "dev", name],
                        ["ip", "link", "set", name, "up"]):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise LabError(f"{' '.join(command)}: {done.stderr.strip()}")


def start(directory: Path, port: int, bridge: str, gateway: str, say: Callable[[str], None]) -> tuple[str, dict]:
    """Start the engine (data under `directory`) on tcp://127.0.0.1:`port`; returns its URL and client TLS files.

    `gateway` is the bridge's address with its prefix ("172.31.252.1/24"); containers get addresses behind it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    tls = certificates(directory / "tls")
    _bridge(bridge, gateway)
    config = directory / "daemon.json"
    config.write_text("{}\n")  # never the main engine's /etc/docker/daemon.json
    url = f"tcp://127.0.0.1:{port}"
    log = directory / "dockerd.log"
    say(f"starting a TLS-only Docker engine on {url} (log: {log})")
    command = ["dockerd", "--config-file", str(config), "--data-root", str(directory / "data"),
               "--exec-root", str(_exec_root(port)), "--pidfile", str(directory / "dockerd.pid"),
               "-H", url, "--tlsverify", "--tlscacert", tls["ca"], "--tlscert", tls["server_cert"],
               "--tlskey", tls["server_key"], "--bridge", bridge, "--iptables=false", "--ip-masq=false",
               "--ip-forward=false"]
    (directory / "exec-root").write_text(str(_exec_root(port)))
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    _CHILDREN[proc.pid] = proc
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            engine_client.connect(url, tls, timeout=5).close()
            return url, tls
        except engine_client.EngineError:
            time.sleep(0.5)
    why = f"exited with status {proc.returncode}" if proc.poll() is not None else "did not answer in time"
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)
    stop(directory, bridge)
    raise LabError(f"the TLS engine on {url} {why}: {engine.log_tail(log)}")


def _exec_root(port: int) -> Path:
    # Short on purpose: containerd's sockets live under it and a unix socket path holds at most 107 bytes.
    return Path(f"/run/orthanc-harden-tls-{port}")


def stop(directory: Path, bridge: str) -> None:
    """Stop the engine (its containers stop with it), remove its bridge and its data (bounded waits)."""
    pid_file = directory / "dockerd.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        pid = None
    if pid and b"dockerd" in _cmdline(pid):
        engine.terminate(pid, lambda: b"dockerd" in _cmdline(pid), _CHILDREN.get(pid), STOP_TIMEOUT)
    _CHILDREN.pop(pid, None)
    subprocess.run(["ip", "link", "delete", bridge], capture_output=True)
    _unmount_under(directory / "data")
    shutil.rmtree(directory / "data", ignore_errors=True)
    try:
        shutil.rmtree((directory / "exec-root").read_text().strip(), ignore_errors=True)
    except OSError:
        pass


def _unmount_under(path: Path) -> None:
    """dockerd leaves its data root bind-mounted on itself when it stops; deepest mounts first."""
    root = str(path.resolve())
    mounted = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for target in sorted((m for m in mounted if m == root or m.startswith(root + "/")), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", target], capture_output=True)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
