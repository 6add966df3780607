"""The `orthanc-harden` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import __version__

# Not a terminal (cron, CI, a pipe): rich would wrap tables at 80 columns; logs read better unwrapped.
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def _say(message: str) -> None:
    err.print(f"[dim]lab:[/dim] {message}")


def _lab_up(args) -> int:
    from .lab import missing_extra
    from .lab.errors import LabError

    missing = missing_extra()
    if missing:  # before anything starts: seeding the lab would fail half-way
        raise LabError(f"the lab needs the optional extra `lab` (missing: {', '.join(missing)}): "
                       "pip install 'orthanc-harden[lab]'")
    from .lab import fleet

    spec = fleet.LabSpec(lab=args.lab, hosts=args.hosts, containers=args.containers,
                         port_base=args.port_base, mirror=args.mirror, old_hosts=args.old_hosts,
                         old_containers=args.old_containers)
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


def _audit(args) -> int:
    from .audit import render
    from .runs import audit

    total = None

    def progress_line(host_name: str, rows: list[dict]) -> None:
        verdicts = ", ".join(sorted({r["status"] for r in rows}))
        if progress is not None:
            progress.advance(task)
        else:
            err.print(f"audited {host_name}: {verdicts}", markup=False)

    progress = None
    if err.is_terminal:
        from rich.progress import Progress

        progress = Progress(console=err, transient=True)
        progress.start()
        task = progress.add_task("auditing", total=total)
    try:
        report = audit.audit(args.inventory, limit=args.limit, parallel=args.parallel, on_host=progress_line,
                           shard=args.shard)
    finally:
        if progress is not None:
            progress.stop()
    out.print(render.table(report, verbose=args.verbose))
    _write_reports(report, args)
    _tracebacks(report["instances"], args.debug)
    return report["exit_code"]


def _tracebacks(rows: list[dict], debug: bool) -> None:
    """Unexpected errors are one line in the table; their tracebacks are in the JSON report, and here with --debug."""
    for row in rows:
        if debug and row.get("traceback"):
            err.print(f"[{row['host']}] {row['traceback']}", markup=False)


def _write_reports(report: dict, args) -> None:
    _write_json(report, args.json)
    if args.junit:
        from .junit_report import to_xml

        _write_json(report, args.junit, text=to_xml(report))


def _write_json(report: dict, destination: str | None, text: str | None = None) -> None:
    from .audit import render

    if not destination:
        return
    text = render.to_json(report) if text is None else text
    if destination == "-":
        sys.stdout.write(text)
        return
    from .private_files import write_private

    # The report lists exposed hosts and users with default passwords: owner-only, atomic, never through a link.
    try:
        write_private(Path(destination), text)
    except OSError as err:
        raise SystemExit(f"orthanc-harden: cannot write the report {destination}: {err.strerror}") from None


def _remediate(args) -> int:
    from .runs import remediate
    from .audit.render import remediation_table

    progress = None
    if err.is_terminal:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                            transient=True)
        progress.start()
        task = progress.add_task("connecting")

    def on_op(name: str) -> None:
        if progress is not None:
            progress.update(task, description=name)
        else:
            err.print(f"remediate: {name}", markup=False)

    try:
        report = remediate.remediate(args.inventory, limit=args.limit, parallel=args.parallel, dry=args.dry,
                                     on_op=on_op, shard=args.shard)
    finally:
        if progress is not None:
            progress.stop()
    out.print(remediation_table(report, verbose=args.verbose))
    if args.dry:
        from .planned import render

        out.print(render(report), markup=False, highlight=False)
    _write_reports(report, args)
    _tracebacks(report["hosts"], args.debug)
    return report["exit_code"]


def _scheduled_run(args) -> int:
    from pathlib import Path

    from .runs.scheduled import scheduled_run

    code, line = scheduled_run(args.mode, args.inventory, Path(args.report_dir), args.keep, args.parallel,
                               shard=args.shard)
    print(line, flush=True)  # one line for the journal or cron's mail
    return code


def _fleet_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("inventory", help="a pyinfra inventory (file, host list or module.function), or an Ansible "
                                           "inventory (an INI or YAML file, or a directory)")
    command.add_argument("--json", metavar="FILE", help="also write the report as JSON ('-' for stdout)")
    command.add_argument("--limit", action="append", metavar="PATTERN", help="host name glob or group (repeatable)")
    command.add_argument("--parallel", type=int, default=20, help="hosts worked on at once (default 20)")
    _shard_argument(command)
    command.add_argument("--junit", metavar="FILE", help="also write the report as JUnit XML, one test case per "
                                                         "host and Orthanc ('-' for stdout)")
    command.add_argument("-v", "--verbose", action="store_true", help="also list advisories, and print the "
                                                                      "details of a failure in one line each")
    command.add_argument("--debug", action="store_true", help="also print tracebacks (always in the JSON report)")


def _findings(args) -> int:
    from .audit.render import catalogue_table
    from .findings import catalogue

    if args.json:
        out.print_json(json.dumps(catalogue()))
    else:
        out.print(catalogue_table())
    return 0


def _shard_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("--shard", metavar="I/N", help="only the hosts of shard I of N (1..N, by a hash of each "
                                                        "host's name; after --limit): N runners cover every host once")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orthanc-harden", description=__doc__)
    parser.add_argument("--version", action="version", version=f"orthanc-harden {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    audit = commands.add_parser("audit", help="read-only: find every Orthanc and report CVE-2025-0896 exposure")
    _fleet_arguments(audit)
    audit.set_defaults(handler=_audit)

    fix = commands.add_parser("remediate", help="harden every host (upgrade, authentication, firewall), then "
                                                "audit it; exit 0 all compliant, 1 some not compliant, 2 some failed")
    _fleet_arguments(fix)
    fix.add_argument("--dry", action="store_true", help="plan only: show what would change, change nothing")
    fix.set_defaults(handler=_remediate)

    listing = commands.add_parser("findings", help="the findings catalogue: ID, severity, title, how each is fixed "
                                                   "or why it is only advised")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=_findings)

    timed = commands.add_parser("scheduled-run", help="one run for a timer: lock, audit or remediate, JSON report "
                                                     "with retention; exit as the run (75: another run held the lock)")
    timed.add_argument("mode", choices=("remediate", "audit"))
    timed.add_argument("inventory", help="a pyinfra or Ansible inventory")
    timed.add_argument("--report-dir", default="/var/lib/orthanc-harden/reports", help="JSON reports (0600)")
    timed.add_argument("--keep", type=int, default=48, help="reports kept per mode (default 48)")
    timed.add_argument("--parallel", type=int, default=20, help="hosts worked on at once (default 20)")
    _shard_argument(timed)
    timed.set_defaults(handler=_scheduled_run)

    from .runs.report_merge import add_command as add_report_command

    add_report_command(commands, out, err)

    lab = commands.add_parser("lab", help="a local lab of vulnerable Orthanc hosts (Docker)")
    lab_commands = lab.add_subparsers(dest="lab_command", required=True)
    up = lab_commands.add_parser("up", help="build the images once, start the fleet, seed DICOM data")
    up.add_argument("--hosts", type=int, default=3, help="package hosts (systemd + sshd + Debian's Orthanc)")
    up.add_argument("--containers", type=int, default=1, help="hosts where Orthanc is the container's process")
    up.add_argument("--port-base", type=int, default=24200, help="first of the 127.0.0.1 ports the lab publishes")
    up.add_argument("--mirror", help="Debian mirror for the image build (default: deb.debian.org)")
    up.add_argument("--old-hosts", type=int, help="package hosts below 1.5.8, upgraded by remediate "
                                                  "(default: 1 in the `default` lab, 0 in others)")
    up.add_argument("--old-containers", type=int, help="Orthanc containers below 1.5.8 (default: 1 in the "
                                                       "`default` lab, 0 in others)")
    up.set_defaults(handler=_lab_up)
    status = lab_commands.add_parser("status", help="show the lab hosts and whether they answer anonymously")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(handler=_lab_status)
    down = lab_commands.add_parser("down", help="remove every container, volume and network of the lab")
    down.set_defaults(handler=_lab_down)
    for sub in (up, status, down):
        sub.add_argument("--lab", help="lab name (several labs can coexist; default: default)")
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if words[:1] != ["lab"]:
        # pyinfra runs hosts in gevent greenlets: sockets (and ssl) must be cooperative before anything imports
        # them, the parser's own imports included.
        from gevent import monkey

        monkey.patch_all()
    from .runs.audit import InventoryError
    from .runs.shard import ShardError, parse

    args = build_parser().parse_args(argv)
    lab_errors = ()
    if args.command == "lab":  # the lab (an optional extra) is imported by its own command only
        from .lab import DEFAULT_MIRROR, state
        from .lab.errors import LabError

        lab_errors = (LabError,)
        args.lab = args.lab or state.DEFAULT_LAB
        if getattr(args, "mirror", "") is None:
            args.mirror = DEFAULT_MIRROR
    if words[:1] != ["lab"]:
        from . import terminal_logs

        terminal_logs.setup(terminal_logs.DEBUG if getattr(args, "debug", False) else
                            terminal_logs.DETAILS if getattr(args, "verbose", False) else terminal_logs.QUIET)
    try:
        if getattr(args, "shard", None) is not None:
            args.shard = parse(args.shard)
        return args.handler(args)
    except ShardError as error:  # before anything is read: one line, the usage error status
        err.print(f"orthanc-harden {args.command}: error: {error}", markup=False, soft_wrap=True)
        return 2
    except lab_errors as error:
        err.print(f"orthanc-harden {args.command}: error: {error}", markup=False)
        return 1
    except InventoryError as error:  # nothing was contacted: never an empty table that exits 0
        err.print(f"orthanc-harden {args.command}: error: {error}", markup=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("orthanc-harden: interrupted", markup=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
