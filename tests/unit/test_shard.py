"""Issue #21: `--shard I/N` splits the hosts by a hash of their names: each host in exactly one shard, whatever the
inventory's order, the same in every process; bad values are one line and exit 2; --limit applies first."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orthanc_harden.runs import scheduled
from orthanc_harden.runs.shard import MAX_SHARDS, Shard, ShardError, parse, shard_of
from tests.conftest import ROOT, run_cli

names = st.lists(st.text(min_size=1, max_size=40), min_size=0, max_size=60, unique=True)


@given(names, st.integers(min_value=1, max_value=12), st.randoms(use_true_random=False))
def test_every_host_in_exactly_one_shard_whatever_the_order(hosts, count, rng):
    parts = [Shard(i, count).select(hosts) for i in range(1, count + 1)]
    assert sorted(h for part in parts for h in part) == sorted(hosts)
    shuffled = list(hosts)
    rng.shuffle(shuffled)
    assert [sorted(Shard(i, count).select(shuffled)) for i in range(1, count + 1)] == [sorted(p) for p in parts]
    assert all(1 <= shard_of(h, count) <= count for h in hosts)


def test_one_shard_is_the_whole_inventory():
    hosts = [f"pacs-{i:03}" for i in range(200)]
    assert Shard(1, 1).select(hosts) == hosts


def test_shards_are_roughly_even_on_a_large_fleet():
    hosts = [f"pacs-{i:04}.site-{i % 7}.example.org" for i in range(3000)]
    sizes = [len(Shard(i, 3).select(hosts)) for i in (1, 2, 3)]
    assert all(900 <= size <= 1100 for size in sizes), sizes


def test_the_same_partition_in_every_process():
    """Python's own hash() of a string changes with each process (PYTHONHASHSEED): runners on different machines
    would then disagree and cover hosts twice or never."""
    hosts = [f"pacs-{i}" for i in range(40)]
    program = ("import json, sys; from orthanc_harden.runs.shard import shard_of; "
               "print(json.dumps([shard_of(h, 5) for h in json.loads(sys.argv[1])]))")
    seen = set()
    for seed in ("1", "2", "3"):
        proc = subprocess.run([sys.executable, "-c", program, json.dumps(hosts)], capture_output=True, text=True,
                              cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
                              timeout=60, check=True)
        seen.add(proc.stdout)
    assert seen == {json.dumps([shard_of(h, 5) for h in hosts]) + "\n"}


@pytest.mark.parametrize("text, cause", [
    ("0/3", "I must be between 1 and 3"), ("4/3", "I must be between 1 and 3"), ("1/0", "N must be between"),
    (f"1/{MAX_SHARDS + 1}", "N must be between"), ("1-3", "expected I/N"), ("", "expected I/N"),
    ("-1/3", "expected I/N"), ("a/b", "expected I/N"),
])
def test_bad_values_are_refused(text, cause):
    with pytest.raises(ShardError, match=cause):
        parse(text)


def test_good_values():
    assert parse("2/3") == Shard(2, 3) and str(parse(" 1/1 ")) == "1/1"


@pytest.mark.parametrize("command", [["audit", "pacs-1,pacs-2"], ["remediate", "pacs-1,pacs-2"],
                                     ["scheduled-run", "audit", "pacs-1,pacs-2", "--report-dir", "/nonexistent"]])
def test_a_bad_shard_is_one_line_and_exit_2_before_anything_is_read(command):
    proc = run_cli(*command, "--shard", "4/3", timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"orthanc-harden {command[0]}: error: --shard 4/3: I must be between 1 and 3 "
                                   "(shards are numbered from 1)")
    assert proc.stdout == ""


# In a child process: loading an inventory imports pyinfra_cli, which monkey-patches the whole interpreter.
_SELECT = """
import json, sys
from gevent import monkey
monkey.patch_all()
from orthanc_harden.runs.audit import InventoryError, load_state
from orthanc_harden.runs.shard import parse
inventory, limit, shard = json.loads(sys.argv[1])
try:
    state, hosts, chosen = load_state(inventory, limit, 5, parse(shard))
except InventoryError as err:
    print(json.dumps({"error": str(err)}))
else:
    print(json.dumps({"state": state is not None, "hosts": [h.name for h in hosts], "chosen": chosen}))
