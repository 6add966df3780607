# Remote program part, sent after orthanc_config.py (firewall and probe programs): the Orthanc containers of this
# host's Docker engine, the ports they publish, and the tool's rules in Docker's DOCKER-USER chain. Docker DNATs a
# published port in PREROUTING and forwards it: such traffic crosses FORWARD, never INPUT, so DOCKER-USER (which
# Docker keeps and never edits) is the only place a host firewall can filter it.

import io
import tarfile

DOCKER_TAG = "orthanc-harden"
DOCKER_CHAIN = "ORTHANC-HARDEN-DOCKER"
DOCKER_JUMP = "-A DOCKER-USER -m comment --comment %s -j %s" % (DOCKER_TAG, DOCKER_CHAIN)
DOCKER_SCRIPT = "/etc/orthanc-harden/docker-user.sh"
DOCKER_UNIT_NAME = "orthanc-harden-docker-user.service"
DOCKER_UNIT = "/etc/systemd/system/" + DOCKER_UNIT_NAME
DOCKER_WANTS = "/etc/systemd/system/docker.service.wants/" + DOCKER_UNIT_NAME
DOCKER_TOOLS = (("iptables", 4), ("ip6tables", 6))
# Docker recreates its chains when it starts, and starts this unit's rules with it (PartOf: a restart of
# docker.service restarts this unit too).
DOCKER_UNIT_TEXT = """# orthanc-harden: Orthanc's published Docker ports from allowed networks only (managed file)
[Unit]
Description=orthanc-harden: DOCKER-USER rules for Orthanc's published ports
After=docker.service
PartOf=docker.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh %s

[Install]
WantedBy=docker.service
""" % DOCKER_SCRIPT


def _run_bytes(argv, timeout=30, limit=4 * MAX_CONFIG_BYTES):
    """(exit status, stdout) of a command whose output is bytes; more than `limit` bytes is not read (a container
    decides what its configuration directory holds): the status is then 1."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return 127, b""
    try:
        data = proc.stdout.read(limit + 1)
        if len(data) > limit:
            proc.kill()
            proc.wait(timeout=timeout)
            return 1, b""
        return proc.wait(timeout=timeout), data
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return 127, b""
    finally:
        proc.stdout.close()


def engine_id():
    """The local Docker engine's ID, or None when no engine answers here."""
    if not shutil.which("docker"):
        return None
    code, out, _ = run(["docker", "info", "--format", "{{.ID}}"], timeout=20)
    return out.strip() or None if code == 0 else None


def docker_engine():
    """{"id": the engine's ID, "containers": their `docker inspect` data}, or None when no engine answers here."""
    identity = engine_id()
    if identity is None:
        return None
    code, ids, _ = run(["docker", "ps", "-aq", "--no-trunc"], timeout=20)
    containers = []
    if code == 0 and ids.split():
        # A container removed between the two calls makes inspect exit 1, after printing the others.
        out = run(["docker", "inspect"] + ids.split(), timeout=60)[1]
        try:
            containers = json.loads(out or "[]")
        except ValueError:
            containers = []
    return {"id": identity, "containers": containers}


def _container_configs(attrs, family):
    """Parsed JSON files of the container's configuration directory, through `docker cp` (a tar stream: it runs
    nothing in the container and works on a stopped one), then ORTHANC_JSON, in Orthanc's reading order."""
    directory = container_config_dir(attrs, family).rstrip("/") or "/"
    parsed = []
    code, raw = _run_bytes(["docker", "cp", "%s:%s" % (attrs["Id"], directory), "-"])
    if code == 0:
        try:
            archive = tarfile.open(fileobj=io.BytesIO(raw))
            members = sorted((m for m in archive.getmembers() if m.isfile() and m.name.endswith(".json")
                              and m.name.count("/") == 1 and m.size <= MAX_CONFIG_BYTES), key=lambda m: m.name)
            for member in members:
                try:
                    parsed.append(parse_config(archive.extractfile(member).read().decode("utf-8")))
                except (ValueError, UnicodeDecodeError):
                    continue
        except tarfile.TarError:
            pass
    env = container_env(attrs)
    if "ORTHANC_JSON" in env:
        try:
            parsed.append(parse_config(env["ORTHANC_JSON"]))
        except ValueError:
            pass
    return parsed


def container_env(attrs):
    return dict(item.partition("=")[::2] for item in attrs["Config"].get("Env") or [])


