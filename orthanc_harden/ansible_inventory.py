"""Ansible inventories as they are: INI or YAML files (or a directory of them) with group_vars/ and host_vars/.

ansible-core reads them (its InventoryManager, VariableManager and DataLoader: the same parser, precedence and
templating as ``ansible-playbook``); each host's merged variables then become pyinfra host data. Ansible groups
become pyinfra groups (``--limit GROUP``), the ``ansible_*`` connection variables map to pyinfra's, and
``orthanc_harden_*`` variables are settings as in a pyinfra inventory. A ``!vault`` value is decrypted with the
password sources of the ``ansible-vault:`` secret store.

A variable that cannot be honoured (another connection type, another become method, a password pyinfra would
expose) fails its host alone, in one line, before anything connects to it: ignoring it would reach the host
differently from Ansible.

With the pyinfra CLI, Ansible's own variable names the inventory:

    ANSIBLE_INVENTORY=hosts.ini pyinfra orthanc_harden.ansible_inventory.inventory deploys/harden.py
"""

from __future__ import annotations

import os
import shlex
from contextlib import contextmanager
from pathlib import Path

# Host data key carrying why a host's Ansible variables are refused; settings.validate reports it first.
REFUSED = "_ansible_refused"
README = "README: Coming from Ansible"
VAULT_HINT = "set ANSIBLE_VAULT_PASSWORD_FILE or ORTHANC_HARDEN_VAULT_PASSWORD to its vault password"

SSH_CONNECTIONS = {"ssh", "smart", "paramiko", "paramiko_ssh", "ansible.builtin.ssh", "ansible.builtin.paramiko_ssh",
                   "ansible.legacy.ssh"}

# Ansible's two spellings of one setting: a host with both set differently is ambiguous, so refused.
ALIASES = {
    "ansible_host": "ansible_ssh_host", "ansible_port": "ansible_ssh_port", "ansible_user": "ansible_ssh_user",
    "ansible_ssh_private_key_file": "ansible_private_key_file",
    "ansible_host_key_checking": "ansible_ssh_host_key_checking",
}
# Connection variables that map to pyinfra's, or whose accepted values keep Ansible's meaning (checked below).
HONOURED = {
    "ansible_host", "ansible_port", "ansible_user", "ansible_ssh_private_key_file", "ansible_become",
    "ansible_become_user", "ansible_become_method", "ansible_become_flags", "ansible_become_exe", "ansible_connection",
    "ansible_host_key_checking", "ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_ssh_args",
    "ansible_ssh_retries", "ansible_python_interpreter", "ansible_shell_type", "ansible_shell_executable",
    *ALIASES.values(),
}
# Tuning of Ansible's own transport that pyinfra's paramiko connection has no use for: ignoring it changes nothing.
IGNORED = {
    "ansible_pipelining", "ansible_ssh_pipelining", "ansible_timeout", "ansible_ssh_timeout",
    "ansible_ssh_executable", "ansible_ssh_transfer_method", "ansible_scp_if_ssh", "ansible_sftp_batch_mode",
    "ansible_scp_extra_args", "ansible_sftp_extra_args", "ansible_control_path", "ansible_control_path_dir",
    "ansible_module_compression", "ansible_remote_tmp", "ansible_async_dir", "ansible_ssh_use_tty",
}
SECRETS = {
    "ansible_password": "an SSH password is not used (pyinfra logs its connect arguments, password included, at "
                        "debug level): use ansible_ssh_private_key_file or an agent",
    "ansible_become_password": "a sudo password is not used (pyinfra hands it to the host on a command line, "
                               "visible to `ps`): give the login password-less sudo",
}
for _name, _alias in (("ansible_ssh_pass", "ansible_password"), ("ansible_ssh_password", "ansible_password"),
                      ("ansible_become_pass", "ansible_become_password"), ("ansible_sudo_pass",
                                                                          "ansible_become_password")):
    SECRETS[_name] = SECRETS[_alias]

