"""Run one tool invocation under bench.wrap and read back what it measured."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measured(argv: list[str], env: dict[str, str], log: Path, timeout: float) -> dict:
    """Wall, CPU and memory of `argv` (and everything it starts); its output goes to `log`, never to the table."""
    result = log.with_suffix(".measure.json")
    result.unlink(missing_ok=True)
    wrapper = [sys.executable, "-m", "bench.wrap", str(result), str(timeout), "--", *argv]
    with open(log, "w") as out:
        # The wrapper stays in our process group: Ctrl-C reaches it too and it ends its tool's whole tree.
        proc = subprocess.Popen(wrapper, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **env}, cwd=ROOT)
        try:
            proc.wait(timeout=timeout + 60)
        except BaseException:
            # Interrupted or the wrapper itself hung: ask it to end its tree, then make sure.
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            raise
    if not result.exists():
        raise RuntimeError(f"bench.wrap wrote no measurement for {argv[:3]} (see {log})")
    return json.loads(result.read_text())