def published_orthanc_ports(engine):
    """Every Orthanc HTTP/DICOM port published on an address other than loopback:
    [{"container", "port" (inside), "host_ip", "host_port"}]. A stopped container counts with its configured
    fixed ports, so that it is filtered before it starts again."""
    found = []
    for attrs in engine["containers"]:
        family = container_family(attrs)
        if family is None:
            continue
        ports = container_orthanc_ports(_container_configs(attrs, family), container_env(attrs))
        live = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
        configured = (attrs.get("HostConfig") or {}).get("PortBindings") or {}
        for port in sorted(set(ports.values())):
            key = "%d/tcp" % port
            for binding in live.get(key) or configured.get(key) or []:
                host_ip, host_port = binding.get("HostIp") or "", str(binding.get("HostPort") or "")
                if not host_port.isdigit() or host_ip.startswith("127.") or host_ip == "::1":
                    continue
                found.append({"container": attrs["Name"].lstrip("/"), "port": port,
                              "host_ip": host_ip or "0.0.0.0", "host_port": int(host_port)})
    return found


def docker_rules(host_ports, cidrs):
    """The chain's rules as iptables-save prints them: allowed sources return to Docker's own rules, the rest of
    the connections DNATed to one of `host_ports` is dropped. `--ctstate DNAT` keeps connections the containers
    open themselves (Orthanc peers, modalities on 4242 elsewhere) out of the match."""
    match = "-p tcp -m conntrack --ctstate DNAT --ctorigdstport %d --ctdir ORIGINAL -m comment --comment " + DOCKER_TAG
    rules = ["-A %s -s %s %s -j RETURN" % (DOCKER_CHAIN, cidr, match % port) for port in host_ports for cidr in cidrs]
    return rules + ["-A %s %s -j DROP" % (DOCKER_CHAIN, match % port) for port in host_ports]


def docker_user_live():
    """{tool: {"rules": our chain's rules, "jump_first": bool}} for each of iptables/ip6tables whose filter table
    has Docker's DOCKER-USER chain."""
    live = {}
    for tool, _ in DOCKER_TOOLS:
        if not shutil.which(tool + "-save"):
            continue
        lines = run([tool + "-save", "-t", "filter"])[1].splitlines()
        if ":DOCKER-USER " not in "\n".join(lines):
            continue
        hooks = [line for line in lines if line.startswith("-A DOCKER-USER ")]
        live[tool] = {"rules": [line for line in lines if line.startswith("-A %s " % DOCKER_CHAIN)],
                      "chain": (":%s " % DOCKER_CHAIN) in "\n".join(lines),
                      "jump_first": bool(hooks) and hooks[0] == DOCKER_JUMP,
                      "jumps": sum(1 for line in hooks if line == DOCKER_JUMP)}
    return live


def docker_script(wanted):
    """The persistent form: a shell script that loads the chain and puts its jump first in DOCKER-USER."""
    parts = ["#!/bin/sh",
             "# orthanc-harden: Orthanc's published Docker ports from allowed networks only (managed file: changes",
             "# are replaced). Run by %s after docker.service, which recreates its chains." % DOCKER_UNIT_NAME,
             "set -e"]
    for tool, rules in sorted(wanted.items()):
        parts += ["%s-restore --noflush <<'RULES'" % tool, "*filter", ":%s - [0:0]" % DOCKER_CHAIN] + rules + [
            "COMMIT", "RULES",
            "for i in 1 2 3 4 5 6 7 8; do %s -D DOCKER-USER -m comment --comment %s -j %s 2>/dev/null || break; "
            "done" % (tool, DOCKER_TAG, DOCKER_CHAIN),
            "%s -I DOCKER-USER 1 -m comment --comment %s -j %s" % (tool, DOCKER_TAG, DOCKER_CHAIN)]
    return "\n".join(parts) + "\n"


def docker_closed_ports():
    """The probe's view: {"engine_id", "closed": host ports our DOCKER-USER chain closes (IPv4)}, or None."""
    identity = engine_id()
    if identity is None:
        return None
    v4 = docker_user_live().get("iptables")
    closed = []
    if v4 and v4["jump_first"]:
        for rule in v4["rules"]:
            found = re.search(r"--ctorigdstport (\d+) .* -j DROP$", rule)
            if found and " -s " not in rule:
                closed.append(int(found.group(1)))
    return {"engine_id": identity, "closed": sorted(set(closed))}