PYTHONS = {"auto", "auto_silent", "auto_legacy", "auto_legacy_silent", "python3", "/usr/bin/python3"}
SHELLS = {"/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/bin/bash", "sh", "bash"}
SUDO_FLAGS = {"-H": {}, "-S": {}, "-n": {}, "-i": {"_use_sudo_login": True}, "-E": {"_preserve_sudo_env": True}}
# ssh -o options read from ansible_ssh_*args: mapped to pyinfra data, or harmless to leave out.
SSH_OPTIONS = {"userknownhostsfile": "ssh_known_hosts_file", "stricthostkeychecking": "ssh_strict_host_key_checking",
               "forwardagent": "ssh_forward_agent"}
SSH_OPTIONS_IGNORED = {"controlmaster", "controlpersist", "controlpath", "serveraliveinterval", "serveralivecountmax",
                       "tcpkeepalive", "compression", "connecttimeout", "loglevel", "connectionattempts"}
STRICT_VALUES = {"yes", "no", "off", "accept-new", "ask"}


# Read by the secret stores only, which name the reference in their messages: from a !vault it is named, not shown.
MASKED_WHEN_VAULTED = {"orthanc_harden_users_ref"}


class Vaulted(str):
    """A decrypted !vault text: the value for the code that parses it, its variable's name wherever it is formatted
    (f-strings, str(), repr()), so a message about it never prints it."""

    label = "a vaulted value"

    def __new__(cls, value: str, label: str | None = None):
        text = super().__new__(cls, value)
        if label:
            text.label = f"{label} (vaulted)"
        return text

    def __str__(self) -> str:
        return self.label

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(self.label, spec)


class AnsibleInventoryError(Exception):
    """The inventory as a whole cannot be read: one line, nothing contacted."""


class Refused(Exception):
    """One host's variable that cannot be honoured: the message is the one line its row shows."""


def is_ansible(path: str) -> bool:
    """An existing file or directory that is not a Python file: pyinfra inventories are Python, Ansible's are INI,
    YAML, a directory of them, or an executable script."""
    return os.path.exists(path) and not path.endswith(".py")


def _boolean(value, name: str) -> bool:
    from ansible.module_utils.parsing.convert_bool import boolean

    try:
        return boolean(value, strict=True)
    except TypeError:
        raise Refused(f"{name}={value!r} is not a boolean") from None


def _one(variables: dict, name: str):
    """The value under either of Ansible's spellings of a variable."""
    alias = ALIASES.get(name)
    if alias and alias in variables and name in variables and variables[alias] != variables[name]:
        raise Refused(f"{name} and {alias} differ: set one of them")
    return variables.get(name, variables.get(alias)) if alias else variables.get(name)


def _ssh_args(text: str, name: str) -> dict:
    """pyinfra data for the ssh options of ansible_ssh_common_args and its kin."""
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise Refused(f"{name} does not parse: {err}") from None
    data: dict = {}
    index = 0
    while index < len(words):
        word = words[index]
        if word in ("-C", "-q"):
            index += 1
            continue
        if word in ("-o", "-F") or word.startswith(("-o", "-F")):
            flag = word[:2]
            value = word[2:] if len(word) > 2 else (words[index + 1] if index + 1 < len(words) else None)
            index += 1 if len(word) > 2 else 2
            if value is None:
                raise Refused(f"{name}: {flag} without a value")
            if flag == "-F":
                data["ssh_config_file"] = os.path.expanduser(value)
                continue
            key, _, option_value = value.replace("=", " ", 1).partition(" ")
            key, option_value = key.strip().lower(), option_value.strip()
            if key in SSH_OPTIONS_IGNORED:
                continue
            if key in ("proxyjump", "proxycommand"):
                raise Refused(f"{name}: -o {key} is not mapped: put it in ~/.ssh/config or a file given with -F, "
                              "which pyinfra reads")
            if key == "userknownhostsfile":
                if len(option_value.split()) != 1:
                    raise Refused(f"{name}: UserKnownHostsFile with several files is not mapped: name one")
                data["ssh_known_hosts_file"] = os.path.expanduser(option_value)
            elif key == "stricthostkeychecking":
                option_value = option_value.lower()
                if option_value not in STRICT_VALUES:
                    raise Refused(f"{name}: StrictHostKeyChecking={option_value} is not one of "
                                  f"{', '.join(sorted(STRICT_VALUES))}")
                data["ssh_strict_host_key_checking"] = option_value
            elif key == "forwardagent":
                data["ssh_forward_agent"] = _boolean(option_value, f"{name}: ForwardAgent")
            else:
                raise Refused(f"{name}: -o {key} is not mapped ({README})")
            continue
        if word in ("-J",) or word.startswith("-J"):
            raise Refused(f"{name}: -J is not mapped: put ProxyJump in ~/.ssh/config or a file given with -F, "
                          "which pyinfra reads")
        raise Refused(f"{name}: {word} is not mapped ({README})")
    return data


