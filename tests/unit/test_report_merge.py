"""Issue #21: `report merge` makes one answer of several runs' reports, or refuses with one line; reports are built
by the commands' own report functions, as the runs write them."""

from __future__ import annotations

import json
import time

import pytest

from orthanc_harden import __version__
from orthanc_harden.runs import audit, remediate
from orthanc_harden.runs.report_merge import MergeError, merge
from orthanc_harden.runs.shard import Shard, selection_digest, shard_of
from tests.conftest import run_cli

FLEET = [f"pacs-{i:02}" for i in range(12)]
INVENTORY_SHA = "a" * 64


def _chosen(shard: Shard | None, hosts=FLEET, inventory_sha=INVENTORY_SHA) -> dict:
    return {"inventory_sha256": inventory_sha, "limit": [], "selected_hosts": sorted(hosts),
            "selection_sha256": selection_digest(hosts), "shard": shard.as_dict() if shard else None}


def _remediation_row(host: str, status: str = "compliant") -> dict:
    return {"host": host, "status": status, "reason": "" if status == "compliant" else "why", "changes": [],
            "waived": {}, "audit": []}


def _audit_row(host: str, compliant: bool = True) -> dict:
    return {"host": host, "instance": "orthanc", "kind": "package", "status": "compliant" if compliant else
            "findings", "reason": "", "findings": [], "compliant": compliant}


def _shard_reports(statuses: dict[str, str] | None = None, count: int = 3, dry: bool = False, **chosen) -> list:
    statuses = statuses or {}
    reports = []
    for index in range(1, count + 1):
        shard = Shard(index, count)
        rows = [_remediation_row(h, statuses.get(h, "compliant")) for h in shard.select(FLEET)]
        reports.append((f"shard-{index}.json", remediate.report(rows, "/config/fleet.py", time.time(), dry,
                                                                _chosen(shard, **chosen))))
    return reports


def _hosts(merged: dict) -> dict[str, str]:
    return {row["host"]: row["status"] for row in merged["hosts"]}


def test_shards_merge_into_what_one_run_says():
    statuses = {"pacs-03": "changed", "pacs-07": "not-compliant"}
    reports = _shard_reports(statuses)
    merged = merge(reports)
    single = remediate.report([_remediation_row(h, statuses.get(h, "compliant")) for h in FLEET], "/config/fleet.py",
                              time.time(), False, _chosen(None))
    assert _hosts(merged) == {r["host"]: r["status"] for r in single["hosts"]}
    assert merged["exit_code"] == single["exit_code"] == max(r["exit_code"] for _, r in reports) == 1
    assert merged["summary"] == single["summary"] and merged["problems"] == []
    # Each run's metadata is kept, rows point at their run.
    assert [run["file"] for run in merged["runs"]] == ["shard-1.json", "shard-2.json", "shard-3.json"]
    assert [run["shard"] for run in merged["runs"]] == [{"index": i, "count": 3} for i in (1, 2, 3)]
    assert all(run["control_node"] and run["started"] and "hosts" not in run for run in merged["runs"])
    assert all(merged["runs"][row["run"]]["shard"]["index"] == shard_of(row["host"], 3) for row in merged["hosts"])


@pytest.mark.parametrize("statuses, code", [({}, 0), ({"pacs-01": "changed"}, 0), ({"pacs-05": "not-compliant"}, 1),
                                            ({"pacs-05": "not-compliant", "pacs-09": "failed"}, 2)])
def test_exit_status_is_the_worst_of_the_runs(statuses, code):
    assert merge(_shard_reports(statuses))["exit_code"] == code


def test_a_missing_shard_names_its_hosts_and_fails_them():
    reports = _shard_reports()
    merged = merge([reports[0], reports[2]])
    absent = sorted(h for h in FLEET if shard_of(h, 3) == 2)
    assert absent, "this fleet has hosts in shard 2"
    assert merged["problems"] == [f"{h} is in no report: shard 2/3 has no report" for h in absent]
    assert {h for h, s in _hosts(merged).items() if s == "failed"} == set(absent)
    assert merged["exit_code"] == 2


def test_a_host_in_two_reports_is_named():
    reports = _shard_reports()
    again = ("shard-1-retry.json", reports[0][1])
    merged = merge(reports + [again])
    first = sorted(h for h in FLEET if shard_of(h, 3) == 1)
    assert merged["problems"] == [f"{h} appears in 2 reports: shard-1.json, shard-1-retry.json" for h in first]
    assert merged["exit_code"] == 2


def test_reports_of_other_tool_versions_are_refused_unless_told():
    reports = _shard_reports()
    reports[1][1]["version"] = "0.0.9"
    with pytest.raises(MergeError, match="shard-2.json was written by orthanc-harden 0.0.9 and shard-1.json by "
                                         f"{__version__} \\(--allow-mixed"):
        merge(reports)
    assert merge(reports, allow_mixed=True)["exit_code"] == 0


def test_reports_of_other_inventories_are_refused_unless_told():
    site_a = _shard_reports(count=1)
    site_b = _shard_reports(count=1, inventory_sha="b" * 64)
    site_b[0][1]["inventory"] = "/config/site-b.py"
    with pytest.raises(MergeError, match="runs of different inventories"):
        merge(site_a + [("site-b.json", site_b[0][1])])
    merged = merge(site_a + [("site-b.json", site_b[0][1])], allow_mixed=True)
    assert merged["inventory"] == "/config/fleet.py, /config/site-b.py"


def test_one_inventory_mounted_at_two_paths_is_one_inventory():
    reports = _shard_reports()
    reports[1][1]["inventory"] = "/builds/fleet/inventory.py"
    assert merge(reports)["problems"] == []


