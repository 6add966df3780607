"""Issue #19: Ansible inventories as they are. Ansible variables in, pyinfra host data out; real files read by
ansible-core (INI, YAML, group_vars/, host_vars/, !vault)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from orthanc_harden import ansible_inventory, settings
from orthanc_harden.ansible_inventory import REFUSED, translate
from tests.conftest import ROOT

VAULT_PASSWORD = "Vault-Canary-pw-4d1e"
VAULTED = "file:/srv/vaulted-canary-77b0/users.json"


@pytest.mark.parametrize("variables, expected", [
    ({"ansible_host": "10.0.0.5", "ansible_port": 2222, "ansible_user": "deploy"},
     {"ssh_hostname": "10.0.0.5", "ssh_port": 2222, "ssh_user": "deploy"}),
    ({"ansible_ssh_host": "10.0.0.5", "ansible_ssh_port": "2222", "ansible_ssh_user": "deploy"},
     {"ssh_hostname": "10.0.0.5", "ssh_port": 2222, "ssh_user": "deploy"}),
    ({"ansible_ssh_private_key_file": "/etc/oh/id_ed25519"}, {"ssh_key": "/etc/oh/id_ed25519"}),
    ({"ansible_private_key_file": "~/k"}, {"ssh_key": os.path.expanduser("~/k")}),
    ({"ansible_become": "yes"}, {"_sudo": True}),
    ({"ansible_become": True, "ansible_become_user": "orthanc"}, {"_sudo": True, "_sudo_user": "orthanc"}),
    ({"ansible_become": True, "ansible_become_user": "root", "ansible_become_method": "sudo"}, {"_sudo": True}),
    ({"ansible_become": False, "ansible_become_user": "orthanc"}, {}),
    ({"ansible_become": True, "ansible_become_flags": "-H -S -n -i"}, {"_sudo": True, "_use_sudo_login": True}),
    ({"ansible_connection": "ssh"}, {}),
    ({"ansible_connection": "smart", "ansible_pipelining": True, "ansible_timeout": 30}, {}),
    ({"ansible_host_key_checking": False}, {"ssh_strict_host_key_checking": "no"}),
    ({"ansible_ssh_common_args": "-o UserKnownHostsFile=/etc/oh/known_hosts -o StrictHostKeyChecking=yes "
                                "-o ControlMaster=auto -o ControlPersist=60s"},
     {"ssh_known_hosts_file": "/etc/oh/known_hosts", "ssh_strict_host_key_checking": "yes"}),
    ({"ansible_ssh_extra_args": "-oStrictHostKeyChecking=accept-new -F /etc/oh/ssh_config -o ForwardAgent=no"},
     {"ssh_strict_host_key_checking": "accept-new", "ssh_config_file": "/etc/oh/ssh_config",
      "ssh_forward_agent": False}),
    ({"ansible_ssh_retries": 3, "ansible_python_interpreter": "/usr/bin/python3"}, {"ssh_connect_retries": 3}),
    ({"orthanc_harden_min_version": "1.12.0", "unrelated_role_var": 1}, {"orthanc_harden_min_version": "1.12.0"}),
])
def test_connection_variables_map_to_pyinfra_data(variables, expected):
    assert translate("pacs-01", variables) == ("pacs-01", expected)


@pytest.mark.parametrize("variables, line", [
    ({"ansible_connection": "winrm"}, "ansible_connection=winrm is refused: orthanc-harden reaches hosts over SSH"),
    ({"ansible_connection": "local"}, "ansible_connection=local is refused"),
    ({"ansible_connection": "community.docker.docker"}, "ansible_connection=community.docker.docker is refused"),
    ({"ansible_become": True, "ansible_become_method": "su"}, "ansible_become_method=su is refused"),
    ({"ansible_become": True, "ansible_become_flags": "-s"}, "ansible_become_flags: -s is not mapped"),
    ({"ansible_become_exe": "/usr/local/bin/pbrun"}, "ansible_become_exe=/usr/local/bin/pbrun is refused"),
    ({"ansible_python_interpreter": "/usr/libexec/platform-python"}, "runs python3 from the PATH"),
    ({"ansible_shell_type": "csh"}, "ansible_shell_type=csh is refused"),
    ({"ansible_ssh_common_args": "-o ProxyJump=bastion"}, "-o proxyjump is not mapped: put it in ~/.ssh/config"),
    ({"ansible_ssh_common_args": "-o ProxyCommand='ssh -W %h:%p bastion'"}, "-o proxycommand is not mapped"),
    ({"ansible_ssh_extra_args": "-J bastion"}, "-J is not mapped"),
    ({"ansible_ssh_common_args": "-o Port=2200"}, "ansible_ssh_common_args: -o port is not mapped"),
    ({"ansible_ssh_common_args": "-o UserKnownHostsFile='/a /b'"}, "UserKnownHostsFile with several files"),
    ({"ansible_ssh_common_args": "-o StrictHostKeyChecking=maybe"}, "StrictHostKeyChecking=maybe is not one of"),
    ({"ansible_host": "a", "ansible_ssh_host": "b"}, "ansible_host and ansible_ssh_host differ"),
    ({"ansible_port": "ssh"}, "ansible_port='ssh' is not a port number"),
    ({"ansible_become": "perhaps"}, "ansible_become='perhaps' is not a boolean"),
    ({"ansible_winrm_transport": "ntlm"}, "ansible_winrm_transport is not understood by orthanc-harden"),
])
def test_a_variable_that_would_change_meaning_refuses_the_host_in_one_line(variables, line):
    name, data = translate("pacs-01", {"ansible_host": "10.0.0.5", **variables} if "ansible_ssh_host" not in
                           variables else variables)
    assert set(data) == {REFUSED}, data  # no connection data: the host is never contacted
    assert line in data[REFUSED] and "\n" not in data[REFUSED]
    assert settings.validate(data)[0] == data[REFUSED]


@pytest.mark.parametrize("name", ["ansible_password", "ansible_ssh_pass", "ansible_become_password",
                                  "ansible_become_pass"])
def test_passwords_are_refused_without_being_repeated(name):
    _, data = translate("pacs-01", {name: VAULT_PASSWORD})
    assert data[REFUSED].startswith(f"{name}: ") and VAULT_PASSWORD not in data[REFUSED]


def test_an_engine_host_becomes_a_dockerengine_host_and_may_be_local():
    name, data = translate("docker-01", {"ansible_connection": "local",
                                         "orthanc_harden_docker_url": "unix:///var/run/docker.sock"})
    assert name == "@dockerengine/docker-01"
    assert data == {"orthanc_harden_docker_url": "unix:///var/run/docker.sock"}


def _vaulted(text: str, password: str = VAULT_PASSWORD) -> str:
    from ansible.parsing.vault import VaultLib, VaultSecret

    blob = VaultLib([("default", VaultSecret(password.encode()))]).encrypt(text).decode()
    return "!vault |\n" + textwrap.indent(blob, "  ")


def _inventory(tmp_path, kind: str):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text(
        "ansible_user: root\northanc_harden_min_version: '1.10.0'\nsite: north\n")
    (tmp_path / "group_vars" / "pacs.yml").write_text(
        f"orthanc_harden_users_ref: {_vaulted(VAULTED)}\northanc_harden_min_version: '1.12.0'\n"
        "orthanc_harden_probe_url: 'http://{{ ansible_host }}:8042'\n")
    (tmp_path / "host_vars" / "pacs-02.yml").write_text(
        "ansible_user: deploy\nansible_become: true\northanc_harden_min_version: '1.12.4'\n")
    if kind == "ini":
        path = tmp_path / "hosts.ini"
        path.write_text(textwrap.dedent("""\
            [pacs]
            pacs-01 ansible_host=10.0.0.1 ansible_port=2201
            pacs-02 ansible_host=10.0.0.2

            [research]
            research-01 ansible_host=10.0.0.3 orthanc_harden_firewall_backend=nftables

            [hospital:children]
            pacs
            research
            """))
    else:
        path = tmp_path / "hosts.yml"
        path.write_text(textwrap.dedent("""\
            all:
              children:
                hospital:
                  children:
                    pacs:
                      hosts:
                        pacs-01: {ansible_host: 10.0.0.1, ansible_port: 2201}
                        pacs-02: {ansible_host: 10.0.0.2}
                    research:
                      hosts:
                        research-01: {ansible_host: 10.0.0.3, orthanc_harden_firewall_backend: nftables}
            """))
    return path


@pytest.mark.parametrize("kind", ["ini", "yaml"])
def test_ansible_files_with_group_and_host_vars_and_a_vaulted_variable(tmp_path, kind, monkeypatch):
    for name in ("ORTHANC_HARDEN_VAULT_PASSWORD", "ANSIBLE_VAULT_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)
    path = _inventory(tmp_path, kind)
    inventory = ansible_inventory.make_inventory(str(path))
    hosts = {h.name: h for h in inventory}
    assert set(hosts) == {"pacs-01", "pacs-02", "research-01"}
    assert {h.name for h in inventory.get_group("pacs")} == {"pacs-01", "pacs-02"}
    assert {h.name for h in inventory.get_group("hospital")} == set(hosts)
    one, two, research = hosts["pacs-01"].data, hosts["pacs-02"].data, hosts["research-01"].data
    # Without the vault password the hosts that need the vaulted variable are refused, the other one is not.
    assert "vaulted and cannot be decrypted" in one.get(REFUSED, "") and VAULTED not in str(one.dict())
    assert two.get(REFUSED) == one.get(REFUSED)
    assert research.get(REFUSED) is None and research.ssh_hostname == "10.0.0.3"

    groups = ansible_inventory.load(str(path), environ={"ORTHANC_HARDEN_VAULT_PASSWORD": VAULT_PASSWORD})
    data = dict(groups["all"][0])
    assert data["pacs-01"] == {
        "ssh_hostname": "10.0.0.1", "ssh_port": 2201, "ssh_user": "root", "orthanc_harden_users_ref": VAULTED,
        "orthanc_harden_min_version": "1.12.0", "orthanc_harden_probe_url": "http://10.0.0.1:8042"}
    # host_vars over group_vars over all, as Ansible merges them
    assert data["pacs-02"]["ssh_user"] == "deploy" and data["pacs-02"]["_sudo"] is True
    assert data["pacs-02"]["orthanc_harden_min_version"] == "1.12.4"
    assert data["research-01"] == {"ssh_hostname": "10.0.0.3", "ssh_user": "root",
                                   "orthanc_harden_min_version": "1.10.0",
                                   "orthanc_harden_firewall_backend": "nftables"}
    plain = (str, int, bool, ansible_inventory.Vaulted)  # plain data for pyinfra
    assert all(type(v) in plain for d in data.values() for v in d.values())
    assert VAULT_PASSWORD not in repr(groups)

    wrong = ansible_inventory.load(str(path), environ={"ORTHANC_HARDEN_VAULT_PASSWORD": "not-it"})
    line = dict(wrong["all"][0])["pacs-01"][REFUSED]
    assert "orthanc_harden_users_ref is vaulted and cannot be decrypted" in line and "not-it" not in line


def test_the_password_file_of_the_ansible_vault_store_is_a_source_too(tmp_path):
    path = _inventory(tmp_path, "ini")
    secret = tmp_path / "vault-pass"
    secret.write_text(VAULT_PASSWORD + "\n")
    groups = ansible_inventory.load(str(path), environ={"ANSIBLE_VAULT_PASSWORD_FILE": str(secret)})
    assert dict(groups["pacs"][0])["pacs-01"]["orthanc_harden_users_ref"] == VAULTED


def test_detection_and_whole_inventory_errors(tmp_path):
    assert ansible_inventory.is_ansible(str(_inventory(tmp_path, "ini")))
    assert ansible_inventory.is_ansible(str(tmp_path))  # a directory of inventory files
    assert not ansible_inventory.is_ansible("inventories/example.py")
    assert not ansible_inventory.is_ansible("pacs-01,pacs-02")  # pyinfra's host list
    broken = tmp_path / "broken.yml"
    broken.write_text("all:\n  hosts: [\n")
    with pytest.raises(ansible_inventory.AnsibleInventoryError, match=r"inventory .*broken.yml does not load: "):
        ansible_inventory.load(str(broken))
    empty = tmp_path / "empty.ini"
    empty.write_text("[pacs]\n")
    with pytest.raises(ansible_inventory.AnsibleInventoryError, match="has no host"):
        ansible_inventory.load(str(empty))


def test_a_pyinfra_inventory_is_still_pyinfra_s():
    # In a child process: pyinfra_cli monkey-patches the whole interpreter when imported.
    probe = ("from pyinfra.api import State; from pyinfra.context import ctx_state; "
             "from orthanc_harden.ansible_inventory import make_inventory\n"
             "with ctx_state.use(State(check_for_changes=False)):\n"
             "    print(sorted(h.name for h in make_inventory('inventories/example.py', cwd='.')))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "'pacs-01.example.org'" in proc.stdout


def test_ansible_cfg_defaults_stand_in_for_unset_variables(tmp_path):
    """remote_user, private_key_file and become from ansible.cfg (here its ANSIBLE_* environment) apply as in
    Ansible; inventory variables still win."""
    path = _inventory(tmp_path, "ini")
    code = ("import json, sys; from orthanc_harden import ansible_inventory as a; "
            "environ = {'ORTHANC_HARDEN_VAULT_PASSWORD': sys.argv[2]}; "
            "print(json.dumps(dict(a.load(sys.argv[1], environ=environ)['all'][0])))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ANSIBLE_REMOTE_USER": "ops", "ANSIBLE_BECOME": "true",
           "ANSIBLE_PRIVATE_KEY_FILE": "/etc/oh/key", "ANSIBLE_HOST_KEY_CHECKING": "false"}
    (tmp_path / "group_vars" / "all.yml").write_text("orthanc_harden_min_version: '1.10.0'\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path), VAULT_PASSWORD], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr

    data = json.loads(proc.stdout)
    assert data["research-01"]["ssh_user"] == "ops" and data["research-01"]["ssh_key"] == "/etc/oh/key"
    assert data["research-01"]["_sudo"] is True and data["research-01"]["ssh_strict_host_key_checking"] == "no"
    assert data["pacs-02"]["ssh_user"] == "deploy"  # host_vars win over ansible.cfg


def test_without_ansible_core_one_line_says_what_to_install(tmp_path, monkeypatch):
    path = _inventory(tmp_path, "ini")
    monkeypatch.setitem(sys.modules, "ansible.inventory.manager", None)  # as if ansible-core were not installed
    with pytest.raises(ansible_inventory.AnsibleInventoryError) as err:
        ansible_inventory.load(str(path))
    assert str(err.value) == (f"inventory {path} is an Ansible inventory: install ansible-core to read it "
                              "(pip install 'orthanc-harden[ansible]')")


def test_the_pyinfra_cli_function_leaves_a_refused_host_out_and_names_it(tmp_path, monkeypatch, caplog):
    path = _inventory(tmp_path, "ini")
    with open(path, "a") as handle:
        handle.write("\n[windows]\nwin-01 ansible_connection=winrm\n")
    monkeypatch.setenv("ANSIBLE_INVENTORY", str(path))
    monkeypatch.setenv("ORTHANC_HARDEN_VAULT_PASSWORD", VAULT_PASSWORD)
    with caplog.at_level("WARNING", logger="pyinfra"):
        groups = ansible_inventory.inventory()
    assert {name for name, _ in groups["all"][0]} == {"pacs-01", "pacs-02", "research-01"}
    assert groups["windows"] == ([], {})
    assert "[win-01] left out: ansible_connection=winrm is refused" in caplog.text


def test_a_vaulted_group_vars_file(tmp_path):
    from ansible.parsing.vault import VaultLib, VaultSecret

    path = _inventory(tmp_path, "yaml")
    vault = VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))])
    (tmp_path / "group_vars" / "research.yml").write_bytes(
        vault.encrypt("orthanc_harden_firewall_backend: ufw\nansible_user: ops\n"))
    groups = ansible_inventory.load(str(path), environ={"ORTHANC_HARDEN_VAULT_PASSWORD": VAULT_PASSWORD})
    research = dict(groups["research"][0])["research-01"]
    assert research["ssh_user"] == "ops"
    assert research["orthanc_harden_firewall_backend"] == "nftables"  # the inventory's host variable wins
    wrong = dict(ansible_inventory.load(str(path), environ={"ORTHANC_HARDEN_VAULT_PASSWORD": "not-it"})["all"][0])
    assert wrong["research-01"] == {REFUSED: "its variables cannot be read: a vaulted vars file cannot be "
                                             "decrypted: set ANSIBLE_VAULT_PASSWORD_FILE or "
                                             "ORTHANC_HARDEN_VAULT_PASSWORD to its vault password"}
    assert wrong["pacs-01"][REFUSED].startswith("orthanc_harden_users_ref is vaulted")  # its own vaulted value


def test_the_scheduled_run_host_key_check_reads_an_ansible_inventory(tmp_path):
    from orthanc_harden import hostkeys

    path = _inventory(tmp_path, "ini")
    (tmp_path / "host_vars" / "research-01.yml").write_text(
        "ansible_ssh_common_args: -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/etc/oh/known_hosts\n")
    assert hostkeys.unverified_ssh_hosts(str(path)) == ["pacs-01", "pacs-02"]


def test_a_vaulted_users_reference_is_named_not_shown_in_a_store_s_message(tmp_path):
    from orthanc_harden.secrets import SecretError, resolve_users

    path = _inventory(tmp_path, "ini")
    groups = ansible_inventory.load(str(path), environ={"ORTHANC_HARDEN_VAULT_PASSWORD": VAULT_PASSWORD})
    ref = dict(groups["pacs"][0])["pacs-01"]["orthanc_harden_users_ref"]
    assert ref == VAULTED and ref.startswith("file:")  # the value itself, for the store
    with pytest.raises(SecretError) as err:  # the file does not exist
        resolve_users(ref, environ={})
    assert str(err.value) == "orthanc_harden_users_ref (vaulted): No such file or directory"
    assert "vaulted-canary" not in f"{ref} {ref!r} {str(ref)} %s" % ref
    import copy

    assert copy.deepcopy(ref) == VAULTED and str(copy.deepcopy(ref)) == "orthanc_harden_users_ref (vaulted)"


def test_cached_facts_are_not_connection_variables(tmp_path):
    """With a fact cache (fact_caching = jsonfile), Ansible hands facts back as ansible_* variables."""
    path = _inventory(tmp_path, "ini")
    code = textwrap.dedent("""\
        import json, sys
        from orthanc_harden import ansible_inventory as a
        a._require_ansible(sys.argv[1])
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.vars.manager import VariableManager
        loader = DataLoader()  # the facts a playbook's setup would have cached for the host
        VariableManager(loader=loader, inventory=InventoryManager(loader=loader, sources=[sys.argv[1]])) \\
            .set_host_facts("research-01", {"ansible_distribution": "Debian", "ansible_python": {"version": {}}})
        print(json.dumps(dict(a.load(sys.argv[1], environ={})["all"][0])["research-01"]))
        """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ANSIBLE_CACHE_PLUGIN": "jsonfile",
           "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / "facts")}
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(tmp_path / "facts"), "the facts were cached"
    assert json.loads(proc.stdout) == {"ssh_hostname": "10.0.0.3", "ssh_user": "root",
                                       "orthanc_harden_min_version": "1.10.0",
                                       "orthanc_harden_firewall_backend": "nftables"}


def test_a_directory_of_inventory_files(tmp_path):
    _inventory(tmp_path, "ini")
    (tmp_path / "more.yml").write_text("all:\n  children:\n    dmz:\n      hosts:\n"
                                       "        dmz-01: {ansible_port: 2202}\n")
    groups = ansible_inventory.load(str(tmp_path), environ={"ORTHANC_HARDEN_VAULT_PASSWORD": VAULT_PASSWORD})
    assert {name for name, _ in groups["all"][0]} == {"pacs-01", "pacs-02", "research-01", "dmz-01"}
    assert dict(groups["dmz"][0])["dmz-01"] == {"ssh_port": 2202, "ssh_user": "root",
                                                "orthanc_harden_min_version": "1.10.0"}


@pytest.mark.parametrize("use", ["store", "inventory"])
def test_ansible_core_under_gevent_prints_no_traceback(tmp_path, use):
    """The CLI patches sockets for gevent before anything imports ansible-core, whose import-time probe of
    getaddrinfo then failed in a gevent worker thread, printed as a traceback among the tables."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    store = tmp_path / "vault.yml"
    store.write_bytes(VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))]).encrypt('{"u": "p-4a"}'))
    path = _inventory(tmp_path, "ini")
    work = (f"from orthanc_harden.secrets import resolve_users; resolve_users('ansible-vault:{store}', "
            f"environ={{'ORTHANC_HARDEN_VAULT_PASSWORD': '{VAULT_PASSWORD}'}})" if use == "store" else
            f"from orthanc_harden.ansible_inventory import load; load('{path}', environ={{}})")
    code = f"from gevent import monkey; monkey.patch_all()\n{work}\nprint('done')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr
    assert proc.stderr == "", proc.stderr