def _connection(variables: dict, engine_host: bool) -> dict:
    """pyinfra connection data for one host's Ansible variables; Refused names the first that cannot be honoured."""
    for name in sorted(k for k in variables if k.startswith("ansible_")):
        if name in SECRETS and variables[name] not in (None, ""):
            raise Refused(f"{name}: {SECRETS[name]}")
        if name not in HONOURED and name not in IGNORED and name not in SECRETS:
            raise Refused(f"{name} is not understood by orthanc-harden ({README} lists those it honours)")
    connection = str(variables.get("ansible_connection") or "ssh")
    if connection not in SSH_CONNECTIONS and not (engine_host and connection == "local"):
        raise Refused(f"ansible_connection={connection} is refused: orthanc-harden reaches hosts over SSH only")
    method = str(variables.get("ansible_become_method") or "sudo")
    if method not in ("sudo", "ansible.builtin.sudo"):
        raise Refused(f"ansible_become_method={method} is refused: orthanc-harden becomes root with sudo only")
    exe = variables.get("ansible_become_exe")
    if exe and os.path.basename(str(exe)) != "sudo":
        raise Refused(f"ansible_become_exe={exe} is refused: orthanc-harden runs sudo from the PATH")
    python = variables.get("ansible_python_interpreter")
    if python and str(python) not in PYTHONS:
        raise Refused(f"ansible_python_interpreter={python} is refused: orthanc-harden runs python3 from the PATH")
    shell = variables.get("ansible_shell_type")
    if shell and str(shell) != "sh":
        raise Refused(f"ansible_shell_type={shell} is refused: orthanc-harden's commands are POSIX sh")
    shell = variables.get("ansible_shell_executable")
    if shell and str(shell) not in SHELLS:
        raise Refused(f"ansible_shell_executable={shell} is refused: orthanc-harden's commands are POSIX sh")

    data: dict = {}
    for ansible_name, pyinfra_name in (("ansible_host", "ssh_hostname"), ("ansible_user", "ssh_user")):
        value = _one(variables, ansible_name)
        if value not in (None, ""):
            data[pyinfra_name] = str(value)
    port = _one(variables, "ansible_port")
    if port not in (None, ""):
        try:
            data["ssh_port"] = int(port)
        except (TypeError, ValueError):
            raise Refused(f"ansible_port={port!r} is not a port number") from None
    key = _one(variables, "ansible_ssh_private_key_file")
    if key:
        data["ssh_key"] = os.path.expanduser(str(key))
    retries = variables.get("ansible_ssh_retries")
    if retries not in (None, ""):
        try:
            data["ssh_connect_retries"] = int(retries)
        except (TypeError, ValueError):
            raise Refused(f"ansible_ssh_retries={retries!r} is not a number") from None
    checking = _one(variables, "ansible_host_key_checking")
    if checking is not None:
        # Ansible checks host keys unless told not to; "yes" is pyinfra's closest non-interactive equivalent.
        data["ssh_strict_host_key_checking"] = "yes" if _boolean(checking, "ansible_host_key_checking") else "no"
    for name in ("ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args"):
        if variables.get(name):
            data.update(_ssh_args(str(variables[name]), name))
    if variables.get("ansible_become") is not None and _boolean(variables["ansible_become"], "ansible_become"):
        data["_sudo"] = True
        user = variables.get("ansible_become_user")
        if user and str(user) != "root":
            data["_sudo_user"] = str(user)
        for flag in shlex.split(str(variables.get("ansible_become_flags") or "")):
            if flag not in SUDO_FLAGS:
                raise Refused(f"ansible_become_flags: {flag} is not mapped ({README})")
            data.update(SUDO_FLAGS[flag])
    return data


