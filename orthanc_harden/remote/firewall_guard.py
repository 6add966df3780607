# Remote program part: runs between orthanc_config.py and firewall.py on the host. "Commit confirmed" for every
# firewall change: the SSH ports to keep open, a snapshot of what the change touches, a revert armed on the host
# before the change (a transient systemd timer, or a detached sleep without systemd) that restores the snapshot
# unless the control node confirms with a fresh SSH connection, and the restore itself.

import fcntl
import signal
import sys
import time

GUARD_DIR = "/var/lib/orthanc-harden/firewall-revert"
GUARD_UNIT = "orthanc-harden-firewall-revert"
SNAPSHOT = GUARD_DIR + "/snapshot.json"
PROGRAM_COPY = GUARD_DIR + "/program.py"
PID_FILE = GUARD_DIR + "/sleeper.pid"
UFW_FILES = ("/etc/ufw/user.rules", "/etc/ufw/user6.rules", "/etc/ufw/ufw.conf")
IPT_PERSISTENT = {"iptables": "/etc/iptables/rules.v4", "ip6tables": "/etc/iptables/rules.v6"}


# --- SSH ports ---------------------------------------------------------------------------------------------------

def _port_of(address):
    try:
        return int(address.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


def session_port():
    """The port this SSH session came in on, as the host sees it. sudo drops SSH_CONNECTION from the environment,
    so the login shell's is read from the nearest ancestor that has it (root may read /proc/PID/environ)."""
    pid = os.getpid()
    for _ in range(64):
        try:
            with open("/proc/%d/environ" % pid, "rb") as handle:
                env = dict(item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item)
            fields = env.get(b"SSH_CONNECTION", b"").split()
            if len(fields) == 4:
                return int(fields[3])
            with open("/proc/%d/stat" % pid) as handle:
                pid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            return None
        if pid <= 1:
            return None
    return None


def ssh_ports(extra=None):
    """Every port sshd listens on: its effective configuration, its listening sockets (and systemd's, for a
    socket-activated sshd), the port of this session, and the operator's extra port."""
    ports = set()
    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if sshd:
        for line in run([sshd, "-T"])[1].splitlines():
            key, _, value = line.partition(" ")
            if key == "port" and value.strip().isdigit():
                ports.add(int(value))
            elif key == "listenaddress":
                ports.add(_port_of(value.strip()))
    if shutil.which("ss"):
        for line in run(["ss", "-Hltnp"])[1].splitlines():
            fields = line.split()
            if len(fields) >= 4 and ('"sshd"' in line or '"sshd-session"' in line):
                ports.add(_port_of(fields[3]))
    if shutil.which("systemctl"):
        # Debian ships ssh.socket disabled; only a socket that is listening counts.
        out = run(["systemctl", "show", "-p", "ActiveState", "-p", "Listen", "ssh.socket", "sshd.socket"])[1]
        for unit in out.split("\n\n"):
            if "ActiveState=active" not in unit.splitlines():
                continue
            for line in unit.splitlines():
                if line.startswith("Listen="):
                    ports.update(_port_of(item.strip()) for item in line[7:].split(" (Stream)") if item.strip())
    ports.add(session_port())
    if extra:
        ports.add(extra)
    return sorted(p for p in ports if p)


# --- snapshot and restore ----------------------------------------------------------------------------------------

def _files(paths):
    return {path: _read(path) for path in paths}


def _put_files(files):
    for path, text in files.items():
        if text is None:
            if os.path.exists(path):
                os.remove(path)
        elif _read(path) != text:
            _write(path, text)


def snapshot(backend):
    """What a change by `backend` can touch, as it is now."""
    if backend == "ufw":
        return {"backend": backend, "files": _files(UFW_FILES), "active": ufw_active()}
    if backend == "nftables":
        code, table, _ = run(["nft", "list", "table", "inet", NFT_TABLE])
        return {"backend": backend, "files": _files([NFT_FILE, NFT_CONF]), "table": table if code == 0 else None}
    if backend == "iptables":
        chains = {}
        for tool in ("iptables", "ip6tables"):
            if shutil.which(tool + "-save"):
                lines = run([tool + "-save", "-t", "filter"])[1].splitlines()
                chains[tool] = {"rules": [line for line in lines if line.startswith("-A %s " % CHAIN)],
                                "exists": (":%s " % CHAIN) in "\n".join(lines),
                                "jump": JUMP in lines}
        return {"backend": backend, "chains": chains, "files": _files(IPT_PERSISTENT.values())}
    permanent, runtime = _fw_policy(True), _fw_policy(False)
    return {"backend": backend, "permanent": permanent, "runtime": runtime}


def restore(snap):
    """Put back what `snapshot` saw; every step is tried, the first failure is raised at the end."""
    errors = []

    def step(func, *args):
        try:
            func(*args)
        except (FirewallError, OSError) as err:
            errors.append(str(err))

    backend = snap["backend"]
    if backend == "ufw":
        if not snap["active"] and ufw_active():
            step(must, ["ufw", "--force", "disable"], "ufw disable")
        step(_put_files, snap["files"])
        if snap["active"]:
            step(must, ["ufw", "reload"], "ufw reload")
    elif backend == "nftables":
        step(_put_files, snap["files"])
        if run(["nft", "list", "table", "inet", NFT_TABLE])[0] == 0:
            step(must, ["nft", "delete", "table", "inet", NFT_TABLE], "nft delete table")
        if snap["table"]:
            step(must, ["nft", "-f", "-"], "nft -f", 60, snap["table"])
    elif backend == "iptables":
        for tool, before in snap["chains"].items():
            step(_ipt_restore, tool, before)
        step(_put_files, snap["files"])
    else:
        step(_fw_restore, snap)
    if errors:
        raise FirewallError("putting the firewall back failed: " + errors[0])


def _ipt_restore(tool, before):
    ipt_drop_chain(tool)
    if before["exists"]:
        chain = "*filter\n:%s - [0:0]\n%s\nCOMMIT\n" % (CHAIN, "\n".join(before["rules"]))
        must([tool + "-restore", "--noflush"], tool + "-restore", stdin=chain)
    if before["jump"]:
        must([tool, "-I", "INPUT", "1", "-m", "comment", "--comment", TAG, "-j", CHAIN], tool + " -I INPUT")


def _fw_restore(snap):
    for flag, before in ((["--permanent"], snap["permanent"]), ([], snap["runtime"])):
        now = _fw_policy(bool(flag))
        if now is not None:
            _fw_sync_rules(flag, now["rules"], (before or {}).get("rules", []))
    if snap["permanent"] is None and _fw_policy(True) is not None:
        must(["firewall-cmd", "--permanent", "--delete-policy=" + FW_POLICY], "firewalld delete policy")


# --- the armed revert --------------------------------------------------------------------------------------------

def _lock():
    """Held by a change and by a revert, so a revert that comes due during a slow change waits for its end."""
    os.makedirs(GUARD_DIR, mode=0o700, exist_ok=True)
    os.chmod(GUARD_DIR, 0o700)
    handle = os.fdopen(os.open(GUARD_DIR + "/lock", os.O_WRONLY | os.O_CREAT, 0o600), "w")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _own_source():
    """This program's text: it came as `python3 -c SOURCE MODE`, so it is this process's third argument."""
    with open("/proc/self/cmdline", "rb") as handle:
        return handle.read().split(b"\0")[2].decode("utf-8")


def _systemd():
    return os.path.isdir("/run/systemd/system") and bool(shutil.which("systemd-run"))


def _pending():
    """The pending snapshot (a revert armed and not yet run or confirmed), or None."""
    try:
        with open(SNAPSHOT) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def arm(snap, token, seconds):
    """Save `snap` and schedule its restore in `seconds`, before anything changes (the caller holds the lock)."""
    if _pending() is not None:
        if _armed():
            raise FirewallError("a firewall revert armed by an earlier run is still pending in %s: wait for it "
                                "(at most its confirm timeout) and re-run" % GUARD_DIR)
        raise FirewallError("an unconfirmed firewall change of an earlier run was never reverted (its timer is "
                            "gone, e.g. after a reboot): check the firewall, then remove %s and re-run" % SNAPSHOT)
    write_atomically(PROGRAM_COPY, _own_source(), 0o600, 0, 0)
    write_atomically(SNAPSHOT, json.dumps(dict(snap, token=token)), 0o600, 0, 0)
    if _systemd():
        run(["systemctl", "reset-failed", GUARD_UNIT + ".service", GUARD_UNIT + ".timer"])
        try:
            must(["systemd-run", "--unit=" + GUARD_UNIT, "--on-active=%ds" % seconds,
                  "--timer-property=AccuracySec=1s", "--description=orthanc-harden: put the firewall back unless "
                  "the change is confirmed", sys.executable, PROGRAM_COPY, "revert-due"],
                 "systemd-run (arming the revert)")
        except FirewallError:
            disarm()  # nothing changed yet: no revert to keep
            raise
        return "systemd timer %s.timer" % GUARD_UNIT
    import subprocess
    sleeper = subprocess.Popen([sys.executable, PROGRAM_COPY, "revert-after", str(seconds)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True, close_fds=True)
    write_atomically(PID_FILE, str(sleeper.pid), 0o600, 0, 0)
    return "detached sleep, pid %d" % sleeper.pid


def _sleeper_pid():
    pid = (_read(PID_FILE) or "").strip()
    if pid.isdigit() and int(pid) != os.getpid() and \
            PROGRAM_COPY.encode() in (_read_bytes("/proc/%s/cmdline" % pid) or b""):
        return int(pid)
    return None


def _armed():
    if _systemd():
        state = run(["systemctl", "show", "-p", "SubState", "--value", GUARD_UNIT + ".timer"])[1].strip()
        if state in ("waiting", "running"):
            return True
    return _sleeper_pid() is not None


def disarm():
    if _systemd():
        run(["systemctl", "stop", GUARD_UNIT + ".timer"])
        run(["systemctl", "reset-failed", GUARD_UNIT + ".service", GUARD_UNIT + ".timer"])
    pid = _sleeper_pid()
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    for path in (SNAPSHOT, PID_FILE, PROGRAM_COPY):
        if os.path.exists(path):
            os.remove(path)


def _read_bytes(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def settle(token, keep):
    """The control node's verdict on an armed change: `keep` (a fresh SSH connection worked) disarms the revert,
    otherwise the snapshot is restored now. The pending revert is gone afterwards, unless restoring failed: then
    its timer tries once more."""
    with _lock():
        pending = _pending()
        if pending is None or pending.get("token") != token:
            raise FirewallError("the armed revert already ran (the confirmation came after the timeout): the "
                                "firewall is back as it was")
        if keep:
            disarm()
            return {"confirmed": True}
        restore(pending)  # when it fails, the revert stays armed: the timer tries once more
        disarm()
        return {"reverted": True}


def revert_due(delay=0):
    """Run by the timer (or the detached sleep): restore the pending snapshot, if it is still pending."""
    if delay:
        time.sleep(delay)
    with _lock():
        pending = _pending()
        if pending is None:
            return
        try:
            restore(pending)
        finally:
            disarm()
    print("orthanc-harden: the firewall change was not confirmed in time and has been put back")
