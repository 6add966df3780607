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
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    from orthanc_harden import settings
    from tests.conftest import ROOT

    with ctx_state.use(State(check_for_changes=False)):  # as the CLI and `orthanc-harden audit` load it
        inventory = make_inventory(str(ROOT / "inventories/example.py"), cwd=str(ROOT))
    hosts = list(inventory)
    assert {h.name for h in hosts} >= {"pacs-01.example.org", "research-orthanc.example.org", "docker-02.example.org"}
    for host in hosts:
        assert settings.validate(host.data) == [], host.name
    research = inventory.get_host("research-orthanc.example.org")
    assert settings.waived_controls(research.data) == {
        "firewall": "reachable only through the nginx proxy on the same host (CHG-2210)"}
