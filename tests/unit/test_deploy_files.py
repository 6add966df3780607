"""Issue #21: the Kubernetes manifests validate offline against the Kubernetes schemas; the CI files parse; every
`orthanc-harden` command they run, expanded by a real shell with each shard's variables, is accepted by the real
command line (flags and --shard); the sharding adds up (completions, parallelism, SHARDS, matrix size)."""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from orthanc_harden.cli import build_parser
from orthanc_harden.runs.shard import parse
from tests.conftest import ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"
CI = ROOT / "deploy" / "ci"
# batch/v1 Job fields used here: backoffLimitPerIndex and podFailurePolicy FailIndex are GA from 1.33.
KUBERNETES_VERSIONS = ("1.33", "1.37")


def _documents() -> list[tuple[str, dict]]:
    return [(path.name, doc) for path in sorted(KUBERNETES.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def _by_kind(kind: str) -> list[dict]:
    return [doc for _, doc in _documents() if doc["kind"] == kind]


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test: the validation must use the schemas on disk only."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network use during offline validation: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_offline_against_the_kubernetes_schemas(no_network, version):
    import kubernetes_validate

    documents = _documents()
    assert {doc["kind"] for _, doc in documents} >= {"CronJob", "ConfigMap", "PersistentVolumeClaim",
                                                     "ServiceAccount", "Namespace"}
    for name, doc in documents:
        # strict: a field Kubernetes does not know (a typo) is an error, not ignored
        assert kubernetes_validate.validate(doc, version, strict=True), name


@pytest.mark.parametrize("mutate", [
    lambda job: job["spec"]["jobTemplate"]["spec"].update(completionsMode="Indexed"),  # a typo: unknown field
    lambda job: job["spec"]["jobTemplate"]["spec"].update(completions="three"),         # wrong type
    lambda job: job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0].pop("name"),  # required
])
def test_the_validation_catches_a_broken_manifest(no_network, mutate):
    import kubernetes_validate

    job = copy.deepcopy(_by_kind("CronJob")[0])
    mutate(job)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSIONS[0], strict=True)


def _job() -> tuple[dict, dict]:
    job = _by_kind("CronJob")[0]["spec"]["jobTemplate"]["spec"]
    return job, job["template"]["spec"]["containers"][0]


