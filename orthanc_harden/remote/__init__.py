"""Programs that run on managed hosts: a shared stdlib-only library followed by one job's body.

Each program goes to the host as ``python3 -c PROGRAM ARGS`` so that standard input stays free for data that must
never be on a command line (users and passwords).
"""

from __future__ import annotations

import base64
import zlib
from functools import lru_cache
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


@lru_cache(maxsize=None)
def bundle() -> str:
    """The ``check`` body with the library, the probe and the two planners as one program, compressed: as text
    they would pass the kernel's limit on one command-line argument (128 KiB)."""
    here = resources.files("orthanc_harden.remote")

    def text(name: str) -> str:
        return here.joinpath(f"{name}.py").read_text()

    sources = {"library": text("orthanc_config"),
               **{body: "\n\n".join(text(name) for name in (*PARTS.get(body, ()), body))
                  for body in ("probe", "auth", "firewall")}}
    source = f"SOURCES = {sources!r}\n\n{text('check')}"
    packed = base64.b64encode(zlib.compress(source.encode(), 9)).decode()
    return f"import base64,zlib;exec(zlib.decompress(base64.b64decode('{packed}')))"
