"""Issue #19: Ansible inventories as they are. An INI and a YAML inventory of the lab (group_vars/, host_vars/, a
vaulted users reference, a host reached as a sudo user with `ansible_become`) audit and remediate the same hosts with
the same verdicts as the pyinfra inventory; `--limit GROUP`; refused variables fail their host alone, in one line,
without contacting it; the vault password and the vaulted value never show.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import docker
import pytest

from tests.conftest import ROOT, run_cli
from tests.integration import variants
from tests.integration.conftest import fresh_lab, output_of, ssh_to

pytestmark = pytest.mark.lab

# A lab of its own on free ports below the ephemeral range the lab refuses; OH_TEST_ANSINV_LAB and
# OH_TEST_ANSINV_PORT_BASE move it.
LAB = os.environ.get("OH_TEST_ANSINV_LAB", "pytest-ansinv")
PORT_BASE = int(os.environ.get("OH_TEST_ANSINV_PORT_BASE", "16200"))
ENGINE = f"@dockerengine/{LAB}-engine"
CANARY = "Canary-ansible-5e0d,}x"
VAULT_PASSWORD = "Vault-pw-canary-3a7c"
VAULTED_TOKEN = "vaulted-ref-b61f"  # only in the vaulted reference: the path of the users file


def _vaulted(text: str) -> str:
    from ansible.parsing.vault import VaultLib, VaultSecret

    blob = VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))]).encrypt(text).decode()
    return "!vault |\n" + textwrap.indent(blob, "  ")


def _write_ansible_inventories(data: dict, work, users) -> dict:
    """One set of group_vars/ and host_vars/ beside an INI and beside a YAML inventory, as sites keep them."""
    pkg1, pkg2 = data["hosts"]
    common = {
        "all.yml": f"orthanc_harden_users_ref: {_vaulted(f'file:{users}')}\n"
                   "ansible_python_interpreter: auto_silent\n",
        "package_hosts.yml": textwrap.dedent(f"""\
            ansible_host: 127.0.0.1
            ansible_user: root
            ansible_ssh_private_key_file: {data['ssh_key']}
            ansible_ssh_common_args: >-
              -o UserKnownHostsFile={data['known_hosts']} -o StrictHostKeyChecking=yes
              -o ControlMaster=auto -o ControlPersist=60s
            orthanc_harden_firewall_enable: true
            orthanc_harden_allowed_cidrs: ["{data['subnet']}"]
            orthanc_harden_probe_url: "http://127.0.0.1:{{{{ http_port }}}}"
            """),
        "engines.yml": textwrap.dedent(f"""\
            ansible_connection: local
            orthanc_harden_docker_url: {data['docker_host']}
            orthanc_harden_docker_filters: {{label: "orthanc-harden.lab={LAB}"}}
            orthanc_harden_probe_urls:
              {data['containers'][0]['container']}: "http://127.0.0.1:{data['containers'][0]['http_port']}"
            """),
    }
    host_vars = {
        pkg1["name"]: f"ansible_user: deploy\nansible_become: yes\nhttp_port: {pkg1['http_port']}\n",
        pkg2["name"]: f"http_port: {pkg2['http_port']}\n",
    }
    ini = textwrap.dedent(f"""\
        [pacs]
        {pkg1['name']} ansible_port={pkg1['ssh_port']}

        [research]
        {pkg2['name']} ansible_port={pkg2['ssh_port']}

        [package_hosts:children]
        pacs
        research

        [engines]
        {LAB}-engine
        """)
    yaml = textwrap.dedent(f"""\
        all:
          children:
            package_hosts:
              children:
                pacs:
                  hosts:
                    {pkg1['name']}:
                      ansible_port: {pkg1['ssh_port']}
                research:
                  hosts:
                    {pkg2['name']}:
                      ansible_port: {pkg2['ssh_port']}
            engines:
              hosts:
                {LAB}-engine:
        """)
    paths = {}
    for kind, name, text in (("ini", "hosts.ini", ini), ("yaml", "hosts.yml", yaml)):
        directory = work / kind
        for sub, files in (("group_vars", common), ("host_vars", {f"{k}.yml": v for k, v in host_vars.items()})):
            (directory / sub).mkdir(parents=True)
            for file, content in files.items():
                (directory / sub / file).write_text(content)
        (directory / name).write_text(text)
        paths[kind] = str(directory / name)
    return paths


PYINFRA_INVENTORY = """
import json, os
from orthanc_harden.lab.inventory import groups
_lab = groups(os.environ["ORTHANC_HARDEN_LAB"])
_extra = json.loads(os.environ["OH_TEST_DATA"])
package_hosts = [(name, {**data, **_extra.get(name, {})}) for name, data in _lab["package_hosts"]]
container_engines = _lab["container_engines"]
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    data = fresh_lab(LAB, 2, 1, PORT_BASE)
    work = tmp_path_factory.mktemp("ansinv")
    (work / VAULTED_TOKEN).mkdir()
    users = work / VAULTED_TOKEN / "users.json"
    users.write_text(json.dumps({"radiology": CANARY}))
    users.chmod(0o600)
    password_file = work / "vault-password"
    password_file.write_text(VAULT_PASSWORD + "\n")
    password_file.chmod(0o600)
    client = ssh_to(data, data["hosts"][0])
    try:
        variants.sudo_login(client)  # the first host is reached as `deploy` with sudo, as fleets are
    finally:
        client.close()
    pyinfra_inventory = work / "pyinfra_inventory.py"
    pyinfra_inventory.write_text(PYINFRA_INVENTORY)
    data.update(work=work, paths=_write_ansible_inventories(data, work, users), pyinfra=str(pyinfra_inventory),
                env={"ORTHANC_HARDEN_LAB": LAB, "ORTHANC_HARDEN_LAB_USERS_REF": f"file:{users}",
                     "OH_TEST_DATA": json.dumps({data["hosts"][0]["name"]: {"ssh_user": "deploy", "_sudo": True}}),
                     "ANSIBLE_VAULT_PASSWORD_FILE": str(password_file)})
    yield data
    run_cli("lab", "down", "--lab", LAB)


