"""Issue #21: `remediate --shard i/3` as three processes at once on a mixed lab fleet (four package hosts and an
Orthanc container), merged with `report merge`: every host handled exactly once, the merged verdict equal to one
unsharded run's, exit statuses combined as documented, and a second sharded run that changes and restarts nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import docker
import pytest
import requests

from orthanc_harden.runs.shard import shard_of
from tests.conftest import ROOT, run_cli
from tests.integration.conftest import fresh_lab
from tests.integration.hosts_fleet import anonymous, break_config, orthanc_starts, repair_config

pytestmark = pytest.mark.lab

LAB, PORT_BASE = "shard-t", 32200
ENGINE = f"@dockerengine/{LAB}-engine"
CANARY = "Canary-shard-5e0b-\"q'"
COUNT = 3


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    data = fresh_lab(LAB, 4, 1, PORT_BASE)
    work = tmp_path_factory.mktemp("shard")
    users = work / "users.json"
    users.write_text(json.dumps({"radiology": CANARY}))
    users.chmod(0o600)
    data["env"] = {"ORTHANC_HARDEN_LAB": LAB, "ORTHANC_HARDEN_LAB_USERS_REF": f"file:{users}"}
    data["work"] = work
    data["names"] = sorted([h["name"] for h in data["hosts"]] + [ENGINE])
    yield data
    run_cli("lab", "down", "--lab", LAB)


def _sharded_remediate(fleet, round_name: str) -> tuple[list[int], list[dict], list]:
    """Three `remediate --shard i/3` processes started together; their exit statuses, reports and report paths."""
    paths = [fleet["work"] / f"{round_name}-{i}.json" for i in range(1, COUNT + 1)]
    env = {**os.environ, **fleet["env"]}
    procs = [subprocess.Popen([sys.executable, "-m", "orthanc_harden.cli", "remediate", "inventories/lab.py",
                               "--shard", f"{i}/{COUNT}", "--json", str(path)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i, path in enumerate(paths, 1)]
    outputs, codes = [], []
    for proc in procs:
        output, _ = proc.communicate(timeout=900)
        outputs.append(output)
        codes.append(proc.returncode)
    for output, path in zip(outputs, paths, strict=True):
        assert CANARY not in output
        assert path.exists(), output[-3000:]
        assert CANARY not in path.read_text()
    return codes, [json.loads(p.read_text()) for p in paths], paths


def _merge(fleet, paths, name: str) -> tuple[int, dict, str]:
    merged = fleet["work"] / f"{name}.json"
    proc = run_cli("report", "merge", *map(str, paths), "--json", str(merged))
    assert CANARY not in proc.stdout + proc.stderr
    return proc.returncode, json.loads(merged.read_text()), proc.stdout + proc.stderr


def _single(fleet, name: str) -> tuple[int, dict]:
    path = fleet["work"] / f"{name}.json"
    proc = run_cli("remediate", "inventories/lab.py", "--json", str(path), env=fleet["env"])
    assert CANARY not in proc.stdout + proc.stderr
    return proc.returncode, json.loads(path.read_text())


def _statuses(report: dict) -> dict[str, str]:
    return {row["host"]: row["status"] for row in report["hosts"]}


def _exactly_once(fleet, reports: list[dict]) -> None:
    handled = [row["host"] for report in reports for row in report["hosts"]]
    assert sorted(handled) == fleet["names"], "every host exactly once"
    for i, report in enumerate(reports, 1):
        assert report["shard"] == {"index": i, "count": COUNT}
        assert report["selected_hosts"] == fleet["names"]
        assert all(shard_of(row["host"], COUNT) == i for row in report["hosts"])


def _restarts(fleet) -> tuple[list[int], list[str]]:
    engine = docker.from_env()
    try:
        containers = [engine.api.inspect_container(c["container"])["State"]["StartedAt"] for c in fleet["containers"]]
    finally:
        engine.close()
    return [orthanc_starts(fleet, h) for h in fleet["hosts"]], containers


def test_three_sharded_remediations_at_once_are_one_run(fleet):
    entries = fleet["hosts"] + fleet["containers"]
    assert all(anonymous(e) == 200 for e in entries), "the lab starts vulnerable"
    assert len({shard_of(n, COUNT) for n in fleet["names"]}) == COUNT, "each shard has a host in this fleet"

    codes, reports, paths = _sharded_remediate(fleet, "first")
    _exactly_once(fleet, reports)
    assert codes == [0, 0, 0], [r["summary"] for r in reports]
    code, merged, output = _merge(fleet, paths, "first-merged")
    assert code == 0 and merged["exit_code"] == 0, output[-3000:]
    assert _statuses(merged) == dict.fromkeys(fleet["names"], "changed")
    assert merged["problems"] == [] and [run["shard"]["index"] for run in merged["runs"]] == [1, 2, 3]
    assert all(run["command"] == "remediate" and run["control_node"] for run in merged["runs"])
    for entry in entries:
        assert anonymous(entry) == 401
        url = f"http://127.0.0.1:{entry['http_port']}/system"
        assert requests.get(url, auth=("radiology", CANARY), timeout=10).status_code == 200
    assert run_cli("audit", "inventories/lab.py", env=fleet["env"]).returncode == 0

    # The second sharded run changes and restarts nothing; merged, it is what one unsharded run says.
    before = _restarts(fleet)
    codes, reports, paths = _sharded_remediate(fleet, "second")
    _exactly_once(fleet, reports)
    assert codes == [0, 0, 0]
    assert all(row["changes"] == [] for report in reports for row in report["hosts"])
    assert _restarts(fleet) == before, "a second run must restart nothing"
    code, merged, output = _merge(fleet, paths, "second-merged")
    single_code, single = _single(fleet, "second-single")
    assert _statuses(merged) == _statuses(single) == dict.fromkeys(fleet["names"], "compliant")
    assert code == merged["exit_code"] == single_code == 0

    # A shard missing from the merge: its hosts are named, each a failed row, exit 2.
    absent = [n for n in fleet["names"] if shard_of(n, COUNT) == 3]
    code, partial, output = _merge(fleet, paths[:2], "partial-merged")
    assert code == 2 and partial["exit_code"] == 2
    assert all(f"{host} is in no report: shard 3/3 has no report" in output for host in absent), output[-2000:]
    assert {h for h, s in _statuses(partial).items() if s == "failed"} == set(absent)


def test_exit_statuses_combine_as_one_run(fleet):
    """A malformed host (exit 2 in its shard): each shard exits as its own hosts say, the
    merge exits as the worst of them, which is what one unsharded run of the same fleet says."""
    broken = fleet["hosts"][0]
    break_config(fleet, broken)
    try:
        codes, reports, paths = _sharded_remediate(fleet, "broken")
        code, merged, output = _merge(fleet, paths, "broken-merged")
        single_code, single = _single(fleet, "broken-single")
    finally:
        repair_config(fleet, broken)
    _exactly_once(fleet, reports)
    broken_shard = shard_of(broken["name"], COUNT)
    assert codes == [2 if i == broken_shard else 0 for i in range(1, COUNT + 1)], [r["summary"] for r in reports]
    assert code == merged["exit_code"] == max(codes) == single_code == 2, output[-3000:]
    assert _statuses(merged) == _statuses(single)
    assert _statuses(merged)[broken["name"]] == "failed"


def test_the_kubernetes_pod_script_on_the_lab(fleet, tmp_path):
    """deploy/kubernetes/cronjob.yaml's pod script, run as the Indexed Job runs it (three at once, each with its
    JOB_COMPLETION_INDEX), with the real command: each pod audits its shard, and a pod that finds every report
    there merges them into the fleet's verdict."""
    import yaml

    cronjob = yaml.safe_load((ROOT / "deploy/kubernetes/cronjob.yaml").read_text())
    job = cronjob["spec"]["jobTemplate"]["spec"]
    script = job["template"]["spec"]["containers"][0]["args"][0]
    reports = tmp_path / "reports"
    script = (script.replace("/etc/orthanc-harden/inventory/fleet.py", str(ROOT / "inventories/lab.py"))
              .replace("/reports/", f"{reports}/"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "orthanc-harden").write_text(f"#!/bin/sh\nexec {sys.executable} -m orthanc_harden.cli \"$@\"\n")
    (bin_dir / "orthanc-harden").chmod(0o755)
    env = {**os.environ, **fleet["env"], "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "SHARDS": str(job["completions"]), "JOB_NAME": "orthanc-harden-29000000", "MODE": "audit"}
    pods = [subprocess.Popen(["sh", "-c", script], cwd=ROOT, env={**env, "JOB_COMPLETION_INDEX": str(index)},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for index in range(job["completions"])]
    outputs = [pod.communicate(timeout=600)[0] for pod in pods]
    assert [pod.returncode for pod in pods] == [0] * job["completions"], outputs
    run_dir = reports / "orthanc-harden-29000000"
    merged = json.loads((run_dir / "merged.json").read_text())
    assert merged["command"] == "audit" and merged["problems"] == [], merged["problems"]
    assert merged["exit_code"] == 0, (run_dir / "merged.txt").read_text()
    assert sorted({row["host"] for row in merged["instances"]}) == fleet["names"]
    assert sorted(run["shard"]["index"] for run in merged["runs"]) == [1, 2, 3]
    assert any("fleet verdict: exit 0" in output for output in outputs), outputs
    assert "lab-pkg-1" in (run_dir / "merged.txt").read_text()
    assert CANARY not in "".join(outputs) + (run_dir / "merged.json").read_text()
