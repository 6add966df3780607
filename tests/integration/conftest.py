from __future__ import annotations

import os

import pytest

from orthanc_harden.lab import state
from tests.conftest import TEST_LAB, TEST_PORT_BASE, run_cli, unavailable


@pytest.fixture(scope="session")
def lab() -> dict:
    """The test lab, brought up once per session through the real CLI (3 package hosts, 1 container host)."""
    os.environ["ORTHANC_HARDEN_LAB"] = TEST_LAB
    proc = run_cli("lab", "up", "--lab", TEST_LAB, "--port-base", str(TEST_PORT_BASE))
    if proc.returncode != 0:
        unavailable(f"`orthanc-harden lab up` failed: {proc.stderr.strip().splitlines()[-1:]}")
    data = state.load(state.lab_dir(TEST_LAB))
    assert data is not None, "lab up succeeded but wrote no state"
    return data
