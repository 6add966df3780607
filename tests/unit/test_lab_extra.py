"""The lab is an optional extra (#22): only `orthanc-harden lab` imports it, the other commands work without its
packages, and `lab up` without them says in one line what to install, before anything starts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import tomllib

from orthanc_harden import lab
from tests.conftest import ROOT

# Runs the real CLI in a fresh interpreter where the lab's own package (pydicom) cannot be imported, as in an
# installation without the `lab` extra; prints what it returned and which lab modules got imported.
WITHOUT_EXTRA = textwrap.dedent("""
    import json, sys

    sys.modules["pydicom"] = None  # `import pydicom` fails and importlib finds no such module, as when not installed
    from orthanc_harden import cli

    code = cli.main(sys.argv[1:])
    print(json.dumps({"code": code, "lab": sorted(m for m in sys.modules if m.startswith("orthanc_harden.lab"))}))
""")


def _cli_without_extra(*argv: str) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, "-c", WITHOUT_EXTRA, *argv], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_the_extra_named_here_is_the_one_pyproject_declares():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = [re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()
                for requirement in project["project"]["optional-dependencies"]["lab"]]
    assert sorted(declared) == sorted(lab.EXTRA)


def test_commands_other_than_lab_never_import_the_lab(tmp_path):
    result, _ = _cli_without_extra("findings", "--json")
    assert result == {"code": 0, "lab": []}
    result, stderr = _cli_without_extra("remediate", str(tmp_path / "missing.py"))
    assert result == {"code": 2, "lab": []}, stderr
    assert "inventory" in stderr and "does not exist" in stderr


def test_lab_up_without_the_extra_is_one_line_and_starts_nothing():
    from orthanc_harden.lab import state

    assert not state.lab_dir("h22b-noextra").exists()
    result, stderr = _cli_without_extra("lab", "up", "--lab", "h22b-noextra", "--hosts", "1", "--containers", "0",
                                        "--port-base", "2400")
    assert result["code"] == 1
    assert stderr.strip() == ("orthanc-harden lab: error: the lab needs the optional extra `lab` (missing: pydicom): "
                              "pip install 'orthanc-harden[lab]'")
    assert "orthanc_harden.lab.image" not in result["lab"], "nothing was built or started"
    assert not state.lab_dir("h22b-noextra").exists()
