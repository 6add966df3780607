"""Targets, ratios and the Markdown table of a bench run. Targets are goals: evaluated and shown, never asserted."""

from __future__ import annotations

import json
import os
from pathlib import Path

OH, ANSIBLE = "orthanc-harden", "ansible"
SCENARIOS = ("audit", "remediate-vulnerable", "remediate-compliant")
# The compliant remediate with the probe's cache taken away first: before #24's cache, in the same run.
NO_CACHE = "remediate-compliant-no-probe-cache"
# The compliant remediate checking each host with three programs (probe, auth plan, firewall plan): before the
# combined check of #24's last step, in the same run.
THREE_PROGRAMS = "remediate-compliant-three-programs"
TARGET_N = 50


def key(tool: str, scenario: str) -> str:
    return f"{tool}/{scenario}"


def ratios(runs: dict) -> dict:
    """orthanc-harden / Ansible per scenario: below 1 means orthanc-harden spends less."""
    out = {}
    for scenario in SCENARIOS:
        mine, peer = runs.get(key(OH, scenario)), runs.get(key(ANSIBLE, scenario))
        if not (mine and peer):
            continue
        if mine.get("void") or peer.get("void"):
            out[scenario] = {"void": True}
            continue
        out[scenario] = {
            "wall": _div(mine["wall_s"], peer["wall_s"]),
            "cpu": _div(mine["cpu_s"], peer["cpu_s"]),
            "ssh_commands": _div(mine["ssh_commands_per_host"]["mean"], peer["ssh_commands_per_host"]["mean"]),
        }
    return out


