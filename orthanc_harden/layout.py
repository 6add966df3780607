"""The README's layout table: every module of the package, described by the first sentence of its docstring.

``python -m orthanc_harden.layout --update-readme`` rewrites it; a unit test fails when it is not current.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from . import readme_table

PACKAGE = Path(__file__).resolve().parent
BEGIN, END = "<!-- BEGIN LAYOUT -->", "<!-- END LAYOUT -->"
# The programs sent to hosts go as their text on the command line (python3 -c): they open with a comment, not a
# docstring, and say here what they do rather than carry one more line to every host.
REMOTE_BODIES = {
    "auth.py": "On the host: register the store's users and turn authentication on, in place, with a backup.",
    "check.py": "On the host: the probe and the authentication and firewall plans for what it found, in one run.",
    "docker_user.py": "On the host: the Orthanc containers of its Docker engine and the tool's DOCKER-USER rules.",
    "firewall.py": "On the host: check, apply or remove the firewall rules for Orthanc's ports "
                   "(firewalld, ufw, nftables, iptables).",
    "firewall_guard.py": "On the host: commit-confirmed firewall changes (SSH kept open, a revert armed).",
    "gate.py": "On the host: the health gate when the control node cannot reach Orthanc's port.",
    "probe.py": "On the host: one JSON document with its whole Orthanc state; passwords never leave it.",
}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "files" not in p.relative_to(PACKAGE).parts)


def summary(path: Path) -> str:
    """The first sentence of the module's docstring (REMOTE_BODIES for the remote programs' bodies)."""
    relative = path.relative_to(PACKAGE)
    if relative.parts[0] == "remote" and relative.name in REMOTE_BODIES:
        return REMOTE_BODIES[relative.name]
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    sentence = re.split(r"(?<=[.!?])\s", paragraph, maxsplit=1)[0]
    return sentence.replace("|", "\\|")


def markdown_table() -> str:
    lines = ["| module | what it is |", "| --- | --- |"]
    for path in modules():
        relative = path.relative_to(PACKAGE.parent)
        name = f"{relative.parent}/" if path.name == "__init__.py" else str(relative)
        lines.append(f"| `{name}` | {summary(path)} |")
    return "\n".join(lines) + "\n"


def update_readme(path: Path) -> bool:
    """Rewrite the table between the markers; True when the file changed."""
    return readme_table.update(path, BEGIN, END, markdown_table())


if __name__ == "__main__":
    readme_table.command_line(sys.argv[1:], BEGIN, END, markdown_table)