def test_reports_without_an_inventory_digest_compare_by_path():
    old = [(p, {k: v for k, v in r.items() if k not in ("inventory_sha256", "shard", "selected_hosts",
                                                         "selection_sha256")}) for p, r in _shard_reports()]
    assert merge(old)["exit_code"] == 0
    old[2][1]["inventory"] = "other.py"
    with pytest.raises(MergeError, match="different inventories"):
        merge(old)


@pytest.mark.parametrize("allow_mixed", [False, True])
def test_audit_and_remediate_reports_are_never_one_table(allow_mixed):
    remediation = _shard_reports(count=1)[0]
    audited = ("audit.json", audit.report([_audit_row(h) for h in FLEET], "/config/fleet.py", time.time(),
                                          _chosen(None)))
    with pytest.raises(MergeError, match="audit.json is a audit report and shard-1.json a remediate report"):
        merge([remediation, audited], allow_mixed=allow_mixed)
    with pytest.raises(MergeError, match="dry plan"):
        merge([remediation, ("dry.json", _shard_reports(count=1, dry=True)[0][1])], allow_mixed=allow_mixed)


def test_audit_shards_merge_with_their_instances():
    reports = []
    for index in (1, 2):
        shard = Shard(index, 2)
        rows = [_audit_row(h, compliant=h != "pacs-04") for h in shard.select(FLEET)]
        reports.append((f"a{index}.json", audit.report(rows, "fleet.py", time.time(), _chosen(shard))))
    merged = merge(reports)
    assert sorted(r["host"] for r in merged["instances"]) == FLEET
    assert merged["exit_code"] == 1 and merged["summary"]["findings"] == 1


def test_the_command_line(tmp_path):
    paths = []
    for name, report in _shard_reports({"pacs-07": "not-compliant"}):
        path = tmp_path / name
        path.write_text(json.dumps(report))
        paths.append(str(path))
    out = tmp_path / "merged.json"
    proc = run_cli("report", "merge", *paths, "--json", str(out), timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "pacs-07" in proc.stdout and "not-compliant" in proc.stdout and "exit status 1" in proc.stdout
    assert out.stat().st_mode & 0o777 == 0o600 and json.loads(out.read_text())["exit_code"] == 1
    refused = run_cli("report", "merge", paths[0], str(tmp_path / "missing.json"), timeout=120)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip() == (f"orthanc-harden report merge: error: {tmp_path / 'missing.json'}: "
                                      "cannot read: No such file or directory")
    (tmp_path / "other.json").write_text('{"hosts": []}')
    refused = run_cli("report", "merge", str(tmp_path / "other.json"), timeout=120)
    assert refused.returncode == 2 and "not a JSON report of orthanc-harden" in refused.stderr


def test_a_missing_host_is_placed_in_its_shard_by_its_key():
    """An engine sharded with its machine (`shard_keys`): the merge names the shard that really held it."""
    engine, machine = "@dockerengine/docker-04", "docker-04.example.org"
    hosts = FLEET + [engine, machine]
    keys = {engine: machine}
    assert shard_of(engine, 3) != shard_of(machine, 3), "a key that moves the engine to another shard"
    reports = []
    for index in (1, 2, 3):
        shard = Shard(index, 3)
        rows = [_remediation_row(h) for h in hosts if shard_of(keys.get(h, h), 3) == index]
        reports.append((f"shard-{index}.json", remediate.report(rows, "fleet.py", time.time(), False,
                                                                {**_chosen(shard, hosts=hosts), "shard_keys": keys})))
    held = shard_of(machine, 3)
    merged = merge([r for i, r in enumerate(reports, 1) if i != held])
    assert f"{engine} is in no report: shard {held}/3 has no report" in merged["problems"]


def test_the_inventory_digest_covers_what_ansible_reads_besides_the_file(tmp_path):
    """Two runners with the same hosts file but other group_vars are two fleets' settings: their reports must not
    merge as one. A Python inventory keeps the plain digest of its file."""
    import hashlib
    import os

    from orthanc_harden.runs.audit import inventory_digest

    python_inventory = tmp_path / "fleet.py"
    python_inventory.write_text("pacs = ['pacs-01']\n")
    assert inventory_digest(str(python_inventory)) == hashlib.sha256(python_inventory.read_bytes()).hexdigest()

    hosts = tmp_path / "hosts.ini"
    hosts.write_text("[pacs]\npacs-01\n")
    alone = inventory_digest(str(hosts))
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "pacs.yml").write_text("orthanc_harden_allowed_cidrs: [10.0.0.0/8]\n")
    with_vars = inventory_digest(str(hosts))
    assert with_vars != alone
    (tmp_path / "group_vars" / "pacs.yml").write_text("orthanc_harden_allowed_cidrs: [0.0.0.0/0]\n")
    assert inventory_digest(str(hosts)) not in (alone, with_vars)
    os.mkfifo(tmp_path / "group_vars" / "pipe")  # never opened: the digest would block on it
    assert inventory_digest(str(hosts)) == inventory_digest(str(hosts))

    directory = tmp_path / "inventory"
    (directory / "host_vars").mkdir(parents=True)
    (directory / "hosts.yml").write_text("all:\n  hosts:\n    pacs-01:\n")
    before = inventory_digest(str(directory))
    (directory / "host_vars" / "pacs-01.yml").write_text("orthanc_harden_users_mode: merge\n")
    assert inventory_digest(str(directory)) != before
    assert inventory_digest(str(tmp_path / "missing.ini")) is None