def translate(name: str, variables: dict) -> tuple[str, dict]:
    """One Ansible host (its templated, decrypted variables) as a pyinfra (name, data) pair. A host whose Orthancs
    are reached through a Docker engine becomes an ``@dockerengine/NAME`` host, as in a pyinfra inventory."""
    engine_host = bool(variables.get("orthanc_harden_docker_url"))
    pyinfra_name = f"@dockerengine/{name}" if engine_host else name
    settings = {k: v for k, v in variables.items() if k.startswith("orthanc_harden_")}
    try:
        return pyinfra_name, {**_connection(variables, engine_host), **settings}
    except Refused as err:
        return pyinfra_name, {REFUSED: str(err)}


# ---- reading the inventory with ansible-core ----

def _require_ansible(path: str) -> None:
    from .secrets.ansible_vault import importing_ansible

    try:
        with importing_ansible():
            import ansible.inventory.manager  # noqa: F401
            import ansible.template  # noqa: F401
            import ansible.vars.manager  # noqa: F401
    except ImportError:
        raise AnsibleInventoryError(
            f"inventory {path} is an Ansible inventory: install ansible-core to read it "
            "(pip install 'orthanc-harden[ansible]')") from None


def _vault_secrets(environ) -> list:
    from ansible.constants import DEFAULT_VAULT_ID_MATCH
    from ansible.parsing.vault import VaultSecret

    from .secrets import SecretError
    from .secrets.ansible_vault import vault_password

    try:
        password = vault_password(environ, "inventory")
    except SecretError:
        return []  # no source set: only a vaulted variable needs one, and its host says so
    return [(DEFAULT_VAULT_ID_MATCH, VaultSecret(password))]


@contextmanager
def _vault_context(secrets: list):
    """ansible-core 2.19 decrypts through a process-wide context that can be set only once; older ones through
    the loader alone."""
    try:
        from ansible.parsing.vault import VaultSecretsContext
    except ImportError:
        yield
        return
    current = VaultSecretsContext.current(optional=True)
    if current is None:
        VaultSecretsContext.initialize(VaultSecretsContext(list(secrets)))
        current = VaultSecretsContext.current()
    previous, current.secrets = current.secrets, list(secrets)
    try:
        yield
    finally:
        current.secrets = previous


@contextmanager
def _quiet_ansible(messages: list[str]):
    """ansible-core reports parse failures as warnings on the terminal and carries on with an empty inventory:
    here every unparsable source is an error, and its messages are kept to name the cause in one line."""
    import ansible.constants as C
    from ansible.utils.display import Display

    display = Display()
    saved = {name: getattr(display, name) for name in ("warning", "error", "deprecated", "display",
                                                       "error_as_warning") if hasattr(display, name)}

    def keep(*args, **kwargs):
        exception = kwargs.get("exception")
        text = str(exception) if exception is not None else str(kwargs.get("msg", args[0] if args else ""))
        messages.append(text)

    for name in saved:
        setattr(display, name, keep)
    flag = C.INVENTORY_ANY_UNPARSED_IS_FAILED
    C.INVENTORY_ANY_UNPARSED_IS_FAILED = True
    try:
        yield
    finally:
        C.INVENTORY_ANY_UNPARSED_IS_FAILED = flag
        for name in saved:
            delattr(display, name)  # back to the class's methods


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


