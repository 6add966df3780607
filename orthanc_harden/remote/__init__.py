"""Programs that run on managed hosts: a shared stdlib-only library followed by one job's body.

Each program goes to the host as ``python3 -c PROGRAM ARGS`` so that standard input stays free for data that must
never be on a command line (users and passwords).
"""

from __future__ import annotations

from importlib import resources


# Parts a body needs besides the library, sent ahead of it.
PARTS = {"firewall": ("firewall_guard", "docker_user"), "probe": ("docker_user",)}


def program(body: str) -> str:
    """The library, then the body (``probe`` or ``auth``), as one Python source text."""
    here = resources.files("orthanc_harden.remote")
    names = ("orthanc_config", *PARTS.get(body, ()), body)
    return "\n\n".join(here.joinpath(f"{name}.py").read_text() for name in names)


def load(body: str) -> dict:
    """The same program as a namespace in this process, for files the control node holds (a container's config)."""
    namespace: dict = {"__name__": f"orthanc_harden_remote_{body}"}
    exec(compile(program(body), f"<orthanc-harden {body}>", "exec"), namespace)  # our own packaged source
    return namespace