def test_the_indexed_job_has_one_pod_per_shard():
    job, container = _job()
    env = {e["name"]: e for e in container["env"]}
    shards = int(env["SHARDS"]["value"])
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == shards
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    rule = job["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailIndex" and rule["onExitCodes"]["containerName"] == container["name"]
    assert rule["onExitCodes"]["values"] == [1, 2], "not compliant and failed end the index, never retried"
    assert env["JOB_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['batch.kubernetes.io/job-name']"


def test_every_configmap_and_mount_the_job_uses_exists():
    job, container = _job()
    maps = {doc["metadata"]["name"]: doc["data"] for doc in _by_kind("ConfigMap")}
    for entry in container["env"]:
        ref = entry.get("valueFrom", {}).get("configMapKeyRef")
        if ref:
            assert ref["key"] in maps[ref["name"]], entry
    volumes = {v["name"]: v for v in job["template"]["spec"]["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert set(mounts) == set(volumes)
    inventory = volumes["inventory"]["configMap"]["name"]
    assert f"{mounts['inventory']}/fleet.py" in container["args"][0] and "fleet.py" in maps[inventory]
    claim = volumes["reports"]["persistentVolumeClaim"]["claimName"]
    assert [d["metadata"]["name"] for d in _by_kind("PersistentVolumeClaim")] == [claim]
    assert _by_kind("PersistentVolumeClaim")[0]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert volumes["ssh"]["secret"]["secretName"] == "orthanc-harden-ssh"


# In a child process: loading an inventory imports pyinfra_cli, which monkey-patches the whole interpreter.
_LOAD = """
import json, sys
from pyinfra.api import State
from pyinfra.context import ctx_state
from pyinfra_cli.inventory import make_inventory
from orthanc_harden import settings
with ctx_state.use(State(check_for_changes=False)):
    inventory = make_inventory(sys.argv[1], cwd=".")
print(json.dumps({h.name: [settings.validate(h.data), h.data.get("ssh_key"), h.data.get("ssh_known_hosts_file")]
                  for h in inventory}))
"""


def test_the_configmap_inventory_loads_with_valid_settings(tmp_path):
    job, container = _job()
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    maps = {doc["metadata"]["name"]: doc["data"] for doc in _by_kind("ConfigMap")}
    (tmp_path / "fleet.py").write_text(maps["orthanc-harden-inventory"]["fleet.py"])
    proc = subprocess.run([sys.executable, "-c", _LOAD, str(tmp_path / "fleet.py")], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    hosts = json.loads(proc.stdout.splitlines()[-1])
    assert len(hosts) >= 3
    for name, (problems, key, known_hosts) in hosts.items():
        assert problems == [], name
        assert key == f"{mounts['ssh']}/id_ed25519" and known_hosts == f"{mounts['ssh']}/known_hosts"


# A stand-in `orthanc-harden` on PATH records each call's argv (the shell does the real expansion).
_RECORDER = """#!{python}
import json, os, sys
with open(os.environ["RECORDED"], "a") as out:
    out.write(json.dumps(sys.argv[1:]) + "\\n")
"""


def _run_recorded(script: str, tmp_path: Path, env: dict) -> list[list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    recorder = bin_dir / "orthanc-harden"
    recorder.write_text(_RECORDER.format(python=sys.executable))
    recorder.chmod(0o755)
    recorded = tmp_path / "calls.jsonl"
    recorded.unlink(missing_ok=True)
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "RECORDED": str(recorded), **env})
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in recorded.read_text().splitlines()]


def _accepted(argv: list[str]):
    """The real parser accepts the call (an unknown flag exits 2), and its --shard is a valid shard."""
    args = build_parser().parse_args(argv)
    return args, (parse(args.shard) if getattr(args, "shard", None) else None)


def test_the_pod_script_runs_its_shard_then_the_last_one_merges(tmp_path):
    job, container = _job()
    shards = job["completions"]
    reports = tmp_path / "reports"
    script = container["args"][0].replace("/reports/", f"{reports}/")
    assert "/reports" not in script.replace(str(reports), "")
    seen = []
    for index in range(shards):
        calls = _run_recorded(script, tmp_path, {"JOB_COMPLETION_INDEX": str(index), "JOB_NAME": "oh-1",
                                                 "SHARDS": str(shards), "MODE": "remediate"})
        args, shard = _accepted(calls[0])
        assert args.command == "remediate" and (shard.index, shard.count) == (index + 1, shards)
        seen.append(shard.index)
        assert len(calls) == 1, "no merge while reports are missing"
        Path(args.json).write_text("{}")  # what the real run leaves for the merge
    assert seen == list(range(1, shards + 1))
    calls = _run_recorded(script, tmp_path, {"JOB_COMPLETION_INDEX": "0", "JOB_NAME": "oh-1",
                                             "SHARDS": str(shards), "MODE": "audit"})
    merge_args, _ = _accepted(calls[1])
    assert calls[0][0] == "audit" and calls[1][:2] == ["report", "merge"]
    assert sorted(merge_args.reports) == sorted(str(p) for p in (reports / "oh-1").glob("shard-*.json"))
    assert len(merge_args.reports) == shards and merge_args.json == str(reports / "oh-1" / "merged.json")


def test_gitlab_parallel_jobs_cover_every_shard(tmp_path):
    pipeline = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    job, merge = pipeline["orthanc-harden"], pipeline["orthanc-harden-merge"]
    total = job["parallel"]
    assert merge["needs"][0]["job"] == "orthanc-harden" and merge["when"] == "always"
    assert job["artifacts"]["when"] == "always"
    shards = []
    for node in range(1, total + 1):  # GitLab numbers parallel jobs from 1, as --shard does
        env = {**pipeline["variables"], "CI_NODE_INDEX": str(node), "CI_NODE_TOTAL": str(total)}
        calls = _run_recorded("\n".join(job["script"]), tmp_path, env)
        args, shard = _accepted(calls[0])
        assert args.command == pipeline["variables"]["ORTHANC_HARDEN_MODE"] and shard.count == total
        shards.append(shard.index)
        Path(tmp_path / args.json).write_text("{}")
    assert shards == list(range(1, total + 1))
    calls = _run_recorded("\n".join(merge["script"]), tmp_path, pipeline["variables"])
    args, _ = _accepted(calls[0])
    assert sorted(args.reports) == [f"reports/shard-{i}-of-{total}.json" for i in range(1, total + 1)]


def test_github_matrix_covers_every_shard(tmp_path):
    workflow = yaml.safe_load((CI / "github-actions.yml").read_text())
    assert True in workflow or "on" in workflow  # YAML 1.1 reads the key `on` as true
    shard_job, merge_job = workflow["jobs"]["shard"], workflow["jobs"]["merge"]
    matrix = shard_job["strategy"]["matrix"]["shard"]
    assert shard_job["strategy"]["fail-fast"] is False
    assert merge_job["needs"] == "shard" and merge_job["if"] == "always()"
    step = next(s for s in shard_job["steps"] if "orthanc-harden" in s.get("run", ""))
    shards = []
    for value in matrix:
        # What GitHub substitutes before the shell sees the script.
        script = step["run"].replace("${{ matrix.shard }}", str(value)).replace("${{ strategy.job-total }}",
                                                                                 str(len(matrix)))
        assert "${{" not in script
        calls = _run_recorded(script, tmp_path, {**workflow["env"], "RUNNER_TEMP": str(tmp_path)})
        args, shard = _accepted(calls[0])
        assert shard.count == len(matrix)
        shards.append(shard.index)
        Path(tmp_path / args.json).write_text("{}")
    assert sorted(shards) == list(range(1, len(matrix) + 1))
    merge_step = next(s for s in merge_job["steps"] if "orthanc-harden" in s.get("run", ""))
    args, _ = _accepted(_run_recorded(merge_step["run"], tmp_path, workflow["env"])[0])
    assert len(args.reports) == len(matrix) and args.command == "report"


def test_the_recorder_refuses_a_flag_the_command_line_does_not_have(tmp_path):
    """The check above can fail: a misspelt flag in a CI file is caught."""
    calls = _run_recorded(textwrap.dedent("""
        orthanc-harden remediate inventories/fleet.py --shards 1/3
    """), tmp_path, {})
    with pytest.raises(SystemExit):
        _accepted(calls[0])
    calls = _run_recorded("orthanc-harden remediate inventories/fleet.py --shard 0/3", tmp_path, {})
    with pytest.raises(ValueError):
        _accepted(calls[0])


def test_the_runner_image_pins_every_package():
    lines = [line.strip() for line in (ROOT / "deploy/runner/requirements.txt").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert lines and all("==" in line and not line.startswith("-") for line in lines), lines
    names = {line.split("==")[0].lower().replace("_", "-") for line in lines}
    from importlib.metadata import requires

    direct = {r.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip().lower()
              for r in requires("orthanc-harden") if "extra ==" not in r}
    assert direct <= names, direct - names