def _run(fleet, command: str, inventory: str, *args: str, env: dict | None = None) -> tuple[int, str, dict]:
    report = fleet["work"] / "report.json"
    report.unlink(missing_ok=True)
    proc = run_cli(command, inventory, "--json", str(report), *args, env={**fleet["env"], **(env or {})},
                   timeout=1200)
    output = proc.stdout + proc.stderr
    text = report.read_text() if report.exists() else ""
    for channel in (output, text):
        for secret in (CANARY, VAULT_PASSWORD, VAULTED_TOKEN):
            assert secret not in channel, f"{secret!r} leaked"
    assert "Traceback" not in output, output[-3000:]
    return proc.returncode, output, json.loads(text) if text else {}


def _audit_verdicts(report: dict) -> dict:
    return {(r["host"], r["instance"]): (r["status"], sorted(f["id"] for f in r["findings"] if f["status"] == "fail"))
            for r in report["instances"]}


def _remediate_verdicts(report: dict) -> dict:
    return {r["host"]: (r["status"], sorted(r["changes"]), r["audit"]) for r in report["hosts"]}


def _container_started(fleet) -> str:
    engine = docker.from_env()
    try:
        return engine.api.inspect_container(fleet["containers"][0]["container"])["State"]["StartedAt"]
    finally:
        engine.close()


def _pids(fleet) -> list[str]:
    return [output_of(fleet, i, "systemctl show -p MainPID --value orthanc").strip() for i in range(2)]


def test_without_the_vault_password_the_hosts_needing_it_fail_in_one_line(fleet):
    code, output, report = _run(fleet, "audit", fleet["paths"]["ini"], env={"ANSIBLE_VAULT_PASSWORD_FILE": ""})
    assert code == 2, output[-3000:]
    assert {r["status"] for r in report["instances"]} == {"failed"}
    line = ("host data: orthanc_harden_users_ref is vaulted and cannot be decrypted: set ANSIBLE_VAULT_PASSWORD_FILE "
            "or ORTHANC_HARDEN_VAULT_PASSWORD to its vault password")
    assert {r["reason"] for r in report["instances"]} == {line}


