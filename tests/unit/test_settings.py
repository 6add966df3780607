"""Settings: defaults in one place, validation lines, and the README table generated from the code."""

from __future__ import annotations

from pathlib import Path

from orthanc_harden import settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_come_from_one_place_and_are_copies():
    assert settings.get({}, "orthanc_harden_min_version") == "1.5.8"
    first = settings.get({}, "orthanc_harden_allowed_cidrs")
    first.append("10.0.0.0/8")
    assert settings.get({}, "orthanc_harden_allowed_cidrs") == []
    assert settings.get({"orthanc_harden_users_mode": "merge"}, "orthanc_harden_users_mode") == "merge"


def test_validation_lines():
    assert settings.validate({}) == []
    assert settings.validate({"orthanc_harden_users_mode": "replace"}) == [
        "orthanc_harden_users_mode must be 'exact' or 'merge'"]
    assert settings.validate({"orthanc_harden_firewall_enabled": False}) == [
        "control 'firewall' is switched off without a reason in orthanc_harden_waivers"]
    assert settings.validate({"orthanc_harden_firewall_enabled": False,
                              "orthanc_harden_waivers": {"firewall": "hospital edge firewall (NET-88)"}}) == []
    assert settings.validate({"orthanc_harden_waivers": {"ORTH-102": " "}}) == [
        "orthanc_harden_waivers['ORTH-102'] needs a written reason"]
    assert settings.validate({"orthanc_harden_waivers": {"ORTH-999": "x"}}) == [
        "orthanc_harden_waivers names 'ORTH-999', which is neither a control nor a finding ID"]
    assert settings.validate({"orthanc_harden_allowed_cidrs": "10.0.0.0/8"}) == [
        "orthanc_harden_allowed_cidrs must be a list, not str"]


def test_readme_settings_table_is_generated_from_the_code():
    text = README.read_text()
    start = text.index(settings.BEGIN) + len(settings.BEGIN) + 1
    end = text.index(settings.END)
    assert text[start:end] == settings.markdown_table(), "run: python -m orthanc_harden.settings --update-readme"


def test_example_inventory_loads_and_every_host_passes_validation():
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    # In a child process: loading an inventory imports pyinfra_cli, which monkey-patches the whole interpreter.
    probe = """
import json
from pyinfra.api import State
from pyinfra.context import ctx_state
from pyinfra_cli.inventory import make_inventory
from orthanc_harden import settings
with ctx_state.use(State(check_for_changes=False)):
    inventory = make_inventory("inventories/example.py", cwd=".")
print(json.dumps({h.name: [settings.validate(h.data), settings.waived_controls(h.data)] for h in inventory}))
"""
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    hosts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(hosts) >= {"pacs-01.example.org", "research-orthanc.example.org", "@dockerengine/docker-02"}
    assert all(problems == [] for problems, _ in hosts.values()), hosts
    assert hosts["research-orthanc.example.org"][1] == {
        "firewall": "reachable only through the nginx proxy on the same host (CHG-2210)"}
