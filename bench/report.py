"""Targets, ratios and the Markdown table of a bench run. Targets are goals: evaluated and shown, never asserted."""

from __future__ import annotations

import json
import os
from pathlib import Path

OH, ANSIBLE = "orthanc-harden", "ansible"
SCENARIOS = ("audit", "remediate-vulnerable", "remediate-compliant")
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
    runs = sizes[str(at)]["runs"]
    out = []
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
    if "25" in sizes and "50" in sizes:
        for scenario in SCENARIOS:
            small, large = sizes["25"]["runs"].get(key(OH, scenario)), sizes["50"]["runs"].get(key(OH, scenario))
            if small and large:
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
                 for size in sizes.values() for s in SCENARIOS if key(OH, s) in size["runs"]), default=None)
    if worst is not None:
        out.append(_target("Orthanc restarts per host per run (orthanc-harden)", "<= 1", worst, worst <= 1,
                           f"N={','.join(map(str, measured))}"))
    quiet = [size["runs"][key(OH, "remediate-compliant")]["orthanc_restarts_per_host"]["max"]
             for size in sizes.values() if key(OH, "remediate-compliant") in size["runs"]]
    if quiet:
        out.append(_target("Orthanc restarts when already compliant (orthanc-harden)", "0", max(quiet),
                           max(quiet) == 0, f"N={','.join(map(str, measured))}"))
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
    if run.get("error"):
        return f"**{run['error']}**"
    if run.get("recap"):
        recap = run["recap"]
        text = f"tasks changed={recap['changed']} failed={recap['failed']} unreachable={recap['unreachable']}"
        if run.get("audit_after"):
            text += f"; orthanc-harden audit after: exit {run['audit_after']['exit']}"
        return text
    if run.get("summary"):
        return ", ".join(f"{k}={v}" for k, v in run["summary"].items() if v)
    return ""


def _host_cpu(run: dict) -> str:
    cpu = run.get("host_cpu_s_per_host")
    return "" if not cpu else f"{cpu['mean']:.2f}"


def markdown(data: dict) -> str:
    meta = data["meta"]
    lines = [f"# orthanc-harden fleet benchmark, {meta['started']}", "",
             f"Command: `{meta['command']}`  ", f"Control node: {meta['machine']}  ",
             f"Versions: {meta['versions']}  ", f"Commit: {meta['commit']}  ",
             f"Hosts: {meta['hosts']}  ", f"Users: {meta['store']}  ", f"Ansible peer: {meta['ansible']}", "",
             "Wall and CPU are the control node's (CPU: user+system of the tool and every process it started); "
             "peak RSS is the largest single process (`ru_maxrss`), tree PSS the sampled peak of all of them. "
             "Host CPU is the mean CPU time used inside each host during the run (its cgroup: sshd, the "
             "commands, Orthanc), which here shares the control node's cores. "
             "SSH commands and logins per host come from each host's sshd log (LogLevel VERBOSE), Orthanc "
             "restarts from its journal; shown as mean (min-max) when hosts differ. Load before: the control node's "
             "1-minute load average when the run started (2 cores, shared with other users' tests).", ""]
    for n in sorted(data["sizes"], key=int):
        size = data["sizes"][n]
        lines += [f"## N = {n} (parallel {size['parallel']})", "",
                  "| scenario | tool | wall s | CPU s | host CPU s/host | peak RSS MB | tree PSS MB | SSH cmds/host "
                  "| SSH logins/host | Orthanc restarts/host | exit | outcome | checked after | load before |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |"]
        for name, run in size["runs"].items():
            tool, _, scenario = name.partition("/")
            lines.append(f"| {scenario or 'floor: pyinfra exec -- true'} | {tool if scenario else 'pyinfra'} "
                         f"| {run['wall_s']:.1f} | {run['cpu_s']:.1f} | {_host_cpu(run)} | {run['max_rss_mb']:.0f} "
                         f"| {run['tree_peak_pss_mb']:.0f} | {_spread(run['ssh_commands_per_host'])} "
                         f"| {_spread(run['ssh_logins_per_host'])} | {_spread(run['orthanc_restarts_per_host'])} "
                         f"| {run['exit']} | {_outcome(run)} | {_verified(run)} | {run['load_before']:g} |")
        lines += ["", "| scenario | wall orthanc-harden / Ansible | CPU orthanc-harden / Ansible "
                      "| SSH commands orthanc-harden / Ansible |", "| --- | ---: | ---: | ---: |"]
        for scenario, ratio in size["ratios"].items():
            lines.append(f"| {scenario} | {ratio['wall']} | {ratio['cpu']} | {ratio['ssh_commands']} |")
        lines.append("")
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