def _plain(value, name: str):
    """ansible-core's tagged, lazily decrypted values as plain Python data for pyinfra."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, dict):
        return {_plain(k, name): _plain(v, name) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, name) for v in value]
    if type(value).__name__ == "AnsibleVaultEncryptedUnicode":  # ansible-core < 2.19
        return str.__str__(str(value))
    raise Refused(f"{name} has a value orthanc-harden cannot use ({type(value).__name__})")


def _wanted(name: str) -> bool:
    return name.startswith("orthanc_harden_") or name in HONOURED or name in SECRETS or name in IGNORED


def _host_variables(variables: dict, templar, internal) -> dict:
    """The variables this tool reads, templated as Ansible would (Jinja, !vault) and made plain; the names of the
    other ansible_* variables are kept for the refusal check."""
    # Facts from a fact cache come back as variables too (ansible_distribution...): what the host is, not how to
    # reach it.
    facts = variables.get("ansible_facts")
    facts = {f"ansible_{k}" for k in facts if isinstance(k, str)} if isinstance(facts, dict) else set()
    out: dict = {}
    for key in variables:
        if not isinstance(key, str) or key in internal or key in facts:
            continue
        if key.startswith("ansible_") and not _wanted(key):
            out[key] = "(not read)"
            continue
        if not _wanted(key):
            continue
        if key in SECRETS:
            out[key] = "(secret, not read)" if variables[key] not in (None, "") else None
            continue
        raw = variables[key]
        try:
            out[key] = _plain(templar.template(raw), key)
            if key in MASKED_WHEN_VAULTED and isinstance(out[key], str) and (
                    type(raw).__name__ in ("EncryptedString", "AnsibleVaultEncryptedUnicode")
                    or (isinstance(raw, str) and "{{" in raw)):  # a template may draw on a vaulted variable
                out[key] = Vaulted(out[key], key)
        except Refused:
            raise
        except Exception as err:  # noqa: BLE001 - ansible-core's errors; the value is never shown
            cause = _first_line(getattr(err, "message", "") or str(err))
            if "vault" in cause.lower() or "decrypt" in cause.lower():
                raise Refused(f"{key} is vaulted and cannot be decrypted: {VAULT_HINT}") from None
            raise Refused(f"{key} cannot be templated: {cause}") from None
    return out


def _ansible_defaults() -> dict:
    """ansible.cfg / ANSIBLE_* settings that stand in for unset inventory variables, as in Ansible."""
    import ansible.constants as C

    defaults = {"ansible_user": C.DEFAULT_REMOTE_USER, "ansible_port": C.DEFAULT_REMOTE_PORT,
                "ansible_ssh_private_key_file": C.DEFAULT_PRIVATE_KEY_FILE,
                "ansible_connection": C.DEFAULT_TRANSPORT, "ansible_become": C.DEFAULT_BECOME or None,
                "ansible_become_user": C.DEFAULT_BECOME_USER, "ansible_become_method": C.DEFAULT_BECOME_METHOD,
                "ansible_become_flags": C.DEFAULT_BECOME_FLAGS or None,
                "ansible_host_key_checking": None if C.HOST_KEY_CHECKING else False}
    return {k: v for k, v in defaults.items() if v is not None}


def load(sources: str | list[str], environ=None) -> dict[str, tuple[list, dict]]:
    """{group: ([(pyinfra name, data)], {})} for an Ansible inventory. Group data is empty on purpose: each host
    carries its variables already merged by Ansible's precedence (host_vars over child groups over parents...)."""
    environ = os.environ if environ is None else environ
    sources = [sources] if isinstance(sources, str) else list(sources)
    label = ", ".join(sources)
    for source in sources:
        _require_ansible(source)
        if not os.path.exists(source):
            raise AnsibleInventoryError(f"inventory {source} does not exist")
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    try:
        import ansible.constants as C

        internal = set(getattr(C, "INTERNAL_STATIC_VARS", ()))
    except ImportError:  # pragma: no cover - ansible-core is there (checked above)
        internal = set()
    internal |= {"ansible_config_file", "ansible_facts", "ansible_playbook_python", "ansible_version"}

    secrets = _vault_secrets(environ)
    messages: list[str] = []
    loader = DataLoader()
    loader.set_vault_secrets(secrets)
    with _vault_context(secrets), _quiet_ansible(messages):
        try:
            inventory = InventoryManager(loader=loader, sources=[os.path.abspath(s) for s in sources])
            manager = VariableManager(loader=loader, inventory=inventory)
            hosts = inventory.get_hosts()
        except Exception as err:  # noqa: BLE001 - ansible-core's parse errors: one line, no file excerpt
            causes = [_first_line(m) for m in messages if _first_line(m)]
            cause = causes[0] if causes else _first_line(getattr(err, "message", "") or str(err))
            if "vault" in cause.lower() or "decrypt" in cause.lower():
                cause = f"a vaulted file cannot be decrypted: {VAULT_HINT}"
            raise AnsibleInventoryError(f"inventory {label} does not load: {cause}") from None
        defaults = _ansible_defaults()
        translated = {}
        for host in hosts:
            try:
                variables = manager.get_vars(host=host)
                templar = Templar(loader=loader, variables=variables)
                mine = _host_variables(variables, templar, internal)
                name, data = translate(host.name, {**defaults, **mine})
            except Refused as err:
                name, data = host.name, {REFUSED: str(err)}
            except Exception as err:  # noqa: BLE001 - one host's variables never stop the others
                cause = _first_line(getattr(err, "message", "") or str(err))
                if "vault" in cause.lower() or "decrypt" in cause.lower():
                    cause = f"a vaulted vars file cannot be decrypted: {VAULT_HINT}"
                name, data = host.name, {REFUSED: f"its variables cannot be read: {cause}"}
            translated[host.name] = (name, data)
        groups: dict[str, tuple[list, dict]] = {}
        for group in inventory.groups.values():
            members = [translated[h.name] for h in group.get_hosts() if h.name in translated]
            if members:
                groups[group.name] = (members, {})
    if not translated:
        raise AnsibleInventoryError(f"inventory {label} has no host")
    return groups


