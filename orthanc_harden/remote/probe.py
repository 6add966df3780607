# Remote program body: runs after orthanc_config.py on the host (python3 -c), printing one JSON document with
# the host's whole Orthanc state. Configuration is parsed here, on the host: passwords never leave it.


import shutil
import stat

# What a compliant host would otherwise recompute on every run (the Orthanc binary's --version, the package's file
# list, ufw's rule listing), keyed by the identity of the files it derives from. Root's alone: a value read from it
# decides what the audit reports, so it is used only when the probe runs as root and the file is root's, 0600, in
# a root-owned directory nobody else may write.
PROBE_CACHE = "/var/lib/orthanc-harden/probe-cache.json"
MAX_CACHE_BYTES = 1024 * 1024


class ProbeCache:
    """Entries ``kind -> key -> value``; only the entries looked up in this run are kept, so it cannot grow."""

    def __init__(self, path=PROBE_CACHE):
        self.path, self.old, self.new = path, {}, {}
        self.root = os.geteuid() == 0
        if self.root and not self.directory_reason():
            self.old = self.read()

    def directory_reason(self):
        """Why the cache's directory may not be trusted, or None."""
        directory = os.path.dirname(self.path)
        try:
            info = os.lstat(directory)
        except OSError as err:
            return "cannot stat %s: %s" % (directory, err.strerror)
        if not stat.S_ISDIR(info.st_mode):
            return "%s is not a directory" % directory
        return untrusted_reason(directory, regular_file=False)

    def read(self):
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return {}
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if (not stat.S_ISREG(info.st_mode) or info.st_uid != 0 or stat.S_IMODE(info.st_mode) != 0o600
                    or info.st_nlink != 1 or info.st_size > MAX_CACHE_BYTES):
                return {}
            try:
                data = json.loads(handle.read(MAX_CACHE_BYTES).decode("utf-8"))
            except ValueError:
                return {}
        return data if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()) else {}

    def get(self, kind, key, compute, keep=lambda value: value is not None):
        """compute() unless the entry for key is recorded; key None (identity unknown) always computes. A value
        that keep() refuses (a failure: a timeout under load, a command that did not answer) is not recorded."""
        if key is None:
            return compute()
        key = json.dumps(key, sort_keys=True)
        entries = self.old.get(kind, {})
        if key in entries:
            value = entries[key]
        else:
            value = compute()
            if not keep(value):
                return value
        self.new.setdefault(kind, {})[key] = value
        return value

    def save(self):
        """Written only as root, only when something changed, atomically with root:root 0600."""
        if not self.root or self.new == self.old:
            return
        directory = os.path.dirname(self.path)
        try:
            if not os.path.lexists(directory):
                os.makedirs(directory, mode=0o700)
            if self.directory_reason():
                return
            write_atomically(self.path, json.dumps(self.new, sort_keys=True), 0o600, 0, 0)
        except OSError:
            pass  # a read-only or full filesystem costs the next run time, never the audit


