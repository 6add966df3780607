"""Secret stores against the real things: OpenBao, SOPS + age, pass + GnuPG, Ansible Vault, env and files."""

from __future__ import annotations

import json
import logging
import os
import secrets as pysecrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orthanc_harden.secrets import SecretCache, SecretError, parse_reference, resolve_users
from tests.conftest import unavailable

pytestmark = pytest.mark.secrets_backend

CANARY = "Canary-secret-3f9b-\"'*/"
USERS = {"radiology": CANARY, "reader": "Reader-pw-2"}
VENV_BIN = Path(sys.executable).parent


def _binary(name: str) -> str:
    found = shutil.which(name) or (str(VENV_BIN / name) if (VENV_BIN / name).exists() else None)
    if not found:
        unavailable(f"{name} is not installed")
    return found


def _plain(users) -> dict:
    return {name: value.unmask() for name, value in users.items()}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def bao(tmp_path_factory):
    binary = _binary("bao")
    port, token = _free_port(), pysecrets.token_hex(16)
    log = tmp_path_factory.mktemp("bao") / "bao.log"
    with open(log, "w") as handle:
        server = subprocess.Popen([binary, "server", "-dev", f"-dev-root-token-id={token}",
                                   f"-dev-listen-address=127.0.0.1:{port}"], stdout=handle, stderr=handle)
    import hvac

    client = hvac.Client(url=f"http://127.0.0.1:{port}", token=token, timeout=5)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if client.sys.is_initialized():
                break
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail(f"bao dev server did not start: {log.read_text()[-500:]}")
    client.secrets.kv.v2.create_or_update_secret(path="orthanc/prod", secret=USERS, mount_point="secret")
    client.secrets.kv.v2.create_or_update_secret(path="orthanc/nested", secret={"users": json.dumps(USERS)},
                                                 mount_point="secret")
    yield {"addr": f"http://127.0.0.1:{port}", "token": token, "client": client}
    server.kill()
    server.wait(timeout=30)


def test_vault_token(bao):
    env = {"VAULT_ADDR": bao["addr"], "VAULT_TOKEN": bao["token"]}
    assert _plain(resolve_users("vault:secret/orthanc/prod", environ=env)) == USERS
    assert _plain(resolve_users("bao:secret/orthanc/nested#users", environ={"BAO_ADDR": bao["addr"],
                                                                            "BAO_TOKEN": bao["token"]})) == USERS


def test_vault_approle_and_forbidden(bao):
    client = bao["client"]
    if "approle/" not in client.sys.list_auth_methods():
        client.sys.enable_auth_method("approle")
    client.sys.create_or_update_policy("orthanc-read", 'path "secret/data/orthanc/prod" { capabilities = ["read"] }')
    client.auth.approle.create_or_update_approle("orthanc-harden", token_policies=["orthanc-read"])
    role_id = client.auth.approle.read_role_id("orthanc-harden")["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id("orthanc-harden")["data"]["secret_id"]
    env = {"VAULT_ADDR": bao["addr"], "VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id}
    assert _plain(resolve_users("vault:secret/orthanc/prod", environ=env)) == USERS
    with pytest.raises(SecretError, match="permission denied by http://127.0.0.1"):
        resolve_users("vault:secret/orthanc/nested#users", environ=env)


def test_vault_missing_and_unreachable(bao):
    env = {"VAULT_ADDR": bao["addr"], "VAULT_TOKEN": bao["token"]}
    with pytest.raises(SecretError, match="no such secret"):
        resolve_users("vault:secret/orthanc/absent", environ=env)
    with pytest.raises(SecretError, match="key 'nope' not found"):
        resolve_users("vault:secret/orthanc/nested#nope", environ=env)
    started = time.monotonic()
    with pytest.raises(SecretError, match=r"cannot reach http://127.0.0.1:\d+"):
        resolve_users("vault:secret/orthanc/prod", environ={"VAULT_ADDR": f"http://127.0.0.1:{_free_port()}",
                                                           "VAULT_TOKEN": "x"})
    assert time.monotonic() - started < 30


def test_sops_with_age(tmp_path):
    sops, keygen = _binary("sops"), _binary("age-keygen")
    key = tmp_path / "age.key"
    subprocess.run([keygen, "-o", str(key)], check=True, capture_output=True)
    public = next(line.split(": ")[1] for line in key.read_text().splitlines() if "public key" in line)
    plain = tmp_path / "secrets.yaml"
    plain.write_text("orthanc:\n  users:\n" + "".join(f"    {k}: {json.dumps(v)}\n" for k, v in USERS.items()))
    encrypted = tmp_path / "secrets.enc.yaml"
    env = {**os.environ, "SOPS_DISABLE_VERSION_CHECK": "1"}
    result = subprocess.run([sops, "--encrypt", "--age", public, str(plain)], capture_output=True, text=True,
                            env=env, check=True)
    encrypted.write_text(result.stdout)
    assert CANARY not in encrypted.read_text()
    ref = f"sops:{encrypted}#orthanc.users"
    assert _plain(resolve_users(ref, environ={**os.environ, "SOPS_AGE_KEY_FILE": str(key)})) == USERS
    other = tmp_path / "other.key"
    subprocess.run([keygen, "-o", str(other)], check=True, capture_output=True)
    with pytest.raises(SecretError, match="sops could not decrypt it"):
        resolve_users(ref, environ={**os.environ, "SOPS_AGE_KEY_FILE": str(other)})


def test_pass_with_throwaway_gnupg(tmp_path):
    gpg, pass_bin = _binary("gpg"), _binary("pass")
    home, store = tmp_path / "gnupg", tmp_path / "store"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home), "PASSWORD_STORE_DIR": str(store)}
    subprocess.run([gpg, "--batch", "--passphrase", "", "--quick-gen-key", "orthanc-harden-test", "default",
                    "default", "never"], env=env, check=True, capture_output=True, timeout=120)
    listing = subprocess.run([gpg, "--list-keys", "--with-colons"], env=env, check=True, capture_output=True,
                             text=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))
    subprocess.run([pass_bin, "init", fingerprint], env=env, check=True, capture_output=True)
    subprocess.run([pass_bin, "insert", "-m", "orthanc/prod"], env=env, check=True, capture_output=True,
                   input=json.dumps(USERS), text=True)
    assert _plain(resolve_users("pass:orthanc/prod", environ=env)) == USERS
    with pytest.raises(SecretError, match="pass could not show it"):
        resolve_users("pass:orthanc/absent", environ=env)