def make_inventory(path: str, cwd: str | None = None):
    """A pyinfra Inventory for any inventory orthanc-harden accepts: pyinfra's own forms, or an Ansible one."""
    if not is_ansible(path):
        from pyinfra_cli.inventory import make_inventory as pyinfra_inventory

        return pyinfra_inventory(path, cwd=cwd)
    from pyinfra.api import Inventory

    groups = load(path)
    everyone = {name: data for members, _ in groups.values() for name, data in members}
    groups.pop("all", None)
    return Inventory((list(everyone.items()), {}), all=(list(everyone), {}), **groups)


def inventory() -> dict:
    """For the pyinfra CLI: the Ansible inventory that ``ANSIBLE_INVENTORY`` names (comma-separated sources).

    The pyinfra CLI connects to every host before any deploy code runs, so a refused host is left out here, with
    a warning line naming it and the cause; orthanc-harden's own commands keep it as a failed row instead."""
    import logging

    sources = [s for s in os.environ.get("ANSIBLE_INVENTORY", "").split(",") if s.strip()]
    if not sources:
        raise AnsibleInventoryError("set ANSIBLE_INVENTORY to the Ansible inventory to read")
    groups = load([str(Path(s.strip()).expanduser()) for s in sources])
    refused = {name: data[REFUSED] for members, _ in groups.values() for name, data in members if REFUSED in data}
    for name, line in sorted(refused.items()):
        logging.getLogger("pyinfra").warning(f"[{name}] left out: {line}")
    return {group: ([(n, d) for n, d in members if n not in refused], data)
            for group, (members, data) in groups.items()}