"""


def _select(inventory: str, limit: list[str] | None, shard: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", _SELECT, json.dumps([inventory, limit, shard])], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, check=True)
    return json.loads(proc.stdout.splitlines()[-1])


def test_limit_applies_before_the_shard_and_the_report_says_what_was_chosen():
    inventory = ",".join(f"pacs-{i}" for i in range(30))
    limit = ["pacs-1*"]  # pacs-1, pacs-10..19
    chosen_names = sorted(["pacs-1"] + [f"pacs-1{i}" for i in range(10)])
    covered = []
    for index in (1, 2, 3):
        found = _select(inventory, limit, f"{index}/3")
        chosen = found["chosen"]
        assert chosen["selected_hosts"] == chosen_names and chosen["limit"] == limit
        assert chosen["shard"] == {"index": index, "count": 3} and chosen["inventory_sha256"] is None
        assert all(shard_of(h, 3) == index for h in found["hosts"])
        covered += found["hosts"]
    assert sorted(covered) == chosen_names


def test_an_empty_shard_is_a_run_of_no_host():
    names = ["pacs-1", "pacs-2"]
    other = next(i for i in (1, 2, 3) if i not in {shard_of(n, 3) for n in names})
    found = _select(",".join(names), None, f"{other}/3")
    assert found["state"] is False and found["hosts"] == [] and found["chosen"]["selected_hosts"] == names
    # --limit selecting nothing is still the operator's mistake, sharded or not
    assert "has no host matching --limit" in _select(",".join(names), ["nothing*"], f"{other}/3")["error"]


_TOGETHER = """
docker_machines = [("docker-01.example.org", {}), ("docker-02.example.org", {})]
engines = [
    ("@dockerengine/docker-01", {"orthanc_harden_docker_url": "ssh://deploy@docker-01.example.org"}),
    ("@dockerengine/docker-02", {"orthanc_harden_docker_url": "tcp://docker-02.example.org:2376"}),
    ("@dockerengine/local", {"orthanc_harden_docker_url": "unix:///var/run/docker.sock"}),
]
site_1 = [(f"pacs-{i}.site-1", {"orthanc_harden_shard_key": "site-1"}) for i in range(6)]
"""


@pytest.mark.parametrize("count", [2, 3, 5])
def test_hosts_audited_together_stay_together(tmp_path, count):
    """An engine and the machine it runs on (whose DOCKER-USER chain filters its ports) are one audit: a shard
    with one but not the other would report the engine's containers open when one run reports them closed."""
    inventory = tmp_path / "fleet.py"
    inventory.write_text(_TOGETHER)
    where = {}
    for index in range(1, count + 1):
        found = _select(str(inventory), None, f"{index}/{count}")
        where.update(dict.fromkeys(found["hosts"], index))
        assert found["chosen"]["shard_keys"] == {
            "@dockerengine/docker-01": "docker-01.example.org", "@dockerengine/docker-02": "docker-02.example.org",
            **{f"pacs-{i}.site-1": "site-1" for i in range(6)}}
    assert len(where) == 11, "every host exactly once"
    assert where["@dockerengine/docker-01"] == where["docker-01.example.org"] == shard_of("docker-01.example.org",
                                                                                         count)
    assert where["@dockerengine/docker-02"] == where["docker-02.example.org"]
    assert where["@dockerengine/local"] == shard_of("@dockerengine/local", count)
    assert {where[f"pacs-{i}.site-1"] for i in range(6)} == {shard_of("site-1", count)}


def test_shards_sharing_a_report_directory_keep_their_own_reports(tmp_path):
    one, two = Shard(1, 2), Shard(2, 2)
    for stamp in ("20260101T000000000000Z", "20260102T000000000000Z", "20260103T000000000000Z"):
        for suffix in ("", "-shard-1-of-2", "-shard-2-of-2"):
            (tmp_path / f"audit-{stamp}{suffix}.json").write_text("{}")
    scheduled.prune(tmp_path, "audit", 1, one)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert sum("-shard-1-of-2" in n for n in left) == 1 and sum("-shard-2-of-2" in n for n in left) == 3
    scheduled.prune(tmp_path, "audit", 2)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert sum(n.endswith("Z.json") for n in left) == 2 and sum("-shard-2-of-2" in n for n in left) == 3
    scheduled.prune(tmp_path, "audit", 1, two)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "audit-20260102T000000000000Z.json", "audit-20260103T000000000000Z-shard-1-of-2.json",
        "audit-20260103T000000000000Z-shard-2-of-2.json", "audit-20260103T000000000000Z.json"]


def test_a_scheduled_shard_runs_its_shard_on_each_control_node():
    from orthanc_harden.cli import build_parser
    from orthanc_harden.operations import schedule

    line = schedule.run_line("/opt/oh/bin/orthanc-harden", "audit", "/etc/oh/fleet.py", "/var/lib/oh", 5, "2/3")
    assert line.endswith(" --keep 5 --shard 2/3")
    args = build_parser().parse_args(line.split()[1:])
    assert (args.command, args.mode, args.shard) == ("scheduled-run", "audit", "2/3")


@pytest.mark.parametrize("value, problem", [("2/3", None), ("3/2", "I must be between 1 and 2"),
                                            ("all", "expected I/N")])
def test_the_schedule_shard_setting_is_checked(value, problem):
    from orthanc_harden import settings

    found = [p for p in settings.validate({"orthanc_harden_schedule_shard": value}) if "schedule_shard" in p]
    assert found == ([] if problem is None else [found[0]]) and (problem is None or problem in found[0])


def test_scheduled_shards_share_a_report_directory(tmp_path):
    """Each shard of a scheduled run takes its own lock and writes its own report: shards on one volume run side
    by side, and a shard whose lock is held is skipped (75). Empty shards: no host is contacted."""
    import fcntl

    hosts = ["pacs-1", "pacs-2"]
    free, held = [i for i in range(1, 6) if i not in {shard_of(h, 5) for h in hosts}][:2]
    reports = tmp_path / "reports"
    reports.mkdir(mode=0o700)
    with open(reports / f".lock-shard-{held}-of-5", "w") as lock, open(reports / ".lock", "w") as unsharded:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fcntl.flock(unsharded, fcntl.LOCK_EX)
        skipped = run_cli("scheduled-run", "audit", ",".join(hosts), "--report-dir", str(reports), "--shard",
                          f"{held}/5", timeout=120)
        ran = run_cli("scheduled-run", "audit", ",".join(hosts), "--report-dir", str(reports), "--shard",
                      f"{free}/5", timeout=120)
    assert skipped.returncode == 75 and f".lock-shard-{held}-of-5" in skipped.stdout
    assert ran.returncode == 0, ran.stdout + ran.stderr
    written = sorted(reports.glob("audit-*.json"))
    assert [p.name.endswith(f"-shard-{free}-of-5.json") for p in written] == [True]
    report = json.loads(written[0].read_text())
    assert report["shard"] == {"index": free, "count": 5} and report["instances"] == []
    assert report["selected_hosts"] == hosts and report["exit_code"] == 0