def test_ansible_vault(tmp_path):
    from ansible.constants import DEFAULT_VAULT_ID_MATCH
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(b"vault-pw-1"))])
    document = "orthanc_users:\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in USERS.items())
    path = tmp_path / "vault.yml"
    path.write_bytes(vault.encrypt(document.encode()))
    password_file = tmp_path / "vault-pass"
    password_file.write_text("vault-pw-1\n")
    ref = f"ansible-vault:{path}#orthanc_users"
    assert _plain(resolve_users(ref, environ={"ANSIBLE_VAULT_PASSWORD_FILE": str(password_file)})) == USERS
    assert _plain(resolve_users(ref, environ={"ORTHANC_HARDEN_VAULT_PASSWORD": "vault-pw-1"})) == USERS
    with pytest.raises(SecretError, match="wrong vault password"):
        resolve_users(ref, environ={"ORTHANC_HARDEN_VAULT_PASSWORD": "nope"})


def test_env_and_file(tmp_path):
    assert _plain(resolve_users("env:OH_USERS", environ={"OH_USERS": json.dumps(USERS)})) == USERS
    with pytest.raises(SecretError, match="environment variable OH_MISSING is not set"):
        resolve_users("env:OH_MISSING", environ={})
    with pytest.raises(SecretError, match="not a JSON object"):
        resolve_users("env:OH_USERS", environ={"OH_USERS": "radiology=pw"})
    with pytest.raises(SecretError, match="non-empty mapping"):
        resolve_users("env:OH_USERS", environ={"OH_USERS": "{}"})
    with pytest.raises(SecretError, match="without ':'"):
        resolve_users("env:OH_USERS", environ={"OH_USERS": '{"a:b": "pw"}'})
    path = tmp_path / "users.json"
    path.write_text(json.dumps(USERS))
    path.chmod(0o644)
    with pytest.raises(SecretError, match="mode 0644 lets group or others read or write it"):
        resolve_users(f"file:{path}")
    path.chmod(0o600)
    assert _plain(resolve_users(f"file:{path}")) == USERS


def test_references_and_cache():
    assert parse_reference("bao:secret/x#k").scheme == "vault"
    for bad in ("nothing", "ftp:x", "env:"):
        with pytest.raises(SecretError):
            parse_reference(bad)
    environ = {"OH_USERS": json.dumps(USERS)}
    cache = SecretCache(environ)
    cache.resolve_all(["env:OH_USERS", "env:OH_USERS"])
    first = cache.users("env:OH_USERS")
    environ["OH_USERS"] = json.dumps({"changed": "x"})
    assert cache.users("env:OH_USERS") is first  # resolved once per run


def test_canary_never_printed(tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    users = resolve_users("env:OH_USERS", environ={"OH_USERS": json.dumps(USERS)})
    shown = [repr(users), str(users), *(str(v) for v in users.values())]
    errors = []
    for ref, environ in [("env:OH_USERS", {"OH_USERS": json.dumps({"x": CANARY, "bad:name": CANARY})}),
                         ("env:OH_USERS", {"OH_USERS": json.dumps({"x": [CANARY]})})]:
        with pytest.raises(SecretError) as info:
            resolve_users(ref, environ=environ)
        errors.append(str(info.value))
    captured = capsys.readouterr()
    for channel in (*shown, *errors, captured.out, captured.err, caplog.text):
        assert "Canary-secret-3f9b" not in channel