def identity(path):
    """What changes when a file is replaced or rewritten: realpath, device, inode, size, mtime and ctime."""
    try:
        real = os.path.realpath(path)
        info = os.stat(real)
    except OSError:
        return None
    return [real, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def config_from_argv(argv):
    """Orthanc takes one positional argument, a file or a directory; options start with '-'."""
    positional = [a for a in argv[1:] if not a.startswith("-")]
    return positional[-1] if positional else None


def untrusted_reason(path, regular_file=True):
    """Why a path may not be executed (or read) as root, or None: the file and every directory above it must be
    root's and writable by root alone, or whoever may write there could run code as the probe's user."""
    try:
        current = os.path.realpath(path)
        info = os.stat(current)
    except OSError as err:
        return "cannot stat %s: %s" % (path, err.strerror)
    if regular_file and not stat.S_ISREG(info.st_mode):
        return "%s is not a regular file" % current
    while True:
        info = os.stat(current)
        if info.st_uid != 0:
            return "%s is owned by uid %d, not root" % (current, info.st_uid)
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return "%s is writable by group or others (mode %04o)" % (current, stat.S_IMODE(info.st_mode))
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def owner_name(path):
    try:
        return file_meta(path)["owner"]
    except OSError:
        return None


DPKG_LIST = "/var/lib/dpkg/info/orthanc.list"


def package_binaries(manager, cache=None, package_version=None):
    """Files named Orthanc that the package database says the orthanc package installed."""
    if manager == "dpkg":
        if cache is not None:
            # dpkg rewrites the package's list file whenever it installs, upgrades or removes the package.
            key = identity(DPKG_LIST)
            key = key and [key, package_version]
            return set(cache.get("dpkg_binaries", key, lambda: sorted(package_binaries(manager)), keep=bool))
        code, out, _ = run(["dpkg-query", "-L", "orthanc"])
    elif manager == "rpm":
        code, out, _ = run(["rpm", "-ql", "orthanc"])
    else:
        return set()
    if code != 0:
        return set()
    return {line.strip() for line in out.splitlines() if os.path.basename(line.strip()) == "Orthanc"}


def orthanc_version(binary, cache=None):
    if untrusted_reason(binary):
        return None  # never executed: see untrusted_reason
    if cache is not None:
        # The same file (a replaced binary has another inode, size or times) answers the same version.
        return cache.get("versions", identity(binary), lambda: orthanc_version(binary))
    code, out, err = run([binary, "--version"])
    first = (out or err).strip().splitlines()[:1]
    # Prints "<argv0> 1.10.1" then the licence.
    return first[0].split()[-1] if code == 0 and first else None


def package_info():
    info = {"manager": None, "version": None, "plugins": {}}
    if shutil.which("dpkg-query"):
        info["manager"] = "dpkg"
        code, out, _ = run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n", "orthanc*"])
        for line in out.splitlines():
            parts = line.split("\t")
        held = []
        for line in out.splitlines():
            parts = line.split("\t")
            # First letter: the selection, "h" for a package held (what `apt-mark showhold` lists, read from the
            # same dpkg status without starting apt); second: installed ("hi" is a held, installed package).
            if len(parts) == 3 and parts[2][:1] == "h":
                held.append(parts[0])
            if len(parts) == 3 and parts[2][1:2] == "i":
                if parts[0] == "orthanc":
                    info["version"] = parts[1]
                else:
                    info["plugins"][parts[0]] = parts[1]
        info["held"] = sorted(held)
    elif shutil.which("rpm"):
        info["manager"] = "rpm"
        code, out, _ = run(["rpm", "-qa", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\n", "orthanc*"])
        for line in out.splitlines():
            name, _, version = line.partition("\t")
            if name == "orthanc":
                info["version"] = version
            elif name.startswith("orthanc"):
                info["plugins"][name] = version
    return info


def unit_candidates():
    """Services whose unit file or drop-in mentions Orthanc, from systemd's own search path; None when that
    cannot be narrowed (unknown path, a drop-in for every service). Asking systemd for every unit instead costs
    about half a second per host, most of a compliant run."""
    code, out, _ = run(["systemctl", "show", "--no-pager", "-p", "UnitPath", "--value"])
    if code != 0 or not out.split():
        return None
    names = set()
    for directory in out.split():
        for path in (glob.glob(os.path.join(directory, "*.service"))
                     + glob.glob(os.path.join(directory, "*.d", "*.conf"))):
            try:
                with open(path, "rb") as handle:
                    if b"Orthanc" not in handle.read():
                        continue
            except OSError:
                continue
            owner = os.path.basename(os.path.dirname(path))[:-2] if path.endswith(".conf") else os.path.basename(path)
            if owner == "service" or owner.endswith("-.service"):
                return None  # a drop-in for every service, or for a name prefix
            if owner.endswith(".service"):
                names.add(owner)
    return names


def systemd_units():
    if not (os.path.isdir("/run/systemd/system") and shutil.which("systemctl")):
        return []
    candidates = unit_candidates()
    if candidates is not None:
        names = sorted(n for n in candidates if "@." not in n)
    else:
        code, out, _ = run(["systemctl", "list-unit-files", "--type=service", "--no-legend", "--no-pager"])
        names = [line.split()[0] for line in out.splitlines() if line.strip() and "@." not in line.split()[0]]
    if not names:
        return []
    props = "Id,ExecStart,ActiveState,User,Group,FragmentPath,DropInPaths,MainPID"
    code, out, _ = run(["systemctl", "show", "--no-pager", "-p", props, *names], timeout=30)
    units, seen = [], set()
    for block in out.split("\n\n"):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        match = re.search(r"argv\[\]=([^;]*)", fields.get("ExecStart", ""))
        argv = match.group(1).split() if match else []
        if not argv or os.path.basename(argv[0]) != "Orthanc" or fields.get("Id") in seen:
            continue  # an alias shows its unit a second time
        seen.add(fields.get("Id"))
        main_pid = int(fields.get("MainPID") or 0)
        units.append({
            "unit": fields.get("Id"), "argv": argv, "binary": argv[0], "config_path": config_from_argv(argv),
            "active": fields.get("ActiveState"), "user": fields.get("User") or "root",
            "group": fields.get("Group") or None, "fragment": fields.get("FragmentPath"),
            "dropins": fields.get("DropInPaths", "").split(), "main_pid": main_pid,
            "binary_replaced": binary_replaced(main_pid, argv[0]),
        })
    return units


def binary_replaced(pid, binary):
    """True when the running process's executable was replaced on disk since it started (an upgrade it has not
    been restarted for): it still runs the old, possibly vulnerable, code."""
    if pid <= 0:
        return False
    try:
        return os.readlink("/proc/%d/exe" % pid).endswith(" (deleted)")
    except OSError:
        pass  # another user's process, without CAP_SYS_PTRACE (root in a container): compare times instead
    try:
        with open("/proc/%d/stat" % pid) as handle:
            ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
        started = boot + ticks / os.sysconf("SC_CLK_TCK")
        # A package manager writes a new file and renames it over the old one: its inode changes after the start.
        return os.stat(binary).st_ctime > started + 2
    except (OSError, ValueError, IndexError, StopIteration):
        return False


def in_other_pid_namespace(pid):
    """A process in another PID namespace belongs to a container runtime: its Orthanc is reported through the
    Docker API when the inventory names that engine, and never executed or read from here."""
    try:
        return os.readlink("/proc/%d/ns/pid" % pid) != os.readlink("/proc/self/ns/pid")
    except OSError:
        return False


def orthanc_processes():
    """Processes whose argv[0] names Orthanc, with the executable the kernel says they run (argv[0] is whatever
    the process's owner chose, so it is never executed)."""
    found, contained = [], []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        pid = int(cmdline.split("/")[2])
        try:
            with open(cmdline, "rb") as handle:
                argv = [a.decode("utf-8", "replace") for a in handle.read().split(b"\0") if a]
        except OSError:
            continue
        if not argv or os.path.basename(argv[0]) != "Orthanc":
            continue
        if in_other_pid_namespace(pid):
            contained.append(pid)
            continue
        try:
            exe = os.readlink("/proc/%d/exe" % pid)
        except OSError:
            exe = None  # another user's process without CAP_SYS_PTRACE
        found.append({"pid": pid, "argv": argv, "binary": argv[0], "exe": exe, "user": owner_name("/proc/%d" % pid),
                      "config_path": config_from_argv(argv)})
    return found, contained


UFW_FILES = ("/etc/default/ufw", "/etc/ufw", "/etc/ufw/applications.d", "/usr/sbin/ufw",
             "/var/lib/dpkg/info/ufw.list", "/proc/sys/net/ipv4/ip_forward",
             "/proc/sys/net/ipv6/conf/default/forwarding", "/proc/sys/net/ipv6/conf/all/forwarding")


def ufw_key():
    """ufw status lists what its files say (rules, defaults, logging, application profiles) once its chains are
    loaded; routed traffic shows as disabled by the kernel's forwarding switches, read by content."""
    key = []
    for path in UFW_FILES:
        if path.startswith("/proc/"):
            try:
                with open(path) as handle:
                    key.append([path, handle.read().strip()])
            except OSError:
                key.append([path, None])
        elif os.path.isdir(path):
            key.append([path, identity(path)] + sorted(identity(p) or [p] for p in glob.glob(os.path.join(path, "*"))))
        else:
            key.append(identity(path) or [path])
    return key


def ufw_status(cache=None):
    if cache is not None:
        return cache.get("ufw_status", ufw_key(), lambda: list(ufw_status()), keep=lambda value: value[0] == 0)
    return run(["ufw", "status", "verbose"])


def firewall(cache=None):
    state = {"backend": "none", "active": False, "ports_open_to_all": None, "rules": []}
    code, out, _ = run(["firewall-cmd", "--state"]) if shutil.which("firewall-cmd") else (1, "", "")
    if code == 0 and out.strip() == "running":
        state.update(backend="firewalld", active=True)
        code, out, _ = run(["firewall-cmd", "--list-all"])
        state["rules"] = out.splitlines()
        return state
    if ufw_active():
        code, out, _ = ufw_status(cache)
        if code == 0 and "Status: active" in out:
            state.update(backend="ufw", active=True, rules=out.splitlines())
            return state
    if shutil.which("nft"):
        code, out, _ = run(["nft", "-j", "list", "ruleset"])
        if code == 0 and nft_input_filters(out):
            state.update(backend="nftables", active=True, rules=run(["nft", "list", "ruleset"])[1].splitlines())
            return state
    if shutil.which("iptables-save"):  # also iptables-legacy's rules, which nft does not list
        code, out, _ = run(["iptables-save", "-t", "filter"])
        if code == 0 and iptables_input_filters(out):
            rules = [line for line in out.splitlines() if line.startswith(("-A INPUT", ":INPUT"))]
            state.update(backend="iptables", active=True, rules=rules)
            return state
    for tool, backend in (("ufw", "ufw"), ("firewall-cmd", "firewalld")):
        if shutil.which(tool):  # installed, filtering nothing: what the sysadmin would switch on
            state["backend"] = backend
            break
    return state


# A firewall is one that can refuse a packet on input. Hooked chains that only accept, count or log, or jump to
# chains that do no more (what `ufw disable` leaves behind, or an empty table), refuse nothing: Orthanc's ports
# stay open to every source, whatever tool wrote them.
REFUSING = ("drop", "reject")


def nft_input_filters(ruleset_json):
    """Whether any input-hooked chain of `nft -j list ruleset` has a drop policy or reaches a drop/reject."""
    try:
        items = json.loads(ruleset_json).get("nftables", [])
    except (ValueError, AttributeError):
        return True  # unreadable: not called open on a guess; the firewall control reads it precisely
    chains, rules = {}, {}
    for item in items:
        if "chain" in item:
            chain = item["chain"]
            chains[(chain.get("family"), chain.get("table"), chain.get("name"))] = chain
        elif "rule" in item:
            rule = item["rule"]
            rules.setdefault((rule.get("family"), rule.get("table"), rule.get("chain")), []).append(rule)

    def refuses(key, seen):
        if key in seen:
            return False
        seen.add(key)
        for rule in rules.get(key, []):
            for expr in rule.get("expr", []):
                if not isinstance(expr, dict):
                    continue
                if any(verdict in expr for verdict in REFUSING):
                    return True
                xt = expr.get("xt")  # an iptables-nft target kept in its x_tables form
                if isinstance(xt, dict) and xt.get("type") == "target" and xt.get("name") in ("DROP", "REJECT"):
                    return True
                for kind in ("jump", "goto"):
                    target = (expr.get(kind) or {}).get("target") if isinstance(expr.get(kind), dict) else None
                    if target and refuses((key[0], key[1], target), seen):
                        return True
                if "vmap" in expr and any(verdict in json.dumps(expr["vmap"]) for verdict in REFUSING + ("jump",)):
                    return True  # a verdict map: not followed, counted as filtering
        return False

    return any(chain.get("hook") == "input" and (chain.get("policy") == "drop" or refuses(key, set()))
               for key, chain in chains.items())


def iptables_input_filters(save_output):
    """The same question on `iptables-save -t filter`: a DROP policy on INPUT, or INPUT reaching a DROP/REJECT."""
    policy, rules = {}, {}
    for line in save_output.splitlines():
        if line.startswith(":"):
            name, chain_policy = (line[1:].split() + ["-"])[:2]
            policy[name] = chain_policy
        elif line.startswith("-A "):
            parts = line.split()
            target = parts[parts.index("-j") + 1] if "-j" in parts[:-1] else (
                parts[parts.index("-g") + 1] if "-g" in parts[:-1] else None)
            rules.setdefault(parts[1], []).append(target)

    def refuses(chain, seen):
        if chain in seen:
            return False
        seen.add(chain)
        return any(target in ("DROP", "REJECT") or (target in policy and refuses(target, seen))
                   for target in rules.get(chain, []))

    return policy.get("INPUT") == "DROP" or refuses("INPUT", set())


def collect(cache):
    """The host's whole Orthanc state, as one JSON-ready dict."""
    package = package_info()
    units = systemd_units()
    processes, contained = orthanc_processes()
    # Only binaries named by a unit (written by root) or installed by the package are candidates to execute,
    # and each must pass untrusted_reason; a process's own argv[0] is never run.
    candidates = {u["binary"] for u in units} | package_binaries(package.get("manager"), cache, package.get("version"))
    reasons = {b: untrusted_reason(b) for b in candidates}
    trusted = {os.path.realpath(b): b for b, reason in reasons.items() if not reason}
    untrusted = []
    for unit in units:
        reason = reasons[unit["binary"]]
        if reason:
            unit["untrusted"] = reason
            untrusted.append({"unit": unit["unit"], "pid": unit["main_pid"], "path": unit["binary"],
                              "owner": owner_name(unit["binary"]), "reason": reason})
    unit_pids = {u["main_pid"] for u in units if u.get("main_pid")}
    for proc in processes:
        if proc["pid"] in unit_pids:
            continue  # described by its unit
        # argv[0] serves only to look a binary up among the trusted ones: executing one of those is safe,
        # whoever names it.
        exe = proc.get("exe") or os.path.realpath(proc["binary"])
        if exe in trusted:
            proc["binary"] = trusted[exe]
            config = proc["config_path"]
            reason = config and untrusted_reason(config, regular_file=False)
            if reason:
                proc["untrusted"] = "its configuration is not read: %s" % reason
                untrusted.append({"pid": proc["pid"], "name": "Orthanc", "path": config,
                                  "owner": proc.get("user"), "reason": proc["untrusted"]})
            continue
        proc["untrusted"] = ("its executable %s is not a root-owned Orthanc named by a unit or the package" % exe
                             if proc.get("exe") else
                             "its executable cannot be read and %s is not a trusted Orthanc" % proc["binary"])
        untrusted.append({"pid": proc["pid"], "name": os.path.basename(proc["binary"]), "path": exe,
                          "owner": proc.get("user"), "reason": proc["untrusted"]})
        proc["binary"] = None
    binaries = sorted({u["binary"] for u in units if not u.get("untrusted")} | set(trusted.values()))
    paths = [u["config_path"] for u in units]
    paths += [p["config_path"] for p in processes if p["config_path"] and not p.get("untrusted")]
    if not paths and binaries:
        paths = [DEFAULT_CONFIG]
    configs = {}
    for path in paths:
        if path and path not in configs:
            configs[path] = read_config(path)
    return {
        "probe": 1,
        "package": package,
        "binaries": {b: orthanc_version(b, cache) for b in binaries},
        "units": units,
        "processes": processes,
        "untrusted": untrusted,
        "contained_pids": contained,
        "configs": configs,
        "firewall": firewall(cache),
        "docker": docker_closed_ports(),
    }


def main():
    cache = ProbeCache()
    print(json.dumps(collect(cache), sort_keys=True))
    cache.save()


if __name__ == "__main__":
    main()