def test_refused_variables_fail_their_host_alone_without_contacting_it(fleet):
    """Refused hosts are named by loopback addresses and carry no connection data: contacting one would show as an
    `unreachable` row instead of the refusal, without any traffic leaving this machine."""
    pkg2 = fleet["hosts"][1]
    inventory = fleet["work"] / "ini" / "refused.ini"
    inventory.write_text(textwrap.dedent(f"""\
        [research]
        {pkg2['name']} ansible_port={pkg2['ssh_port']}

        [refused]
        127.0.0.2 ansible_connection=winrm
        127.0.0.3 ansible_become=yes ansible_become_password="{CANARY}"
        127.0.0.4 ansible_ssh_common_args="-o ProxyJump=bastion.example.org"

        [package_hosts:children]
        research
        """))
    lines = {
        "127.0.0.2": "host data: ansible_connection=winrm is refused: orthanc-harden reaches hosts over SSH only",
        "127.0.0.3": "host data: ansible_become_password: a sudo password is not used (pyinfra hands it to the host "
                     "on a command line, visible to `ps`): give the login password-less sudo",
        "127.0.0.4": "host data: ansible_ssh_common_args: -o proxyjump is not mapped: put it in ~/.ssh/config or a "
                     "file given with -F, which pyinfra reads",
    }
    code, output, report = _run(fleet, "audit", str(inventory))
    assert code == 2, output[-3000:]
    rows = {r["host"]: r for r in report["instances"]}
    assert {name: rows[name]["reason"] for name in lines} == lines
    assert rows[pkg2["name"]]["status"] == "findings", rows[pkg2["name"]]  # the other host is audited as usual
    for fragment in ("ansible_connection=winrm", "ansible_become_password:", "-o proxyjump"):
        assert fragment in output  # the table names the cause

    code, output, report = _run(fleet, "remediate", str(inventory), "--dry")
    assert code == 2, output[-3000:]
    rows = {r["host"]: r for r in report["hosts"]}
    assert {name: rows[name]["reason"] for name in lines} == lines
    assert rows[pkg2["name"]]["status"] == "would-change", rows[pkg2["name"]]


def test_a_store_error_names_the_vaulted_reference_without_showing_it(fleet):
    pkg2 = fleet["hosts"][1]
    directory = fleet["work"] / "missing"
    (directory / "group_vars").mkdir(parents=True)
    missing = fleet["work"] / VAULTED_TOKEN / "no-such-users.json"
    (directory / "group_vars" / "all.yml").write_text(f"orthanc_harden_users_ref: {_vaulted(f'file:{missing}')}\n")
    shutil.copytree(fleet["work"] / "ini" / "host_vars", directory / "host_vars")
    shutil.copy(fleet["work"] / "ini" / "group_vars" / "package_hosts.yml", directory / "group_vars")
    (directory / "hosts.ini").write_text(f"[package_hosts]\n{pkg2['name']} ansible_port={pkg2['ssh_port']}\n")
    code, output, report = _run(fleet, "remediate", str(directory / "hosts.ini"), "--dry")
    assert code == 2, output[-3000:]
    [row] = report["hosts"]
    assert row["status"] == "failed" and "orthanc_harden_users_ref (vaulted): No such file or directory" in \
        row["reason"], row


def test_ansible_inventories_audit_and_plan_as_the_pyinfra_inventory_does(fleet):
    verdicts = {}
    for kind in ("pyinfra", "ini", "yaml"):
        code, output, report = _run(fleet, "audit", fleet[kind] if kind == "pyinfra" else fleet["paths"][kind])
        assert code == 1, output[-3000:]
        verdicts[kind] = _audit_verdicts(report)
    hosts = {host for host, _ in verdicts["pyinfra"]}
    assert hosts == {fleet["hosts"][0]["name"], fleet["hosts"][1]["name"], ENGINE}
    assert verdicts["ini"] == verdicts["pyinfra"] == verdicts["yaml"]
    assert all(status == "findings" for status, _ in verdicts["pyinfra"].values()), verdicts["pyinfra"]

    plans = {}
    for kind in ("pyinfra", "ini"):
        code, output, report = _run(fleet, "remediate", fleet[kind] if kind == "pyinfra" else fleet["paths"][kind],
                                    "--dry")
        assert code == 1, output[-3000:]
        plans[kind] = _remediate_verdicts(report)
    assert plans["ini"] == plans["pyinfra"]
    assert {status for status, _, _ in plans["ini"].values()} == {"would-change"}


