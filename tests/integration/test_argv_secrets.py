"""Issue #18.9: prove, not assume, that no password reaches a child process's argv (/proc/PID/cmdline, readable
by every local user). strace records every execve (it cannot miss a short-lived process as polling /proc can):
on the control node around each secret backend, and on a lab host around a whole remediate (sshd and all it
starts: the probe, the authentication edit, the health gate, the firewall)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli, unavailable
from tests.integration.conftest import fresh_lab, run_on, ssh_to

CANARY = "Canary-argv-4d2c-pw"
STORE_PASSWORD = "Store-argv-77ae-pw"  # what unlocks a store (ansible-vault password, gpg passphrase, bao token)
USERS = {"radiology": CANARY}
LAB, PORT_BASE = "pytest-argv", 21200


def _strace() -> str:
    found = shutil.which("strace")
    if not found:
        unavailable("strace is not installed (scripts/setup.sh installs it)")
    return found


def _bin(name: str) -> str:
    found = shutil.which(name) or (str(Path(sys.executable).parent / name)
                                   if (Path(sys.executable).parent / name).exists() else None)
    if not found:
        unavailable(f"{name} is not installed")
    return found


def _traced_resolve(tmp_path, ref: str, env: dict) -> str:
    """Resolve `ref` in a child Python under strace; the execve log."""
    log = tmp_path / "execve.log"
    code = ("import os, sys; from orthanc_harden.secrets import resolve_users; "
            "users = resolve_users(os.environ['OH_REF'], environ=dict(os.environ)); "
            "sys.exit(0 if users['radiology'].unmask() == os.environ['OH_EXPECT'] else 3)")
    proc = subprocess.run([_strace(), "-f", "-qq", "-e", "trace=execve", "-s", "65535", "-o", str(log),
                           sys.executable, "-c", code], env={**os.environ, **env, "OH_REF": ref, "OH_EXPECT":
                           CANARY}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return log.read_text()


def _clean(log: str) -> None:
    # OH_EXPECT carries the canary in the traced child's *environment*, which strace prints after the argv;
    # only the argv part of each execve line is what /proc/PID/cmdline shows.
    # Without -v strace prints the environment as an address: `execve("/bin/sh", ["sh", "-c", ...], 0x7ff.. /*`.
    argvs = [line.rsplit("], 0x", 1)[0] for line in log.splitlines() if "execve(" in line]
    assert argvs, "strace recorded no execve at all: the check itself is broken"
    for argv in argvs:
        assert CANARY not in argv and STORE_PASSWORD not in argv, f"a password reached a command line: {argv}"


def test_backends_keep_passwords_off_command_lines(tmp_path):
    # sops + age
    sops, keygen = _bin("sops"), _bin("age-keygen")
    key = tmp_path / "age.key"
    subprocess.run([keygen, "-o", str(key)], check=True, capture_output=True)
    public = next(line.split(": ")[1] for line in key.read_text().splitlines() if "public key" in line)
    plain = tmp_path / "users.json"
    plain.write_text(json.dumps(USERS))
    enc = subprocess.run([sops, "--encrypt", "--age", public, "--input-type", "json", "--output-type", "json",
                          str(plain)], capture_output=True, text=True, check=True,
                         env={**os.environ, "SOPS_DISABLE_VERSION_CHECK": "1"}).stdout
    plain.unlink()
    encrypted = tmp_path / "users.enc.json"
    encrypted.write_text(enc)
    log = _traced_resolve(tmp_path, f"sops:{encrypted}", {"SOPS_AGE_KEY_FILE": str(key)})
    assert "sops" in log and "--decrypt" in log, "the sops binary ran (positive control)"
    _clean(log)

    # pass + gpg, with a passphrase-protected key unlocked through the agent, never argv
    gpg, pass_bin = _bin("gpg"), _bin("pass")
    home, store = tmp_path / "gnupg", tmp_path / "store"
    home.mkdir(mode=0o700)
    (home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
    env = {**os.environ, "GNUPGHOME": str(home), "PASSWORD_STORE_DIR": str(store)}
    subprocess.run([gpg, "--batch", "--passphrase", "", "--quick-gen-key", "argv-test", "default", "default",
                    "never"], env=env, check=True, capture_output=True, timeout=120)
    listing = subprocess.run([gpg, "--list-keys", "--with-colons"], env=env, check=True, capture_output=True,
                             text=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))
    subprocess.run([pass_bin, "init", fingerprint], env=env, check=True, capture_output=True)
    subprocess.run([pass_bin, "insert", "-m", "orthanc/prod"], env=env, check=True, capture_output=True,
                   input=json.dumps(USERS), text=True)
    try:
        log = _traced_resolve(tmp_path, "pass:orthanc/prod", {"GNUPGHOME": str(home),
                                                               "PASSWORD_STORE_DIR": str(store)})
    finally:  # the agent gpg started lives on otherwise
        subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True, timeout=30)
    assert "pass" in log and "gpg" in log, "pass and gpg ran (positive control)"
    _clean(log)

    # Ansible Vault: the vault password comes from a file named in the environment
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret(STORE_PASSWORD.encode()))])
    vaulted = tmp_path / "users.vault"
    vaulted.write_bytes(vault.encrypt(json.dumps(USERS).encode()))
    password_file = tmp_path / "vault-pass"
    password_file.write_text(STORE_PASSWORD)
    password_file.chmod(0o600)
    log = _traced_resolve(tmp_path, f"ansible-vault:{vaulted}", {"ANSIBLE_VAULT_PASSWORD_FILE": str(password_file)})
    _clean(log)

    # OpenBao: the real server, its token in the environment
    bao = _bin("bao")
    port = 18221
    server = subprocess.Popen([bao, "server", "-dev", f"-dev-root-token-id={STORE_PASSWORD}",
                               f"-dev-listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        import hvac

        client = hvac.Client(url=f"http://127.0.0.1:{port}", token=STORE_PASSWORD, timeout=5)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.secrets.kv.v2.create_or_update_secret(path="orthanc/argv", secret=USERS,
                                                             mount_point="secret")
                break
            except Exception:  # noqa: BLE001 - not up yet
                assert time.monotonic() < deadline, "bao dev server did not start"
                time.sleep(0.5)
        log = _traced_resolve(tmp_path, "vault:secret/orthanc/argv",
                              {"VAULT_ADDR": f"http://127.0.0.1:{port}", "VAULT_TOKEN": STORE_PASSWORD})
        _clean(log)
    finally:
        server.kill()
        server.wait(timeout=30)


def _sshd_pid(container: str) -> int:
    top = subprocess.run(["docker", "top", container, "-eo", "pid,args"], capture_output=True, text=True,
                         check=True).stdout.splitlines()[1:]
    return next(int(line.split()[0]) for line in top if "sshd" in line and "[listener]" in line)


@pytest.mark.lab
def test_host_programs_keep_passwords_off_command_lines(tmp_path):
    strace = _strace()
    data = fresh_lab(LAB, 1, 0, PORT_BASE)
    try:
        entry = data["hosts"][0]
        users = tmp_path / "users.json"
        users.write_text(json.dumps(USERS))
        users.chmod(0o600)
        log = tmp_path / "host-execve.log"
        tracer = subprocess.Popen([strace, "-f", "-qq", "-e", "trace=execve", "-s", "65535", "-o", str(log),
                                   "-p", str(_sshd_pid(entry["container"]))])
        time.sleep(1)
        try:
            proc = run_cli("remediate", "inventories/lab.py", timeout=900,
                           env={"ORTHANC_HARDEN_LAB": LAB, "ORTHANC_HARDEN_LAB_USERS_REF": f"file:{users}"})
        finally:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(timeout=30)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        text = log.read_text()
        assert text.count('"python3", "-c"') >= 3, "probe, edit and gate ran on the host (positive control)"
        _clean(text)
        client = ssh_to(data, entry)
        try:
            assert run_on(client, "curl -s -o /dev/null -w '%{http_code}' 127.0.0.1:8042/system")[1] == "401"
        finally:
            client.close()
    finally:
        run_cli("lab", "down", "--lab", LAB)