def _div(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def _peak_mb(run: dict) -> float:
    # Conservative: the larger of the biggest single process and the sampled sum of the whole tree's RSS.
    return max(run["max_rss_mb"], run["tree_peak_rss_mb"])


def _target(name: str, goal: str, value, met: bool | None, where: str) -> dict:
    return {"target": name, "goal": goal, "measured": value, "where": where,
            "status": "not measured" if met is None else ("met" if met else "missed")}


def targets(sizes: dict) -> list[dict]:
    """The issue's targets, at N=50 when it was run, otherwise at the largest N (marked indicative)."""
    measured = sorted(int(n) for n in sizes)
    if not measured:
        return []
    at = TARGET_N if TARGET_N in measured else measured[-1]
    where = f"N={at}" if at == TARGET_N else f"N={at} (indicative: N={TARGET_N} not run)"
    runs = {name: run for name, run in sizes[str(at)]["runs"].items() if not run.get("void")}
    out = []
    void = [f"N={n} {name}" for n in map(str, measured) for name, run in sizes[n]["runs"].items() if run.get("void")]
    if void:
        out.append(_target("runs void (hosts not all compliant after): left out of every ratio and target",
                           "none", ", ".join(void), False, "all sizes"))
    compliant = runs.get(key(OH, "remediate-compliant"))
    peer = runs.get(key(ANSIBLE, "remediate-compliant"))
    floor = runs.get("floor")
    if compliant:
        most = compliant["ssh_commands_per_host"]["max"]
        out.append(_target("compliant remediate: SSH commands per host", "<= 3", most, most <= 3, where))
        if peer:
            speedup = _div(peer["wall_s"], compliant["wall_s"])
            out.append(_target("compliant remediate: faster than Ansible", ">= 5x", f"{speedup}x",
                               speedup is not None and speedup >= 5, where))
        if floor:
            over = _div(compliant["wall_s"], floor["wall_s"])
            out.append(_target("compliant remediate: wall time over the floor (pyinfra exec -- true)", "<= 2x",
                               f"{over}x", over is not None and over <= 2, where))
    out += _per_host_targets(sizes, measured)
    if "25" in sizes and "50" in sizes:
        for scenario in SCENARIOS:
            small, large = sizes["25"]["runs"].get(key(OH, scenario)), sizes["50"]["runs"].get(key(OH, scenario))
            if small and large and not (small.get("void") or large.get("void")):
                growth = _div(large["wall_s"], small["wall_s"])
                out.append(_target(f"{scenario}: wall time growth N=25 -> 50", "<= 1.6x", f"{growth}x",
                                   growth is not None and growth <= 1.6, "N=25, N=50"))
    else:
        out.append(_target("wall time growth N=25 -> 50", "<= 1.6x", None, None, "needs N=25 and N=50"))
    mine = [run for name, run in runs.items() if name.startswith(OH + "/")]
    if mine:
        peak = max(_peak_mb(run) for run in mine)
        out.append(_target("control-node peak RSS (orthanc-harden, any scenario)", "<= 300 MB", f"{peak} MB",
                           peak <= 300, where))
    # Restarts are counted per host at every size that ran, not only the largest.
    worst = max((size["runs"][key(OH, s)]["orthanc_restarts_per_host"]["max"]
                 for size in sizes.values() for s in SCENARIOS
                 if key(OH, s) in size["runs"] and not size["runs"][key(OH, s)].get("void")), default=None)
    if worst is not None:
        out.append(_target("Orthanc restarts per host per run (orthanc-harden)", "<= 1", worst, worst <= 1,
                           f"N={','.join(map(str, measured))}"))
    quiet = [size["runs"][key(OH, "remediate-compliant")]["orthanc_restarts_per_host"]["max"]
             for size in sizes.values() if key(OH, "remediate-compliant") in size["runs"]
             and not size["runs"][key(OH, "remediate-compliant")].get("void")]
    if quiet:
        out.append(_target("Orthanc restarts when already compliant (orthanc-harden)", "0", max(quiet),
                           max(quiet) == 0, f"N={','.join(map(str, measured))}"))
    return out


def _per_host_targets(sizes: dict, measured: list[int]) -> list[dict]:
    """What one host pays (issue #24): host CPU of the compliant check against the floor's, at every size; the
    wall time of one host alone (N=1, or the smallest N as indicative) against the floor's."""
    out = []
    for n in measured:
        runs = sizes[str(n)]["runs"]
        compliant, floor = runs.get(key(OH, "remediate-compliant")), runs.get("floor")
        if not (compliant and floor) or compliant.get("void"):
            continue
        mine, base = compliant.get("host_cpu_s_per_host"), floor.get("host_cpu_s_per_host")
        if mine and base:
            over = _div(mine["mean"], base["mean"])
            out.append(_target("compliant remediate: host CPU per host over the floor's", "<= 2x",
                               f"{over}x ({mine['mean']:.3f} s / {base['mean']:.3f} s)",
                               over is not None and over <= 2, f"N={n}"))
    small = measured[0]
    runs = sizes[str(small)]["runs"]
    compliant, floor = runs.get(key(OH, "remediate-compliant")), runs.get("floor")
    where = f"N={small}" if small == 1 else f"N={small} (indicative: N=1 not run)"
    if compliant and floor and not compliant.get("void"):
        over = _div(compliant["wall_s"], floor["wall_s"])
        out.append(_target("one host alone: compliant remediate wall time over the floor's", "<= 2x",
                           f"{over}x ({compliant['wall_s']:.2f} s / {floor['wall_s']:.2f} s)",
                           over is not None and over <= 2, where))
    return out


def _spread(stats: dict) -> str:
    if stats["min"] == stats["max"]:
        return f"{stats['max']:g}"
    return f"{stats['mean']:g} ({stats['min']:g}-{stats['max']:g})"


def _verified(run: dict) -> str:
    check = run.get("verified")
    if not check:
        return ""
    text = f"{check['anonymous_401']}/{check['hosts']} 401, {check['user_200']}/{check['hosts']} user 200"
    return text if check["anonymous_401"] == check["user_200"] == check["hosts"] else f"**{text}**"


def _outcome(run: dict) -> str:
    if run.get("void"):
        return f"**VOID: {run['void']}**"
    if run.get("error"):
        return f"**{run['error']}**"
    if run.get("recap"):
        recap = run["recap"]
        text = f"tasks changed={recap['changed']} failed={recap['failed']} unreachable={recap['unreachable']}"
    elif run.get("summary"):
        text = ", ".join(f"{k}={v}" for k, v in run["summary"].items() if v)
    else:
        text = ""
    if run.get("audit_after"):
        text += f"; audit after: exit {run['audit_after']['exit']}"
    return text


def _host_cpu(run: dict) -> str:
    cpu = run.get("host_cpu_s_per_host")
    return "" if not cpu else f"{cpu['mean']:.3f}"


def _host_span(run: dict) -> str:
    span = run.get("host_span_s_per_host")
    return "" if not span else f"{span['max']:.2f}"


def markdown(data: dict) -> str:
    meta = data["meta"]
    lines = [f"# orthanc-harden fleet benchmark, {meta['started']}", "",
             f"Command: `{meta['command']}`  ", f"Control node: {meta['machine']}  ",
             f"Versions: {meta['versions']}  ", f"Commit: {meta['commit']}  ",
             f"Hosts: {meta['hosts']}  ", f"Users: {meta['store']}  ", f"Ansible peer: {meta['ansible']}", "",
             "Wall and CPU are the control node's (CPU: user+system of the tool and every process it started); "
             "peak RSS is the largest single process (`ru_maxrss`), tree PSS the sampled peak of all of them. "
             "Host CPU is the mean CPU time used inside each host during the run (its cgroup: sshd, the "
             "commands, Orthanc), which here shares the control node's cores. Slowest host: the largest span, "
             "over the hosts, from a host's first SSH login to its last closed session (its sshd's own timestamps), "
             "which leaves out the control node's start and Ansible's idle ControlPersist connection. "
             "A remediation whose hosts are not all compliant afterwards (the harness's HTTP check from the control "
             "node and an untimed orthanc-harden audit) is VOID: shown with the reason, left out of every ratio "
             "and target. "
             "SSH commands and logins per host come from each host's sshd log (LogLevel VERBOSE), Orthanc "
             "restarts from its journal; shown as mean (min-max) when hosts differ. Load before: the control node's "
             "1-minute load average when the run started (2 cores, shared with other users' tests).", ""]
    for n in sorted(data["sizes"], key=int):
        size = data["sizes"][n]
        lines += [f"## N = {n} (parallel {size['parallel']})", "",
                  "| scenario | tool | wall s | CPU s | host CPU s/host | slowest host s | peak RSS MB | tree PSS MB "
                  "| SSH cmds/host | SSH logins/host | Orthanc restarts/host | exit | outcome | checked after "
                  "| load before |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- "
                  "| ---: |"]
        for name, run in size["runs"].items():
            tool, _, scenario = name.partition("/")
            lines.append(f"| {scenario or 'floor: pyinfra exec -- true'} | {tool if scenario else 'pyinfra'} "
                         f"| {run['wall_s']:.2f} | {run['cpu_s']:.2f} | {_host_cpu(run)} | {_host_span(run)} "
                         f"| {run['max_rss_mb']:.0f} "
                         f"| {run['tree_peak_pss_mb']:.0f} | {_spread(run['ssh_commands_per_host'])} "
                         f"| {_spread(run['ssh_logins_per_host'])} | {_spread(run['orthanc_restarts_per_host'])} "
                         f"| {run['exit']} | {_outcome(run)} | {_verified(run)} | {run['load_before']:g} |")
        lines += ["", "| scenario | wall orthanc-harden / Ansible | CPU orthanc-harden / Ansible "
                      "| SSH commands orthanc-harden / Ansible |", "| --- | ---: | ---: | ---: |"]
        for scenario, ratio in size["ratios"].items():
            if ratio.get("void"):
                lines.append(f"| {scenario} | void | void | void |")
            else:
                lines.append(f"| {scenario} | {ratio['wall']} | {ratio['cpu']} | {ratio['ssh_commands']} |")
        lines.append("")
    lines += _probe_cache_section(data)
    lines += _one_program_section(data)
    lines += ["## Targets (goals, not assertions)", "", "| target | goal | measured | at | status |",
              "| --- | --- | --- | --- | --- |"]
    for target in data["targets"]:
        shown = "" if target["measured"] is None else target["measured"]
        lines.append(f"| {target['target']} | {target['goal']} | {shown} | {target['where']} | "
                     f"**{target['status']}** |")
    notes = data.get("notes") or []
    if notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def _by_kind(run: dict) -> str:
    kinds: dict[str, list[float]] = {}
    for host in run.get("per_host", {}).values():
        if host.get("host_cpu_s") is not None:
            kinds.setdefault(host.get("kind", "root"), []).append(host["host_cpu_s"])
    return ", ".join(f"{k} {sum(v) / len(v):.3f} ({len(v)})" for k, v in sorted(kinds.items()))


def _probe_cache_section(data: dict) -> list[str]:
    """Before and after the probe's cache, from the same run: the compliant remediate with the cache removed from
    every host first, then again with it (the figures per host that matter on a real fleet)."""
    rows = []
    for n in sorted(data["sizes"], key=int):
        runs = data["sizes"][n]["runs"]
        before, after, floor = runs.get(key(OH, NO_CACHE)), runs.get(key(OH, "remediate-compliant")), runs.get("floor")
        if not (before and after and floor):
            continue
        cpu = [r.get("host_cpu_s_per_host") or {} for r in (floor, before, after)]
        rows.append(f"| {n} | {cpu[0].get('mean', '')} | {cpu[1].get('mean', '')} | {cpu[2].get('mean', '')} "
                    f"| {_host_span(before)} | {_host_span(after)} | {before['wall_s']:.2f} | {after['wall_s']:.2f} "
                    f"| {_spread(before['ssh_commands_per_host'])} | {_spread(after['ssh_commands_per_host'])} "
                    f"| {_by_kind(after)} |")
    if not rows:
        return []
    return ["## What was profiled and changed (issue #24): the compliant check before and after, same run", "",
            "Profiled on an idle lab host, compliant, ufw active (the probe's child processes by "
            "`getrusage(RUSAGE_CHILDREN)` around each command, cProfile on the probe, `strace -f -e trace=execve` "
            "on the host's sshd during a compliant remediate): the probe spent about 0.21 s of CPU, of which "
            "`ufw status verbose` 0.11 s, `Orthanc --version` 0.03 s, `apt-mark showhold` 0.02 s and "
            "`dpkg-query -L orthanc` 0.005 s, every run, on a host where none of their answers had changed. "
            "Changed: the version, the package's file list and ufw's listing are kept in a root-only state file "
            "keyed by the identity of what they come from (the binary's realpath, device, inode, size, mtime and "
            "ctime; dpkg's list file and the package version; ufw's files, its package and the forwarding "
            "switches), and held packages are read from dpkg's status (`dpkg-query` already ran) instead of "
            "starting apt. The probe alone: about 0.21 -> 0.05 s of CPU. In the fleet, below: "
            "`remediate-compliant-no-probe-cache` is the compliant remediate right after the probe's state file "
            "(`/var/lib/orthanc-harden/probe-cache.json`) was removed from every host: the probe starts "
            "`Orthanc --version`, `dpkg-query -L orthanc` and `ufw status verbose` as every run did before, and "
            "writes the file. `remediate-compliant` is the next run, which finds it. Host CPU in seconds per host "
            "(mean); by kind: root login, sudo login, sshd on another port (hosts).", "",
            "| N | floor host CPU | no cache host CPU | cached host CPU | no cache slowest host s "
            "| cached slowest host s | no cache wall s | cached wall s | no cache SSH cmds | cached SSH cmds "
            "| cached host CPU by kind |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |", *rows, ""]


def _one_program_section(data: dict) -> list[str]:
    """Before and after the combined check, from the same run: the compliant remediate (probe cache present) with
    the probe and the two planners as three programs, and as one."""
    rows = []
    for n in sorted(data["sizes"], key=int):
        runs = data["sizes"][n]["runs"]
        before, after, floor = (runs.get(key(OH, THREE_PROGRAMS)), runs.get(key(OH, "remediate-compliant")),
                                runs.get("floor"))
        if not (before and after and floor):
            continue
        cpu = [r.get("host_cpu_s_per_host") or {} for r in (floor, before, after)]
        rows.append(f"| {n} | {cpu[0].get('mean', '')} | {cpu[1].get('mean', '')} | {cpu[2].get('mean', '')} "
                    f"| {_host_span(floor)} | {_host_span(before)} | {_host_span(after)} | {floor['wall_s']:.2f} "
                    f"| {before['wall_s']:.2f} | {after['wall_s']:.2f} "
                    f"| {_spread(before['ssh_commands_per_host'])} | {_spread(after['ssh_commands_per_host'])} "
                    f"| {_by_kind(before)} | {_by_kind(after)} "
                    f"| {before['load_before']:g} / {after['load_before']:g} |")
    if not rows:
        return []
    return ["## The compliant check in one program (issue #24, last step): before and after, same run", "",
            "`remediate-compliant-three-programs` is the compliant remediate as it was before: the probe, then "
            "the authentication plan and the firewall plan, each a Python program started by an SSH command of "
            "its own (`bench/three_programs.py` runs today's code with nothing read ahead, as the operations run "
            "in a user's deploy). `remediate-compliant`: one program computes the probe and both plans (the "
            "same comparisons: the store's users and passwords against the host's, the configured networks, "
            "ports and backend against the host's rules), and the operations use those plans for their identical "
            "request. Both with the probe's cache present; measured one right after the other. Host CPU in "
            "seconds per host (mean); by kind: root login, sudo login, sshd on another port (hosts); load: the "
            "1-minute load average before each.", "",
            "| N | floor host CPU | three programs host CPU | one program host CPU | floor slowest host s "
            "| three programs slowest host s | one program slowest host s | floor wall s | three programs wall s "
            "| one program wall s | three programs SSH cmds | one program SSH cmds | three programs by kind "
            "| one program by kind | load before (three / one) |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |",
            *rows, ""]


def _write(path: Path, text: str) -> None:
    # Atomic: a reader (the README's link) never sees half a table. *.tmp is git-ignored.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write(data: dict, directory: Path, stem: str) -> tuple[Path, Path]:
    """bench/results/<stem>.{json,md} plus latest.{json,md}, which the README links."""
    directory.mkdir(parents=True, exist_ok=True)
    text_json = json.dumps(data, indent=1, sort_keys=False) + "\n"
    text_md = markdown(data)
    for name, text in ((f"{stem}.json", text_json), (f"{stem}.md", text_md), ("latest.json", text_json),
                       ("latest.md", text_md)):
        _write(directory / name, text)
    return directory / f"{stem}.json", directory / f"{stem}.md"
