"""Fleet benchmark: ``.venv/bin/python -m bench.run --sizes 10,25,50``.

For each N: bring up N vulnerable bench hosts, measure the floor (``pyinfra exec -- true``), then
orthanc-harden's audit, remediate from vulnerable and remediate when already compliant; reset the same hosts to
vulnerable and measure the Ansible peer the same way (check mode as its audit). Writes
bench/results/<stamp>.{json,md} and latest.{json,md}; tears the hosts down at the end, on error and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from . import LABEL, hosts, image, inventories, measure, report, store, tools

RESULTS = Path(__file__).resolve().parent / "results"
MAX_SIZE = 100


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _stats(values: list[int]) -> dict:
    return {"min": min(values), "mean": round(statistics.mean(values), 2), "max": max(values)}


def _verify(fleet: hosts.Fleet, credentials: tuple[str, str]) -> dict:
    """From the control node, untimed: anonymous GET /system refused (401), the store's user let in (200).
    Bounded: a host still restarting gets up to 60 s."""
    anonymous = user = 0
    deadline = time.monotonic() + 60
    for host in fleet.hosts:
        while True:
            statuses = (hosts.http_status(host.http_port), hosts.http_status(host.http_port, credentials))
            if None not in statuses or time.monotonic() > deadline:
                break
            time.sleep(1)
        anonymous += statuses[0] == 401
        user += statuses[1] == 200
    return {"hosts": len(fleet.hosts), "anonymous_401": anonymous, "user_200": user}


def _void_reason(run: dict) -> str | None:
    """Why a remediation run does not count (its hosts are not all compliant afterwards), or None."""
    reasons = []
    check = run.get("verified")
    if check and not check["anonymous_401"] == check["user_200"] == check["hosts"]:
        reasons.append(f"HTTP check: {check['anonymous_401']}/{check['hosts']} refuse anonymous, "
                       f"{check['user_200']}/{check['hosts']} let the user in")
    audit = run.get("audit_after")
    if audit and audit["exit"] != 0:
        shown = "; ".join(audit["not_compliant"][:3])
        more = len(audit["not_compliant"]) - 3
        reasons.append(f"orthanc-harden audit after: exit {audit['exit']}: {shown}"
                       + (f" and {more} more" if more > 0 else ""))
    if run["exit"] != 0:
        reasons.append(f"exit {run['exit']}")
    if not reasons:
        return None
    tasks = run.get("tasks")
    if tasks:
        # The peer's own account: failures first, then what each task changed on how many of the hosts.
        if tasks["failures"]:
            reasons.append("failed: " + "; ".join(tasks["failures"][:3]))
        reasons.append("changed per task: " + ", ".join(f"{t} {n}" for t, n in tasks["changed_per_task"].items()))
    return "; ".join(reasons)


class SizeRun:
    """One fleet size: its hosts, inventories, and the measured runs."""

    def __init__(self, args, client, run_id: str, size: int, image_tag: str, workdir: Path, secrets_store):
        self.size, self.parallel = size, args.parallel or size
        self.workdir = workdir / f"n{size}"
        self.workdir.mkdir(mode=0o700)
        self.store = secrets_store
        self.credentials = secrets_store.credentials()
        self.fleet = hosts.Fleet(client, run_id, size, args.port_base, image_tag, self.workdir, say)
        self.timeout = 300 + 20 * size
        # ControlPath sockets: a short directory of its own (unix socket paths are limited to 108 bytes).
        self.control_dir = Path(f"/tmp/bench-{run_id}-cp")
        self.runs: dict[str, dict] = {}

    def _display(self, argv: list[str]) -> str:
        text = " ".join(argv).replace(str(tools.BIN) + "/", "")
        return text.replace(str(self.workdir), "RUN").replace(str(self.store.users_file), "USERS")

    def measure(self, name: str, argv: list[str], env: dict, verify: bool = False, report_file: Path | None = None,
                ansible: bool = False) -> dict:
        log = self.workdir / f"{name.replace('/', '-')}.log"
        load = os.getloadavg()[0]
        before = self.fleet.counters()
        say(f"bench N={self.size}: {name} ...")
        result = measure.measured(argv, {**self.store.env, **env}, log, self.timeout)
        after = self.fleet.counters()
        spans = self.fleet.spans(before)
        per_host = {h: {"ssh_commands": after[h]["sessions"] - before[h]["sessions"],
                        "ssh_logins": after[h]["logins"] - before[h]["logins"],
                        "orthanc_restarts": after[h]["orthanc_starts"] - before[h]["orthanc_starts"],
                        "host_cpu_s": (None if None in (after[h]["cpu_ms"], before[h]["cpu_ms"])
                                       else round((after[h]["cpu_ms"] - before[h]["cpu_ms"]) / 1000, 3)),
                        "host_span_s": spans[h], "kind": self.fleet.kind(h)}
                    for h in before}
        known_spans = [c["host_span_s"] for c in per_host.values() if c["host_span_s"] is not None]
        run = {**result, "command": self._display(argv), "load_before": round(load, 2),
               **{f"{counter}_per_host": _stats([counts[counter] for counts in per_host.values()])
                  for counter in ("ssh_commands", "ssh_logins", "orthanc_restarts")},
               "host_cpu_s_per_host": (None if any(c["host_cpu_s"] is None for c in per_host.values())
                                       else _stats([c["host_cpu_s"] for c in per_host.values()])),
               # sshd's first login to last closed session on each host; max: the slowest host.
               "host_span_s_per_host": _stats(known_spans) if known_spans else None,
               "per_host": per_host}
        if report_file is not None:
            run["summary"] = tools.orthanc_harden_summary(report_file)
            if run["summary"] is None:
                run["error"] = (f"no JSON report: the run crashed or was cut short; see {log.name} "
                                "(kept with --keep-workdir)")
        if ansible:
            run["recap"] = tools.ansible_recap(log)
            run["tasks"] = tools.ansible_tasks(log)
            if run["recap"]["hosts"] != self.size:
                run["error"] = f"no PLAY RECAP for every host; see {log.name} (kept with --keep-workdir)"
        if verify:
            run["verified"] = _verify(self.fleet, self.credentials)
            run["audit_after"] = self._audit_untimed(name)
            run["void"] = _void_reason(run)
        self.runs[name] = run
        say(f"bench N={self.size}: {name}: exit {run['exit']}, {run['wall_s']:.1f}s wall, {run['cpu_s']:.1f}s CPU, "
            f"{run['ssh_commands_per_host']['max']} SSH commands/host, "
            f"{run['orthanc_restarts_per_host']['max']} restarts/host{'; ' + run['error'] if 'error' in run else ''}"
            f"{'; VOID: ' + run['void'] if run.get('void') else ''}")
        return run

    def _audit_untimed(self, name: str) -> dict:
        """orthanc-harden's audit after a remediation of either tool, untimed: are the hosts compliant by the same
        measure, whoever remediated them?"""
        stem = f"audit-after-{name.replace('/', '-')}"
        out = self.workdir / f"{stem}.json"
        argv = tools.orthanc_harden("audit", self.inventory, self.parallel, out)
        with open(self.workdir / f"{stem}.log", "w") as log:
            proc = subprocess.run(argv, env={**os.environ, **self.store.env}, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=self.timeout, cwd=measure.ROOT)
        return {"exit": proc.returncode, "summary": tools.orthanc_harden_summary(out),
                "not_compliant": tools.not_compliant(out)}

    def execute(self) -> dict:
        started = time.monotonic()
        self.fleet.up()
        setup_s = time.monotonic() - started
        inventory = inventories.pyinfra_inventory(self.fleet, self.store, self.workdir / "inventory.py")
        self.inventory = inventory
        peer_inventory = inventories.ansible_inventory(self.fleet, self.workdir / "ansible-inventory.yml")
        p = self.parallel
        self.measure("floor", tools.floor(inventory, p), {})
        for scenario, command in (("audit", "audit"), ("remediate-vulnerable", "remediate"),
                                  (report.NO_CACHE, "remediate"), ("remediate-compliant", "remediate"),
                                  (report.THREE_PROGRAMS, "remediate")):
            if scenario == report.NO_CACHE:
                # Before and after in one run: the same compliant remediate with the probe's cache removed
                # from every host first (what every compliant run cost before #24), then with it.
                self.fleet.remove_probe_cache()
            out = self.workdir / f"{scenario}.json"
            # The last one again as before #24's last step: the probe, then the two planners each on its own.
            argv = (tools.orthanc_harden_three_programs if scenario == report.THREE_PROGRAMS
                    else tools.orthanc_harden)(command, inventory, p, out)
            self.measure(report.key(report.OH, scenario), argv, {}, verify=command == "remediate", report_file=out)

        started = time.monotonic()
        self.fleet.reset()
        reset_s = time.monotonic() - started
        self.control_dir.mkdir(mode=0o700, exist_ok=True)
        env = tools.ansible_env(self.workdir, self.control_dir)
        users = self.store.users_file
        self.measure(report.key(report.ANSIBLE, "audit"), tools.ansible(peer_inventory, p, users, check=True), env,
                     ansible=True)
        self.measure(report.key(report.ANSIBLE, "remediate-vulnerable"),
                     tools.ansible(peer_inventory, p, users, check=False), env, verify=True, ansible=True)
        self.measure(report.key(report.ANSIBLE, "remediate-compliant"),
                     tools.ansible(peer_inventory, p, users, check=False), env, verify=True, ansible=True)
        return {"parallel": p, "host_setup_s": round(setup_s, 1), "host_reset_s": round(reset_s, 1),
                "runs": self.runs, "ratios": report.ratios(self.runs)}

    def close(self) -> None:
        try:
            self.fleet.down()
        finally:
            shutil.rmtree(self.control_dir, ignore_errors=True)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=30,
                              cwd=measure.ROOT).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _meta(args, client, image_tag: str) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if _git("status", "--porcelain"):
        commit += " (with uncommitted changes)"
    ansible_core = version("ansible-core")
    return {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": ".venv/bin/python -m bench.run " + " ".join(args.argv),
        "machine": f"{cpu}, {os.cpu_count()} CPUs, {memory_gb:.0f} GiB, Linux {platform.release()}, "
                   f"Docker {client.version().get('Version')} (shared with other users' tests)",
        "versions": f"orthanc-harden {version('orthanc-harden')}, pyinfra {version('pyinfra')}, "
                    f"ansible-core {ansible_core}, Python {platform.python_version()}",
        "commit": commit,
        "hosts": f"Debian 12 containers with systemd, sshd and Orthanc 1.5.7 (the lab's stand-in, "
                 f"authentication off, ufw inactive), upgraded from a local apt repository to Debian's 1.10.1; "
                 f"image {image_tag}",
        "store": f"{args.store}: users read by both tools from one owner-only file",
        "ansible": f"ansible-core {ansible_core}, bench/ansible/harden.yml, forks = parallel, pipelining on, "
                   "Ansible's default ssh_args (ControlPersist 60s), gather_facts off, check mode as its audit",
    }


def _parse(argv: list[str]):
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10", help="comma-separated fleet sizes (default 10; e.g. 10,25,50)")
    parser.add_argument("--parallel", type=int, default=0,
                        help="hosts at once for both tools: pyinfra --parallel = Ansible forks (default: N)")
    parser.add_argument("--port-base", type=int, default=12000,
                        help="host i gets SSH base+10i and HTTP base+10i+1 on 127.0.0.1 (range 5000-15999)")
    parser.add_argument("--store", choices=store.KINDS, default="file",
                        help="where both tools read the users: an owner-only YAML file (default) or the same "
                             "encrypted with Ansible Vault")
    parser.add_argument("--keep-workdir", action="store_true",
                        help="keep the run's directory (logs, inventories, the users file and any vault password file)")
    parser.add_argument("--cleanup", action="store_true",
                        help="only remove leftovers of interrupted bench runs (bench label), then exit")
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes takes integers, e.g. 10,25,50")
    if not args.sizes or not all(1 <= s <= MAX_SIZE for s in args.sizes):
        parser.error(f"each size must be 1..{MAX_SIZE}")
    if args.parallel < 0:
        parser.error("--parallel must not be negative (0: N)")
    return args


def _interrupt(signum, _frame):
    # SIGTERM/SIGHUP behave like Ctrl-C: unwind through the finally blocks that tear the hosts down.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    from orthanc_harden.lab.engine import ensure_engine

    client = ensure_engine(say)
    if args.cleanup:
        say(f"bench: removed {hosts.remove_all_bench(client)} leftover container(s)/network(s)")
        return 0
    leftovers = client.containers.list(all=True, filters={"label": f"{LABEL}=1"})
    if leftovers:
        say(f"bench: note: {len(leftovers)} container(s) of another bench run exist "
            "(`python -m bench.run --cleanup` removes them if that run is dead)")
    image_tag = image.ensure(client, say)
    run_id = secrets.token_hex(3)
    workdir = image.CACHE / f"run-{run_id}"
    workdir.mkdir(parents=True, mode=0o700)
    stem = f"bench-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-n{'-'.join(map(str, args.sizes))}"
    data = {"meta": _meta(args, client, image_tag), "sizes": {}, "targets": [], "notes": []}
    code = 0
    try:
        secrets_store = store.create(workdir, args.store)
        for size in args.sizes:
            run = SizeRun(args, client, run_id, size, image_tag, workdir, secrets_store)
            try:
                data["sizes"][str(size)] = run.execute()
            finally:
                run.close()
            data["targets"] = report.targets(data["sizes"])
            # Written after every size: a later failure keeps what was measured.
            paths = report.write(data, RESULTS, stem)
    except KeyboardInterrupt:
        say("bench: interrupted; hosts removed")
        code = 130
    finally:
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"bench: run directory kept: {workdir}")
    if code == 0:
        missing = [n for n in (25, 50) if n not in args.sizes]
        if missing:
            data["notes"].append(f"N={', '.join(map(str, missing))} not part of this run: targets at N=50 are "
                                 "shown at the largest N as indicative only.")
        data["notes"].append("2 shared cores: other users' tests may run on the same machine; `load_before` in the "
                             "JSON is the 1-minute load average before each run.")
        paths = report.write(data, RESULTS, stem)
        say(f"bench: results {paths[1].relative_to(measure.ROOT)} and {paths[0].relative_to(measure.ROOT)}")
    return code


if __name__ == "__main__":
    sys.exit(main())
