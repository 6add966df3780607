"""The `orthanc-harden` command line."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from . import __version__

# Not a terminal (cron, CI, a pipe): rich would wrap tables at 80 columns; logs read better unwrapped.
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def _say(message: str) -> None:
    err.print(f"[dim]lab:[/dim] {message}")


def _lab_up(args) -> int:
    from .lab import fleet

    spec = fleet.LabSpec(lab=args.lab, hosts=args.hosts, containers=args.containers,
                         port_base=args.port_base, mirror=args.mirror)
    data = fleet.up(spec, _say)
    count = len(data["hosts"]) + len(data["containers"])
    out.print(f"lab {data['lab']!r} is up: {count} Orthanc(s); inventory: inventories/lab.py")
    return _lab_status(args)


def _lab_status(args) -> int:
    from .lab import fleet

    rows = fleet.status(args.lab)
    if getattr(args, "json", False):
        out.print_json(json.dumps(rows))
        return 0
    table = Table(title=f"orthanc-harden lab {args.lab!r}")
    for column in ("host", "kind", "container", "ssh", "orthanc", "anonymous GET /system", "seeded"):
        table.add_column(column)
    for row in rows:
        anon = row["anonymous_system"]
        verdict = {200: "[red]200 exposed[/red]", 401: "[green]401 auth on[/green]"}.get(anon, str(anon))
        table.add_row(row["name"], row["kind"], row["state"],
                      f"127.0.0.1:{row['ssh_port']}" if "ssh_port" in row else "Docker API",
                      f"http://127.0.0.1:{row['http_port']}", verdict, str(len(row["seeded_instances"])))
    out.print(table)
    return 0


def _lab_down(args) -> int:
    from .lab import fleet

    removed = fleet.down(args.lab, _say)
    out.print(f"lab {args.lab!r} removed: {removed['containers']} container(s), {removed['volumes']} volume(s), "
              f"{removed['networks']} network(s); cached images kept")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .lab import image, state

    parser = argparse.ArgumentParser(prog="orthanc-harden", description=__doc__)
    parser.add_argument("--version", action="version", version=f"orthanc-harden {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    lab = commands.add_parser("lab", help="a local lab of vulnerable Orthanc hosts (Docker)")
    lab_commands = lab.add_subparsers(dest="lab_command", required=True)
    up = lab_commands.add_parser("up", help="build the images once, start the fleet, seed DICOM data")
    up.add_argument("--hosts", type=int, default=3, help="package hosts (systemd + sshd + Debian's Orthanc)")
    up.add_argument("--containers", type=int, default=1, help="hosts where Orthanc is the container's process")
    up.add_argument("--port-base", type=int, default=42200, help="first of the 127.0.0.1 ports the lab publishes")
    up.add_argument("--mirror", default=image.DEFAULT_MIRROR, help="Debian mirror for the image build")
    up.set_defaults(handler=_lab_up)
    status = lab_commands.add_parser("status", help="show the lab hosts and whether they answer anonymously")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(handler=_lab_status)
    down = lab_commands.add_parser("down", help="remove every container, volume and network of the lab")
    down.set_defaults(handler=_lab_down)
    for sub in (up, status, down):
        sub.add_argument("--lab", default=state.DEFAULT_LAB, help="lab name (several labs can coexist)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from .lab.errors import LabError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except LabError as error:
        err.print(f"orthanc-harden {args.command}: error: {error}", markup=False)
        return 1
    except KeyboardInterrupt:
        err.print("orthanc-harden: interrupted", markup=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
