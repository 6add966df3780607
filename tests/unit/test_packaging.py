"""Packaging metadata: the licence as an SPDX expression (#19), which setuptools reads from version 77 on; the
table form made every `pip install` print a SetuptoolsDeprecationWarning."""

from __future__ import annotations

import re
import tomllib

from tests.conftest import ROOT


def test_license_is_an_spdx_expression_and_the_build_needs_a_setuptools_that_reads_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    (setuptools,) = [r for r in project["build-system"]["requires"] if r.startswith("setuptools")]
    floor = re.match(r"setuptools>=(\d+)", setuptools)
    assert floor and int(floor.group(1)) >= 77, setuptools
