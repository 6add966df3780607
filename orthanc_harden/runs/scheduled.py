"""One scheduled run (`orthanc-harden scheduled-run`): a lock, the run, a JSON report kept with a retention limit.

The exit status is the run's own (0 compliant, 1 not compliant, 2 failed), so a systemd unit running this fails
when a host is not compliant and monitoring sees it; 75 (EX_TEMPFAIL) means another run held the lock.
"""

from __future__ import annotations

import fcntl
from datetime import datetime, timezone
from pathlib import Path

from ..private_files import write_private

EXIT_LOCKED = 75


def _suffix(shard) -> str:
    # Shards may share one report directory (a volume mounted by every runner): each keeps its own lock and
    # reports, so that they run side by side and one shard's retention never removes another's reports.
    return f"-shard-{shard.index}-of-{shard.count}" if shard else ""


def prune(report_dir: Path, mode: str, keep: int, shard=None) -> list[Path]:
    """Remove all but the newest `keep` reports of this mode and shard (names sort by time)."""
    pattern = f"{mode}-*{_suffix(shard)}.json" if shard else f"{mode}-*Z.json"
    reports = sorted(report_dir.glob(pattern))
    stale = reports[:-keep] if keep > 0 else reports
    for path in stale:
        path.unlink()
    return stale


def scheduled_run(mode: str, inventory: str, report_dir: Path, keep: int, parallel: int = 20,
                  shard=None) -> tuple[int, str]:
    """Run audit or remediate (of one shard) under a lock; returns (exit status, one line: the counts, then each
    instance or host that is not compliant with its findings in words or its reason)."""
    from ..audit import render, words

    report_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(report_dir / f".lock{_suffix(shard)}", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return EXIT_LOCKED, f"another orthanc-harden run holds {lock.name}: this one is skipped"
        if mode == "remediate":
            from .remediate import remediate

            report = remediate(inventory, parallel=parallel, shard=shard)
        else:
            from .audit import audit

            report = audit(inventory, parallel=parallel, shard=shard)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        path = report_dir / f"{mode}-{stamp}{_suffix(shard)}.json"
        write_private(path, render.to_json(report))
        prune(report_dir, mode, keep, shard)
    counts = ", ".join(f"{n} {status}" for status, n in report["summary"].items() if n)
    line = f"orthanc-harden {mode}: {counts or 'no hosts'}; exit {report['exit_code']}; report {path}"
    # Then what is wrong, in words, so the journal or cron's mail says it without opening the report; one line
    # still, so each run is one journal entry.
    return report["exit_code"], "; ".join([line] + words.report_lines(report))
