"""Measure one command on the control node: ``python -m bench.wrap RESULT.json TIMEOUT -- ARGV...``.

A fresh process per measured command, because ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` is a high-water mark that
never goes down: in the harness it would carry one scenario's peak into the next. Here it starts at zero.

- CPU: user + system time of every descendant, from ``RUSAGE_CHILDREN`` once all are reaped. This process is a
  child subreaper, so daemonised descendants (Ansible's OpenSSH ControlPersist masters) are re-parented to it,
  reaped here and counted, instead of escaping to init with their CPU time.
- Memory: ``ru_maxrss`` is the largest single process. A multi-process tool (Ansible's forks) also gets the
  sampled peak of the whole tree: summed RSS (counts shared pages once per process) and summed PSS (shares them).
- Wall: from spawn to the main process's exit, woken by a pidfd (no polling delay).
- Bounded: past TIMEOUT seconds, or on SIGINT/SIGTERM, the whole tree is terminated, then killed.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
SAMPLE_EVERY = 0.5  # seconds: often enough for multi-second runs, cheap enough not to compete for 2 cores
GRACE = 10.0        # seconds leftover descendants get after SIGTERM


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the command name may hold spaces and parentheses
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _memory_kb(pids: list[int]) -> tuple[int, int]:
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            continue
    return rss, pss


def _reap(main_pid: int) -> int | None:
    """Reap every exited descendant; the main process's exit code when it was among them."""
    status = None
    while True:
        try:
            pid, raw = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == main_pid:
            status = os.waitstatus_to_exitcode(raw)


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _finish_tree(main_pid: int, status: int | None) -> int | None:
    """Terminate what is left (ControlPersist masters, or everything on timeout), bounded, reaping as we go."""
    me = os.getpid()
    if status is None:
        try:
            os.killpg(main_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    _signal_all(_descendants(me), signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    while time.monotonic() < deadline:
        found = _reap(main_pid)
        status = found if status is None else status
        if not _descendants(me):
            return status
        time.sleep(0.1)
    _signal_all(_descendants(me), signal.SIGKILL)
    time.sleep(0.2)
    found = _reap(main_pid)
    return status if status is not None else found


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: python -m bench.wrap RESULT.json TIMEOUT -- ARGV...", file=sys.stderr)
        return 2
    result_path, timeout, command = argv[0], float(argv[1]), argv[3:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("bench.wrap: cannot become a child subreaper", file=sys.stderr)
        return 2
    stop: dict[str, int | None] = {"signal": None}

    def on_signal(signum, _frame) -> None:
        stop["signal"] = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    started = time.monotonic()
    # Its own process group, so a timeout or Ctrl-C can end the whole tool at once.
    child = subprocess.Popen(command, start_new_session=True)
    pidfd = os.pidfd_open(child.pid)
    me = os.getpid()
    status, wall, peak_rss, peak_pss, samples = None, None, 0, 0, 0
    timed_out = False
    while True:
        status = _reap(child.pid)
        if status is not None:
            wall = time.monotonic() - started
            break
        if stop["signal"] is not None:
            break
        if time.monotonic() - started > timeout:
            timed_out = True
            break
        rss, pss = _memory_kb(_descendants(me))
        peak_rss, peak_pss, samples = max(peak_rss, rss), max(peak_pss, pss), samples + 1
        select.select([pidfd], [], [], SAMPLE_EVERY)
    os.close(pidfd)
    child.returncode = status if status is not None else -1  # reaped here; keep Popen from waiting again
    status = _finish_tree(child.pid, status)
    if wall is None:
        wall = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "exit": status, "wall_s": round(wall, 3), "user_s": round(usage.ru_utime, 3),
        "sys_s": round(usage.ru_stime, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "tree_peak_rss_mb": round(peak_rss / 1024, 1), "tree_peak_pss_mb": round(peak_pss / 1024, 1),
        "memory_samples": samples, "timed_out": timed_out, "interrupted": stop["signal"] is not None,
    }
    tmp = f"{result_path}.tmp"
    with open(tmp, "w") as handle:
        json.dump(result, handle)
    os.replace(tmp, result_path)
    return 130 if stop["signal"] is not None else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
