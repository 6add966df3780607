"""The bench's verdicts (issue #24): a remediation whose hosts are not all compliant afterwards is void, says why
(with the peer's own task output) and counts in no ratio or target; a host's span comes from its sshd's
timestamps. Real Ansible callback text and sshd journal lines in, verdicts out."""

from __future__ import annotations

from bench import report, run, tools
from bench.hosts import kind_of, session_span

ANSIBLE_LOG = """
PLAY [Fix CVE-2025-0896 on Debian's Orthanc] ***********************************

TASK [Orthanc upgraded to the newest packaged version (1.5.8 or later)] ********
ok: [bench-h01]
changed: [bench-h02]

TASK [Authentication on (the top-level key of orthanc.json)] *******************
changed: [bench-h01]
fatal: [bench-h02]: FAILED! => {"changed": false, "msg": "Path /etc/orthanc/orthanc.json does not exist !"}

RUNNING HANDLER [Restart Orthanc] **********************************************
changed: [bench-h01]

PLAY RECAP *********************************************************************
bench-h01                  : ok=3    changed=2    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0
bench-h02                  : ok=1    changed=1    unreachable=0    failed=1    skipped=0    rescued=0    ignored=0
"""


def _run(**extra) -> dict:
    base = {"wall_s": 10.0, "cpu_s": 2.0, "exit": 0, "ssh_commands_per_host": {"mean": 3, "max": 3},
            "orthanc_restarts_per_host": {"max": 0}, "host_cpu_s_per_host": {"mean": 0.2},
            "max_rss_mb": 60, "tree_peak_rss_mb": 60}
    return {**base, **extra}


def test_ansible_tasks_say_what_changed_and_what_failed(tmp_path):
    log = tmp_path / "ansible.log"
    log.write_text(ANSIBLE_LOG)
    tasks = tools.ansible_tasks(log)
    assert tasks["changed_per_task"] == {
        "Orthanc upgraded to the newest packaged version (1.5.8 or later)": 1,
        "Authentication on (the top-level key of orthanc.json)": 1, "Restart Orthanc": 1}
    assert tasks["failures"] == ["Authentication on (the top-level key of orthanc.json) on bench-h02: "
                                 "Path /etc/orthanc/orthanc.json does not exist !"]


def test_a_run_leaving_hosts_not_compliant_is_void_with_the_peers_account(tmp_path):
    log = tmp_path / "ansible.log"
    log.write_text(ANSIBLE_LOG)
    peer = _run(verified={"hosts": 2, "anonymous_401": 1, "user_200": 1},
                audit_after={"exit": 1, "not_compliant": ["bench-h02 findings (ORTH-002)"]},
                tasks=tools.ansible_tasks(log))
    reason = run._void_reason(peer)
    assert "1/2 refuse anonymous" in reason
    assert "bench-h02 findings (ORTH-002)" in reason
    assert "failed: Authentication on" in reason
    assert "Orthanc upgraded to the newest packaged version (1.5.8 or later) 1" in reason
    compliant = _run(verified={"hosts": 2, "anonymous_401": 2, "user_200": 2},
                     audit_after={"exit": 0, "not_compliant": []})
    assert run._void_reason(compliant) is None


def test_void_runs_are_in_no_ratio_or_target():
    mine = _run(host_cpu_s_per_host={"mean": 0.1})
    peer = _run(wall_s=100.0, void="orthanc-harden audit after: exit 1")
    floor = _run(wall_s=4.0, host_cpu_s_per_host={"mean": 0.1})
    runs = {"floor": floor, "orthanc-harden/remediate-compliant": mine, "ansible/remediate-compliant": peer}
    assert report.ratios(runs) == {"remediate-compliant": {"void": True}}
    sizes = {"1": {"runs": runs, "ratios": report.ratios(runs), "parallel": 1}}
    targets = {t["target"]: t for t in report.targets(sizes)}
    assert "compliant remediate: faster than Ansible" not in targets
    assert targets["runs void (hosts not all compliant after): left out of every ratio and target"]["status"] \
        == "missed"
    assert targets["compliant remediate: host CPU per host over the floor's"]["status"] == "met"
    assert targets["one host alone: compliant remediate wall time over the floor's"]["status"] == "missed"
    runs["ansible/remediate-compliant"] = _run(wall_s=100.0)
    targets = {t["target"]: t for t in report.targets(sizes)}
    assert targets["compliant remediate: faster than Ansible"]["status"] == "met"


def test_a_hosts_span_is_first_login_to_last_closed_session():
    journal = """1795920000.100000 bench-h01 sshd[40]: Connection from 172.18.0.1 port 1 on 172.18.0.2 port 22
1795920000.250000 bench-h01 sshd[40]: Accepted publickey for root from 172.18.0.1 port 1 ssh2: ED25519 SHA256:x
1795920000.300000 bench-h01 sshd[40]: Starting session: command for root from 172.18.0.1 port 1 id 0
1795920000.900000 bench-h01 sshd[40]: Close session: user root from 172.18.0.1 port 1 id 0
1795920001.000000 bench-h01 sshd[40]: Starting session: command for root from 172.18.0.1 port 1 id 1
1795920001.750000 bench-h01 sshd[40]: Close session: user root from 172.18.0.1 port 1 id 1
1795920061.000000 bench-h01 sshd[40]: Received disconnect from 172.18.0.1 port 1:11: disconnected by user
"""
    assert session_span(journal) == 1.5
    assert session_span("") is None
    assert session_span(journal.splitlines()[1]) is None  # a login without a closed session


def test_every_kind_is_in_a_fleet_of_four_and_one_host_alone_is_plain_root():
    assert kind_of(1) == "root"
    assert sorted(kind_of(i) for i in range(1, 5)) == ["port", "root", "root", "sudo"]