def test_limit_by_an_ansible_group(fleet):
    code, output, report = _run(fleet, "audit", fleet["paths"]["yaml"], "--limit", "research")
    assert {r["host"] for r in report["instances"]} == {fleet["hosts"][1]["name"]}, output[-2000:]
    code, output, report = _run(fleet, "audit", fleet["paths"]["ini"], "--limit", "package_hosts")
    assert {r["host"] for r in report["instances"]} == {h["name"] for h in fleet["hosts"]}, output[-2000:]


def test_remediate_with_ansible_inventories_then_nothing_to_do(fleet):
    code, output, report = _run(fleet, "remediate", fleet["paths"]["ini"], "-v")
    assert code == 0, output[-3000:]
    first = _remediate_verdicts(report)
    assert {status for status, _, _ in first.values()} == {"changed"}, first
    assert set(first) == {fleet["hosts"][0]["name"], fleet["hosts"][1]["name"], ENGINE}
    pkg1_changes = first[fleet["hosts"][0]["name"]][1]
    assert any(c.startswith("auth: authentication on") for c in pkg1_changes), pkg1_changes  # done through sudo
    assert any(c.startswith("firewall: Orthanc ports restricted") for c in pkg1_changes), pkg1_changes

    pids, started = _pids(fleet), _container_started(fleet)
    second = {}
    for kind in ("yaml", "pyinfra", "ini"):
        code, output, report = _run(fleet, "remediate", fleet[kind] if kind == "pyinfra" else fleet["paths"][kind])
        assert code == 0, output[-3000:]
        second[kind] = _remediate_verdicts(report)
        assert all(status == "compliant" and changes == [] for status, changes, _ in second[kind].values()), second
    assert second["yaml"] == second["pyinfra"] == second["ini"]
    assert _pids(fleet) == pids and _container_started(fleet) == started, "a second run must restart nothing"

    audits = [_audit_verdicts(_run(fleet, "audit", inventory)[2])
              for inventory in (fleet["pyinfra"], fleet["paths"]["ini"], fleet["paths"]["yaml"])]
    assert audits[0] == audits[1] == audits[2]
    assert {status for status, _ in audits[0].values()} == {"compliant"}


def test_the_scheduled_run_takes_an_ansible_inventory(fleet):
    reports = fleet["work"] / "reports"
    proc = run_cli("scheduled-run", "remediate", fleet["paths"]["yaml"], "--report-dir", str(reports),
                   env=fleet["env"], timeout=1200)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "orthanc-harden remediate: 3 compliant; exit 0" in output, output[-3000:]
    [report] = reports.glob("remediate-*.json")
    rows = json.loads(report.read_text())["hosts"]
    assert {r["host"] for r in rows} == {fleet["hosts"][0]["name"], fleet["hosts"][1]["name"], ENGINE}
    for channel in (output, report.read_text()):
        assert CANARY not in channel and VAULT_PASSWORD not in channel and VAULTED_TOKEN not in channel


@pytest.mark.parametrize("form", ["orthanc_harden.ansible_inventory.inventory", "inventories/from_ansible.py"])
def test_the_pyinfra_cli_reads_an_ansible_inventory(fleet, form):
    pyinfra = shutil.which("pyinfra", path=os.path.dirname(sys.executable))
    env = {**os.environ, **fleet["env"], "PYTHONPATH": str(ROOT), "ANSIBLE_INVENTORY": fleet["paths"]["yaml"]}
    proc = subprocess.run([pyinfra, "-y", form, "--limit", "package_hosts",
                           "exec", "--", "echo", "login=$SUDO_USER", "uid=$(id -u)"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    said = {m[0]: m[1] for m in re.findall(r"^\[([\w-]+)\]\s+(login=\S* uid=\d+)$", output, re.M)}
    assert said == {fleet["hosts"][0]["name"]: "login=deploy uid=0",  # became root from the deploy login
                    fleet["hosts"][1]["name"]: "login= uid=0"}, output[-3000:]
    assert ENGINE not in output
    assert VAULT_PASSWORD not in output and VAULTED_TOKEN not in output
