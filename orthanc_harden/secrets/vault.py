"""vault: (and bao:) references: HashiCorp Vault or OpenBao KV version 2, through hvac."""

from __future__ import annotations

from pathlib import Path

from . import Reference, SecretError, dig, parse_mapping

TIMEOUT = 10


def _client(ref: Reference, environ):
    import hvac

    address = environ.get("VAULT_ADDR") or environ.get("BAO_ADDR")
    if not address:
        raise SecretError(f"{ref.text}: set VAULT_ADDR (or BAO_ADDR) to the server's address")
    verify: bool | str = True
    if environ.get("VAULT_CACERT"):
        verify = environ["VAULT_CACERT"]
    elif environ.get("VAULT_SKIP_VERIFY", "").lower() in ("1", "true"):
        verify = False
    token = environ.get("VAULT_TOKEN") or environ.get("BAO_TOKEN")
    token_file = Path.home() / ".vault-token"
    if not token and token_file.exists() and not environ.get("VAULT_ROLE_ID"):
        token = token_file.read_text().strip()
    client = hvac.Client(url=address, token=token, verify=verify, timeout=TIMEOUT)
    if not token:
        role_id, secret_id = environ.get("VAULT_ROLE_ID"), environ.get("VAULT_SECRET_ID")
        if not (role_id and secret_id):
            raise SecretError(f"{ref.text}: no VAULT_TOKEN, ~/.vault-token or VAULT_ROLE_ID + VAULT_SECRET_ID")
        client.auth.approle.login(role_id=role_id, secret_id=secret_id,
                                  mount_point=environ.get("VAULT_APPROLE_MOUNT", "approle"))
    return client, address


def read(ref: Reference, environ) -> object:
    import hvac.exceptions
    import requests

    mount, _, path = ref.path.partition("/")
    if not path:
        raise SecretError(f"{ref.text}: expected vault:MOUNT/PATH[#key]")
    address = environ.get("VAULT_ADDR") or environ.get("BAO_ADDR") or "the server"
    try:
        client, address = _client(ref, environ)
        response = client.secrets.kv.v2.read_secret_version(path=path, mount_point=mount,
                                                            raise_on_deleted_version=True)
    except hvac.exceptions.Forbidden:
        raise SecretError(f"{ref.text}: permission denied by {address}") from None
    except hvac.exceptions.InvalidPath:
        raise SecretError(f"{ref.text}: no such secret at {address}") from None
    except hvac.exceptions.VaultError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SecretError(f"{ref.text}: {address} refused: {first}") from None
    except requests.RequestException as err:
        raise SecretError(f"{ref.text}: cannot reach {address} ({type(err).__name__})") from None
    data = response["data"]["data"]
    value = dig(data, ref)
    return parse_mapping(value, ref) if isinstance(value, str) else value
