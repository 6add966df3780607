"""Shared test plumbing: where the lab lives for tests, and the CI rule that integration tests never skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Tests run their own lab, apart from a user's `default` lab, on ports of their own.
TEST_LAB = "pytest"
TEST_PORT_BASE = 25200


def unavailable(reason: str):
    """Skip locally; under CI=true an unavailable real component is a failure, never a silent skip."""
    if CI:
        pytest.fail(f"required test component unavailable under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def run_cli(*args: str, env: dict | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run the real `orthanc-harden` console entry point as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "orthanc_harden.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})},
    )
